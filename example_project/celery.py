"""The demo site's Celery app, used when ``CF_INGEST["QUEUE"]`` is the Celery backend.

celery -A example_project worker
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")

app = Celery("example_project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
