try:
    from .celery import app as celery_app
except ImportError:  # Celery is an optional extra.
    pass
else:
    __all__ = ["celery_app"]
