from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("django_cf_ingest.urls")),
    path("django-admin/", admin.site.urls),
]
