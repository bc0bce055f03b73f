from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules


class CfIngestConfig(AppConfig):
    name = "django_cf_ingest"
    label = "cf_ingest"
    verbose_name = "Document ingest"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, signals  # noqa: F401  (registers checks and receivers)
        from .registry import sync_document_types

        # Host apps register their document types in a `cf_ingest_types` module.
        autodiscover_modules("cf_ingest_types")
        post_migrate.connect(sync_document_types, sender=self)
