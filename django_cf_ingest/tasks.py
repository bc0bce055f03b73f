"""Celery task discovery: ``app.autodiscover_tasks()`` imports this module."""

try:
    from .queues.celery import process_upload_task
except ImportError:  # Celery is an optional extra.
    pass
else:
    __all__ = ["process_upload_task"]
