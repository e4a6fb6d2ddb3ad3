"""django-q2 entry points for storage."""
from storage.multipart import multipart_abort_abandoned
from storage.reconcile import storage_reconcile


def storage_reconcile_task() -> dict:
    """Scheduled daily: abort abandoned multipart uploads, then report drift between the usage
    ledger, the rows and the bucket."""
    aborted = multipart_abort_abandoned()
    drift = storage_reconcile()
    return {"clean": drift.clean, "users_with_byte_drift": len(drift.bytes_by_user),
            "missing_objects": len(drift.missing_objects), "orphaned_objects": len(drift.orphaned_objects),
            "aborted_uploads": len(aborted)}
