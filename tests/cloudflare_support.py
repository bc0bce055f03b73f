"""The Cloudflare Queues emulator as a test fixture, and helpers around it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from django_cf_ingest.emulator import Emulator, EmulatorServer, FaultPolicy
from django_cf_ingest.models import DocumentType, Upload
from django_cf_ingest.queues import get_backend
from django_cf_ingest.queues.cloudflare import CloudflareBackend

from .conftest import make_png

ACCOUNT_ID = "5f0c3e2a9b8d4c1e8f7a6b5c4d3e2f1a"
TOKEN = "test-queues-token-0123456789"
QUEUE = "ai-ingest"
FAKE = {"BACKEND": "tests.fake_provider.FakeProvider"}


@dataclass
class CloudflareSite:
    emulator: Emulator
    server: EmulatorServer

    @property
    def queue_id(self) -> str:
        return self.emulator.queue(QUEUE).id

    def queue_settings(self, **options: Any) -> dict[str, Any]:
        return {
            "BACKEND": "django_cf_ingest.queues.cloudflare.CloudflareBackend",
            "OPTIONS": {
                "ACCOUNT_ID": ACCOUNT_ID,
                "API_TOKEN": TOKEN,
                "QUEUE": QUEUE,
                "API_BASE_URL": self.server.base_url,
                "RELAY_INTERVAL": 0,
                **options,
            },
        }

    def path(self, suffix: str = "") -> str:
        return f"/client/v4/accounts/{ACCOUNT_ID}/queues/{self.queue_id}{suffix}"

    def messages(self, name: str = QUEUE) -> list[Any]:
        """Bodies of the messages stored in a queue."""
        queue = self.emulator.queue(name)
        with self.emulator.broker.lock:
            return [m.body for m in queue.messages.values()]


@pytest.fixture
def cloudflare() -> Iterator[CloudflareSite]:
    emulator = Emulator(account_id=ACCOUNT_ID, token=TOKEN, faults=FaultPolicy())
    emulator.add_queue(QUEUE, max_retries=10)
    server = emulator.serve()
    try:
        yield CloudflareSite(emulator, server)
    finally:
        server.stop()
    assert emulator.errors == [], "the emulator answered outside its OpenAPI schema"


@pytest.fixture
def use_cloudflare(
    cloudflare: CloudflareSite, ingest_settings: Callable[..., None]
) -> Callable[..., CloudflareBackend]:
    """Configure the Cloudflare backend against the emulator; returns it."""

    def apply(**options: Any) -> CloudflareBackend:
        ingest_settings(QUEUE=cloudflare.queue_settings(**options))
        backend = get_backend()
        assert isinstance(backend, CloudflareBackend)
        return backend

    return apply


def shared_file_uploads(count: int, *, slug: str = "big-five") -> list[Upload]:
    """Many uploads of one tiny stored image, created in bulk (two queries)."""
    image = make_png("Openness 42", size=(60, 20))
    name = default_storage.save("cf_ingest/shared/tiny.png", ContentFile(image))
    document_type = DocumentType.objects.get(slug=slug)
    uploads = [
        Upload(
            document_type=document_type,
            file=name,
            original_name=f"tiny-{n}.png",
            content_type="image/png",
            size=len(image),
            sha256="0" * 64,
        )
        for n in range(count)
    ]
    return Upload.objects.bulk_create(uploads, batch_size=2000)
