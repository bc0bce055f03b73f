"""Run management commands in subprocesses that share the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def child_env(**overrides: Any) -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["CF_INGEST_TEST_DB_NAME"] = str(connection.settings_dict["NAME"])
    env["CF_INGEST_VAR_DIR"] = str(settings.VAR_DIR)
    env["CF_INGEST_TEST_OVERRIDES"] = json.dumps(overrides)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def manage(*args: str, **overrides: Any) -> subprocess.Popen[str]:
    """Start ``manage.py <args>`` on the test database; the caller waits/kills it."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=child_env(**overrides),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
