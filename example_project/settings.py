"""Settings of the demo site: a Wagtail site that uses django-cf-ingest the way a
host site would. Operators configure it with the environment variables they
already know from the Cloudflare Workers ingest setup."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CF_INGEST_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


SECRET_KEY = env("DJANGO_SECRET_KEY", "demo-only-insecure-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = env("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",")

INSTALLED_APPS = [
    "django_cf_ingest",
    "example_project.demo",
    "wagtail.contrib.forms",
    "wagtail.contrib.settings",
    "wagtail.embeds",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "example_project" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _database() -> dict[str, Any]:
    if env("DATABASE_ENGINE") == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": env("PGDATABASE", "test"),
            "USER": env("PGUSER", "postgres"),
            "HOST": env("PGHOST", "127.0.0.1"),
            "PORT": env("PGPORT", "5432"),
        }
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": env("SQLITE_PATH", str(VAR_DIR / "demo.sqlite3")),
        "OPTIONS": {
            # Writers queue for the lock instead of failing; WAL lets the
            # consumer's threads read while one writes.
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


DATABASES = {"default": _database()}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Wagtail's search index uses PostgreSQL's full-text fields there.
    INSTALLED_APPS.append("django.contrib.postgres")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"
DATA_UPLOAD_MAX_MEMORY_SIZE = 30 * 1024 * 1024


def _storages() -> dict[str, Any]:
    storages: dict[str, Any] = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {
            "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        },
    }
    bucket = env("R2_BUCKET")
    if bucket:
        account = env("R2_ACCOUNT_ID") or env("CF_ACCOUNT_ID")
        endpoint = env("R2_ENDPOINT_URL") or (
            f"https://{account}.r2.cloudflarestorage.com" if account else ""
        )
        if not endpoint:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                "R2_BUCKET is set, but neither R2_ACCOUNT_ID (or CF_ACCOUNT_ID) "
                "nor R2_ENDPOINT_URL says where the bucket is."
            )
        from django_cf_ingest.r2 import r2_storage_options

        storages["default"] = {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": r2_storage_options(
                bucket=bucket,
                endpoint_url=endpoint,
                access_key=env("R2_ACCESS_KEY_ID"),
                secret_key=env("R2_SECRET_ACCESS_KEY"),
            ),
        }
    return storages


STORAGES = _storages()

WAGTAIL_SITE_NAME = "django-cf-ingest demo"
WAGTAILADMIN_BASE_URL = env("WAGTAILADMIN_BASE_URL", "http://127.0.0.1:8000")
# Avatars come from Wagtail's default picture rather than gravatar.com, so the
# admin looks the same offline.
WAGTAIL_GRAVATAR_PROVIDER_URL = None
LOGIN_URL = "wagtailadmin_login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_cf_ingest": {
            "handlers": ["console"],
            "level": env("CF_INGEST_LOG_LEVEL", "INFO"),
            "propagate": False,
        }
    },
}


CELERY_BROKER_URL = env("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1


def _queue() -> dict[str, Any]:
    if env("CF_INGEST_QUEUE") == "celery":
        return {
            "BACKEND": "django_cf_ingest.queues.celery.CeleryBackend",
            "OPTIONS": {"QUEUE": env("CELERY_INGEST_QUEUE", "ingest")},
        }
    queue_id = env("CF_AI_INGEST_QUEUE_ID")
    if not queue_id:
        return {"BACKEND": "django_cf_ingest.queues.database.DatabaseBackend"}
    return {
        "BACKEND": "django_cf_ingest.queues.cloudflare.CloudflareBackend",
        "OPTIONS": {
            "ACCOUNT_ID": env("CF_ACCOUNT_ID"),
            "API_TOKEN": env("CF_API_TOKEN"),
            "QUEUE": queue_id,
            "API_BASE_URL": env(
                "CF_API_BASE_URL", "https://api.cloudflare.com/client/v4"
            ),
            # "pull": cf_ingest_consume pulls; "worker": the Worker consumes.
            "CONSUMER": env("CF_QUEUE_CONSUMER", "pull"),
            "DEAD_LETTER_QUEUE": env("CF_DEAD_LETTER_QUEUE"),
        },
    }


def _providers() -> dict[str, dict[str, Any]]:
    providers: dict[str, dict[str, Any]] = {"ocr": {}}
    google_key = env("GOOGLE_API_KEY") or env("GEMINI_API_KEY")
    if google_key:
        providers["google"] = {"API_KEY": google_key, "MODEL": env("GEMINI_MODEL")}
        if env("GEMINI_BASE_URL"):
            providers["google"]["BASE_URL"] = env("GEMINI_BASE_URL")
    if env("CF_ACCOUNT_ID") and env("CF_API_TOKEN"):
        providers["workers_ai"] = {
            "ACCOUNT_ID": env("CF_ACCOUNT_ID"),
            "API_TOKEN": env("CF_API_TOKEN"),
            "MODEL": env("WORKERS_AI_MODEL"),
            "BASE_URL": env("CF_API_BASE_URL"),
        }
    if env("OPENAI_API_KEY") or env("OPENAI_BASE_URL"):
        providers["openai"] = {
            "API_KEY": env("OPENAI_API_KEY"),
            "BASE_URL": env("OPENAI_BASE_URL"),
            "MODEL": env("OPENAI_MODEL"),
        }
    # Empty strings mean "use the provider's default".
    return {
        name: {key: value for key, value in options.items() if value}
        for name, options in providers.items()
    }


def _chain() -> list[str]:
    chain = env("AI_PROVIDER_CHAIN") or env("AI_PROVIDER", "ocr")
    return [name.strip() for name in chain.split(",") if name.strip()]


CF_INGEST: dict[str, Any] = {
    "QUEUE": _queue(),
    "PROVIDERS": _providers(),
    "PROVIDER_CHAIN": _chain(),
    "CONFIDENCE_THRESHOLD": float(env("AI_CONFIDENCE_MIN", "0.7")),
    "REQUEUE_ON_LOW_CONFIDENCE": env_bool("AI_REQUEUE_ON_LOW_CONFIDENCE"),
    "INTERNAL_SECRETS": [s for s in env("INTERNAL_API_SECRET").split(",") if s.strip()],
    "INTERNAL_INGEST_BASE_URL": env(
        "INTERNAL_INGEST_BASE_URL", "http://127.0.0.1:8000"
    ),
    "USE_EDGE_INGEST": env_bool("USE_EDGE_INGEST"),
    "WORKERS_AI_MODEL": env(
        "WORKERS_AI_MODEL", "@cf/meta/llama-3.2-11b-vision-instruct"
    ),
    "FAILURE_WEBHOOK_URL": env("FAILURE_WEBHOOK_URL"),
    "PRICES": {
        "google": {"gemini-2.5-flash": {"input": 0.30, "output": 2.50}},
        "workers_ai": {
            "@cf/meta/llama-3.2-11b-vision-instruct": {"input": 0.049, "output": 0.68}
        },
    },
}
