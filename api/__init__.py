"""The REST API under /api/v1/ (OpenAPI at /api/schema/): thin DRF views over the apps' services and
selectors, scoped to the caller, with one error shape (`errors.py`)."""
