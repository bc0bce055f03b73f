"""Test settings: the demo site's, on SQLite by default or on PostgreSQL when
``DATABASE_ENGINE=postgresql``, with files under a throwaway directory.

Subprocesses started by tests (consumers, servers) use these settings too and
reach the test database through ``CF_INGEST_TEST_DB_NAME``; they take extra
``CF_INGEST`` keys as JSON from ``CF_INGEST_TEST_OVERRIDES``.
"""

import json
import os
import tempfile

os.environ.setdefault("CF_INGEST_VAR_DIR", tempfile.mkdtemp(prefix="cf-ingest-test-"))

from example_project.settings import *  # noqa: F403
from example_project.settings import CF_INGEST, DATABASES, VAR_DIR

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["NAME"] = str(VAR_DIR / "test.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

if os.environ.get("CF_INGEST_TEST_DB_NAME"):
    # A subprocess of a test: use the test database itself.
    DATABASES["default"]["NAME"] = os.environ["CF_INGEST_TEST_DB_NAME"]
    DATABASES["default"].pop("TEST", None)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CF_INGEST = {
    **CF_INGEST,
    "INTERNAL_SECRETS": ["test-secret-0123456789abcdef"],
    "RETRY_BASE_DELAY": 0.05,
    "RETRY_MAX_DELAY": 1.0,
    **json.loads(os.environ.get("CF_INGEST_TEST_OVERRIDES", "{}")),
}
