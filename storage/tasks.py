"""django-q2 entry points for storage."""
from storage.abandoned import abandoned_writes_clear
from storage.reconcile import storage_reconcile


def storage_reconcile_task() -> dict:
    """Scheduled daily: remove half-written uploads of stores that died, then report drift between the usage
    ledger, the rows and the bucket."""
    removed = abandoned_writes_clear()
    drift = storage_reconcile()
    return {"clean": drift.clean, "users_with_byte_drift": len(drift.bytes_by_user),
            "missing_objects": len(drift.missing_objects), "orphaned_objects": len(drift.orphaned_objects),
            "abandoned_writes": len(removed)}
