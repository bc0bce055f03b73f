"""The AI provider interface.

A provider turns one document into data for one document type. It returns a
``ProviderResult``, or raises one of the ``ProviderError`` classes, which tell
the queue whether to retry. Providers do no database work: the pipeline
records every call in the usage ledger.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from django.core.checks import CheckMessage

from ..registry import DocumentTypeSpec


@dataclass(frozen=True)
class ExtractionRequest:
    spec: DocumentTypeSpec
    instructions: str
    content: bytes
    content_type: str
    filename: str = ""
    #: Validation errors of a previous answer, for a re-ask.
    previous_errors: tuple[str, ...] = ()
    previous_output: str = ""

    @property
    def json_schema(self) -> dict[str, Any]:
        return self.spec.json_schema


@dataclass
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass
class ProviderResult:
    #: Parsed output, before schema validation. None when nothing was parsed.
    data: dict[str, Any] | None
    model: str
    usage: Usage = field(default_factory=Usage)
    #: The vendor's response, kept on the extraction for debugging. Never logged.
    raw_response: Any = None
    #: The answer's text, where the provider answers with text.
    raw_text: str = ""
    #: The provider's own confidence in [0, 1], where it has one. It replaces
    #: the schema coverage the chain would compute, so it must account for
    #: fields the provider did not find.
    confidence: float | None = None


class Provider(ABC):
    """Base class of AI providers, configured under ``CF_INGEST["PROVIDERS"]``."""

    #: Name used in settings, the ledger and the admin.
    name: str = ""
    #: Whether asking again with the validation errors can help.
    supports_reask: bool = True

    def __init__(self, name: str, options: dict[str, Any] | None = None) -> None:
        self.name = name
        self.options = dict(options or {})

    @property
    def model(self) -> str:
        return str(self.options.get("MODEL", ""))

    @abstractmethod
    def extract(self, request: ExtractionRequest) -> ProviderResult:
        """Run the model on the document. Raise ``ProviderError`` subclasses."""

    def check(self) -> list[CheckMessage]:
        """System check messages about this provider's configuration."""
        return []

    def close(self) -> None:
        """Release network clients and other resources."""
