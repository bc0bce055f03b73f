from django.urls import path

from .conf import get_settings
from .internal import edge, views

app_name = "cf_ingest"

prefix = get_settings().INTERNAL_URL_PREFIX

urlpatterns = [
    path(f"{prefix}dead", views.dead, name="dead"),
    path(f"{prefix}meta/<str:upload_id>", edge.meta, name="meta"),
    path(f"{prefix}complete", edge.complete, name="complete"),
    path(f"{prefix}<str:upload_id>", views.ingest, name="ingest"),
]
