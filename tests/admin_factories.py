"""Users, uploads and runs for the admin tests, made directly in the database
so no provider has to run."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import Permission
from django.utils import timezone
from PIL import Image, ImageDraw

from django_cf_ingest.models import (
    Extraction,
    ProviderCall,
    Stage,
    Upload,
    UploadStatus,
)
from django_cf_ingest.services import create_upload

from .conftest import make_png

PASSWORD = "correct horse battery"


def make_pdf(pages: int = 2, text: str = "Big Five results") -> bytes:
    images = []
    for number in range(1, pages + 1):
        image = Image.new("RGB", (620, 877), "white")
        ImageDraw.Draw(image).text((40, 40), f"{text} page {number}", fill="black")
        images.append(image)
    buffer = io.BytesIO()
    images[0].save(buffer, format="PDF", save_all=True, append_images=images[1:])
    return buffer.getvalue()


def permission(codename: str) -> Permission:
    app_label, _, name = codename.partition(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=name)


def make_user(username: str, *perms: str, superuser: bool = False) -> Any:
    """A user who may log in to the Wagtail admin, with these permissions
    (``app_label.codename``)."""
    from django.contrib.auth import get_user_model

    model = get_user_model()
    if superuser:
        return model.objects.create_superuser(
            username, f"{username}@example.com", PASSWORD
        )
    user = model.objects.create_user(
        username, f"{username}@example.com", PASSWORD, first_name=username.title()
    )
    user.user_permissions.add(permission("wagtailadmin.access_admin"))
    for codename in perms:
        user.user_permissions.add(permission(codename))
    return user


EDITOR_PERMISSIONS = (
    "cf_ingest.view_upload",
    "cf_ingest.add_upload",
    "cf_ingest.review_upload",
    "cf_ingest.replay_upload",
)


def make_upload(
    name: str = "sheet.png",
    document_type: str = "big-five",
    *,
    status: str = UploadStatus.NEEDS_REVIEW,
    content: bytes | None = None,
    uploaded_by: Any = None,
    **fields: Any,
) -> Upload:
    upload = create_upload(
        io.BytesIO(content if content is not None else make_png(name)),
        document_type,
        name=name,
        uploaded_by=uploaded_by,
    )
    Upload.objects.filter(pk=upload.pk).update(status=status, **fields)
    upload.refresh_from_db()
    return upload


BIG_FIVE = {
    "openness": 42.0,
    "conscientiousness": 55.0,
    "extraversion": 61.0,
    "agreeableness": 70.0,
    "neuroticism": 33.0,
}


def add_run(
    upload: Upload,
    data: dict[str, Any] | None = None,
    *,
    confidence: float = 0.9,
    provider: str = "google",
    model: str = "gemini-2.5-flash",
    valid: bool = True,
    errors: list[str] | None = None,
    tokens: tuple[int, int] = (1200, 150),
    cost: str = "0.000735",
    latency_ms: int = 1800,
    created_at: datetime | None = None,
) -> Extraction:
    """One finished run: an extraction and the provider call behind it."""
    spec = upload.document_type.spec
    assert spec is not None
    when = created_at or timezone.now()
    extraction = Extraction.objects.create(
        upload=upload,
        data=dict(BIG_FIVE if data is None else data),
        is_valid=valid,
        validation_errors=errors or [],
        schema_version=spec.schema_version,
        confidence=confidence,
        provider=provider,
        model=model,
        stage=Stage.IN_PROCESS,
        created_at=when,
    )
    ProviderCall.objects.create(
        upload=upload,
        extraction=extraction,
        provider=provider,
        model=model,
        stage=Stage.IN_PROCESS,
        tokens_in=tokens[0],
        tokens_out=tokens[1],
        cost=Decimal(cost),
        latency_ms=latency_ms,
        status=ProviderCall.Status.OK if valid else ProviderCall.Status.INVALID,
        created_at=when,
    )
    return extraction


def client_for(user: Any, *, enforce_csrf: bool = False) -> Any:
    """A test client logged in as the user."""
    from django.test import Client

    client = Client(enforce_csrf_checks=enforce_csrf)
    client.force_login(user)
    return client


def editor_client() -> tuple[Any, Any]:
    user = make_user("editor", *EDITOR_PERMISSIONS)
    return user, client_for(user)
