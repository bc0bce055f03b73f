"""Document types in code: a slug mapped to the pydantic model of its fields.

    from django_cf_ingest.registry import register

    @register("big-five", name="Big Five", instructions="Read the five scores.")
    class BigFive(BaseModel):
        openness: float = Field(ge=0, le=100, title="Openness")

Field titles and descriptions feed both the prompt and the JSON schema given to
the model. After ``migrate`` each registered type has a ``DocumentType`` row;
editors may change its instructions and threshold there.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pydantic import BaseModel

logger = logging.getLogger("django_cf_ingest.registry")


@dataclass(frozen=True)
class DocumentTypeSpec:
    slug: str
    name: str
    model: type[BaseModel]
    instructions: str = ""
    confidence_threshold: float | None = None
    provider_chain: tuple[str, ...] | None = None

    @cached_property
    def json_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()

    @cached_property
    def schema_version(self) -> str:
        canonical = json.dumps(self.json_schema, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


_registry: dict[str, DocumentTypeSpec] = {}


def register(
    slug: str,
    *,
    name: str | None = None,
    instructions: str = "",
    confidence_threshold: float | None = None,
    provider_chain: tuple[str, ...] | list[str] | None = None,
) -> Callable[[type[BaseModel]], type[BaseModel]]:
    """Class decorator that registers a pydantic model as a document type."""

    def decorator(model: type[BaseModel]) -> type[BaseModel]:
        register_model(
            slug,
            model,
            name=name,
            instructions=instructions,
            confidence_threshold=confidence_threshold,
            provider_chain=provider_chain,
        )
        return model

    return decorator


def register_model(
    slug: str,
    model: type[BaseModel],
    *,
    name: str | None = None,
    instructions: str = "",
    confidence_threshold: float | None = None,
    provider_chain: tuple[str, ...] | list[str] | None = None,
) -> DocumentTypeSpec:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"Document type {slug!r} must be a pydantic model class.")
    spec = DocumentTypeSpec(
        slug=slug,
        name=name or model.model_json_schema().get("title") or slug,
        model=model,
        instructions=instructions.strip() or (model.__doc__ or "").strip(),
        confidence_threshold=confidence_threshold,
        provider_chain=tuple(provider_chain) if provider_chain else None,
    )
    _registry[slug] = spec
    return spec


def unregister(slug: str) -> None:
    _registry.pop(slug, None)


def get_spec(slug: str) -> DocumentTypeSpec | None:
    return _registry.get(slug)


def all_specs() -> list[DocumentTypeSpec]:
    return list(_registry.values())


def sync_document_types(**kwargs: Any) -> None:
    """Create or update a DocumentType row for every registered schema.

    Connected to ``post_migrate``. Instructions and thresholds that editors
    changed are kept; only the name and the schema reference follow the code.
    """
    from .models import DocumentType

    using = kwargs.get("using", "default")
    for spec in all_specs():
        row, created = DocumentType.objects.using(using).get_or_create(
            slug=spec.slug,
            defaults={
                "name": spec.name,
                "schema": spec.slug,
                "instructions": spec.instructions,
                "confidence_threshold": spec.confidence_threshold,
            },
        )
        if not created and (row.name != spec.name or row.schema != spec.slug):
            row.name = spec.name
            row.schema = spec.slug
            row.save(update_fields=["name", "schema", "updated_at"])
        if created:
            logger.info("document type created slug=%s", spec.slug)
