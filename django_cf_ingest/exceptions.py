"""Exceptions raised by django-cf-ingest.

    IngestError
    ├── UploadRejected            the file itself is unacceptable (400 at upload time)
    ├── ProviderError             a call to an AI provider failed
    │   ├── TransientProviderError      timeouts, 429, 5xx: retry later
    │   │   └── RateLimited               429 with an optional Retry-After
    │   ├── PermanentProviderError      other 4xx, unsupported input: do not retry
    │   │   └── LicenceNotAccepted        Workers AI error 5016
    │   └── InvalidOutputError          the model answered, but not with valid data
    └── QueueError                a queue backend call failed
        ├── TransientQueueError         retry the call later
        └── PermanentQueueError         the request itself is wrong

Configuration problems raise ``ImproperlyConfigured`` (or ``MissingExtra``),
which sits outside this tree so that no ``except IngestError`` swallows them.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class IngestError(Exception):
    """Base class of the app's runtime errors."""


class UploadRejected(IngestError):
    """The uploaded file is empty, corrupt, too large or of an unsupported type."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class ProviderError(IngestError):
    """A call to an AI provider failed."""

    #: Stable machine-readable name of the failure, stored in the usage ledger.
    code = "provider_error"
    #: Tokens the failed call still consumed, where the vendor reported them.
    tokens_in: int = 0
    tokens_out: int = 0

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class TransientProviderError(ProviderError):
    """A failure that may pass: a timeout, a rate limit, a server error."""

    code = "transient"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class RateLimited(TransientProviderError):
    code = "rate_limited"


class PermanentProviderError(ProviderError):
    """A failure that will happen again: a bad request, an unsupported input."""

    code = "permanent"


class LicenceNotAccepted(PermanentProviderError):
    code = "licence_not_accepted"


class InvalidOutputError(ProviderError):
    """The provider answered, but its output is not valid data for the schema."""

    code = "invalid_output"

    def __init__(self, message: str, *, raw_text: str = "") -> None:
        super().__init__(message)
        self.raw_text = raw_text


class QueueError(IngestError):
    """A queue backend call failed."""


class TransientQueueError(QueueError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentQueueError(QueueError):
    pass


class MissingExtra(ImproperlyConfigured):
    """An optional dependency is not installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs an optional dependency: "
            f'pip install "django-cf-ingest[{extra}]"'
        )
