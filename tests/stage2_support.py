"""Fixtures of the edge extraction tests: R2 played by moto's S3 server, a fake
Workers AI, and calls to the meta and complete endpoints."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from django_cf_ingest.models import Upload
from django_cf_ingest.services import create_upload

from .conftest import make_png
from .fakes.r2 import FakeR2
from .fakes.workers_ai import FakeWorkersAI

SECRET = "test-secret-0123456789abcdef"
PREFIX = "/internal/ingest/"
MODEL = "@cf/meta/llama-3.2-11b-vision-instruct"
BIG_FIVE = {
    "openness": 71,
    "conscientiousness": 64,
    "extraversion": 38,
    "agreeableness": 80,
    "neuroticism": 22,
}


@pytest.fixture(scope="session")
def fake_r2() -> Iterator[FakeR2]:
    server = FakeR2().start()
    yield server
    server.stop()


@dataclass
class R2Bucket:
    fake: FakeR2
    name: str

    def key_exists(self, key: str) -> bool:
        listing = self.fake.client().list_objects_v2(Bucket=self.name, Prefix=key)
        return any(item["Key"] == key for item in listing.get("Contents", []))


@pytest.fixture
def r2(fake_r2: FakeR2, settings: Any) -> R2Bucket:
    """A fresh bucket that holds the uploads for one test."""
    bucket = fake_r2.create_bucket()
    settings.STORAGES = fake_r2.storages(bucket)
    fake_r2.clear()
    return R2Bucket(fake_r2, bucket)


@pytest.fixture
def workers_ai() -> Iterator[FakeWorkersAI]:
    with FakeWorkersAI() as server:
        yield server


@pytest.fixture
def use_workers_ai(workers_ai: FakeWorkersAI, ingest_settings: Any) -> FakeWorkersAI:
    ingest_settings(
        PROVIDERS={"workers_ai": workers_ai.options()},
        PROVIDER_CHAIN=["workers_ai"],
        PRICES={"workers_ai": {MODEL: {"input": 0.049, "output": 0.68}}},
    )
    return workers_ai


def new_upload(
    content: bytes | None = None, slug: str = "big-five", name: str = "sheet.png"
) -> Upload:
    return create_upload(io.BytesIO(content or make_png(name)), slug, name=name)


class Internal:
    """Calls to the internal endpoints through Django's test client."""

    def __init__(self, secret: str = SECRET) -> None:
        self.client = Client()
        self.secret = secret

    def headers(self) -> dict[str, str]:
        return {"X-Internal-Secret": self.secret} if self.secret else {}

    def meta(self, upload_id: int | str) -> Any:
        return self.client.get(f"{PREFIX}meta/{upload_id}", headers=self.headers())

    def complete(self, body: Any) -> Any:
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        return self.client.post(
            f"{PREFIX}complete",
            content,
            content_type="application/json",
            headers=self.headers(),
        )


def report(meta: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A ``complete`` body for the run described by ``meta``."""
    body = {
        "uploadId": meta["uploadId"],
        "typeId": meta["typeId"],
        "typeSlug": meta["typeSlug"],
        "deliveryToken": meta["deliveryToken"],
        "provider": "workers_ai",
        "model": meta["model"],
        "status": "ok",
        "usage": {"tokensIn": 1620, "tokensOut": 48},
    }
    body.update(fields)
    return body


def error_code(response: Any) -> str:
    return str(response.json()["error"]["code"])
