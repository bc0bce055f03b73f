"""The provider chain: try providers in order until one is confident enough.

Each provider's answer is validated against the document type's schema. An
invalid answer is asked for once more with the validation errors. While the
confidence stays under the threshold, the next provider is tried, and the best
answer is kept. Every call, failed ones included, becomes a ledger record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from ..conf import get_settings
from ..exceptions import (
    InvalidOutputError,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
)
from ..registry import DocumentTypeSpec
from ..validation import Validated, validate_output
from . import get_provider
from .base import ExtractionRequest, Provider, ProviderResult, Usage

logger = logging.getLogger("django_cf_ingest.providers")


@dataclass
class CallRecord:
    provider: str
    model: str
    purpose: str
    status: str  # "ok", "invalid" or "error"
    usage: Usage = field(default_factory=Usage)
    latency_ms: int = 0
    error_class: str = ""
    error_message: str = ""

    @property
    def cost(self) -> Decimal:
        return price(self.provider, self.model, self.usage)


@dataclass
class Attempt:
    provider: str
    model: str
    result: ProviderResult
    validated: Validated
    confidence: float

    @property
    def rank(self) -> tuple[bool, float]:
        return (self.validated.is_valid, self.confidence)


@dataclass
class ChainResult:
    best: Attempt
    calls: list[CallRecord]


class ChainFailed(Exception):
    """No provider produced an answer. ``error`` says whether to retry."""

    def __init__(self, error: ProviderError, calls: list[CallRecord]) -> None:
        super().__init__(str(error))
        self.error = error
        self.calls = calls


def price(provider: str, model: str, usage: Usage) -> Decimal:
    table = get_settings().PRICES.get(provider, {})
    rates = table.get(model) or table.get("*") or {}
    per_million = Decimal(1_000_000)
    cost = Decimal(str(rates.get("input", 0))) * usage.tokens_in / per_million
    cost += Decimal(str(rates.get("output", 0))) * usage.tokens_out / per_million
    return cost.quantize(Decimal("0.000001"))


def score(result: ProviderResult, validated: Validated) -> float:
    """The answer's confidence: the provider's own where it gives one (it then
    already weighs how much of the schema it found), else the share of the
    schema's fields present and valid. Invalid answers count half."""
    if result.confidence is not None:
        confidence = max(0.0, min(1.0, result.confidence))
    else:
        confidence = validated.coverage
    if not validated.is_valid:
        confidence *= 0.5
    return round(confidence, 4)


def evaluate(
    provider: str,
    model: str,
    spec: DocumentTypeSpec,
    purpose: str,
    calls: list[CallRecord],
    produce: Callable[[], ProviderResult],
    *,
    latency_ms: int | None = None,
) -> Attempt:
    """Get one answer from ``produce``, validate it and record the call.

    Used for the chain's own calls and for answers a consumer obtained at the
    edge, so both leave the same attempt and the same ledger record. A
    ``ProviderError`` other than invalid output is recorded and raised again.
    ``latency_ms`` replaces the measured time when the call happened elsewhere.
    """
    started = time.monotonic()

    def elapsed() -> int:
        if latency_ms is not None:
            return latency_ms
        return int((time.monotonic() - started) * 1000)

    try:
        result = produce()
    except InvalidOutputError as exc:
        result = ProviderResult(
            data=None,
            model=model,
            usage=Usage(exc.tokens_in, exc.tokens_out),
            raw_text=exc.raw_text,
        )
        validated = Validated(data={}, is_valid=False, errors=[str(exc)])
    except ProviderError as exc:
        calls.append(
            CallRecord(
                provider=provider,
                model=model,
                purpose=purpose,
                status="error",
                usage=Usage(exc.tokens_in, exc.tokens_out),
                latency_ms=elapsed(),
                error_class=type(exc).__name__,
                error_message=str(exc)[:1000],
            )
        )
        raise
    else:
        validated = validate_output(spec, result.data)
    calls.append(
        CallRecord(
            provider=provider,
            model=result.model or model,
            purpose=purpose,
            status="ok" if validated.is_valid else "invalid",
            usage=result.usage,
            latency_ms=elapsed(),
            error_class="" if validated.is_valid else "InvalidOutputError",
            error_message="; ".join(validated.errors)[:1000],
        )
    )
    return Attempt(
        provider=provider,
        model=result.model or model,
        result=result,
        validated=validated,
        confidence=score(result, validated),
    )


def _call(
    provider: Provider,
    request: ExtractionRequest,
    purpose: str,
    calls: list[CallRecord],
) -> Attempt:
    return evaluate(
        provider.name,
        provider.model,
        request.spec,
        purpose,
        calls,
        lambda: provider.extract(request),
    )


def run_chain(
    request: ExtractionRequest, chain: tuple[str, ...] | list[str], threshold: float
) -> ChainResult:
    config = get_settings()
    calls: list[CallRecord] = []
    errors: list[ProviderError] = []
    best: Attempt | None = None

    for index, name in enumerate(chain):
        provider = get_provider(name)
        purpose = "primary" if index == 0 else "fallback"
        try:
            attempt = _call(provider, request, purpose, calls)
            if (
                not attempt.validated.is_valid
                and config.REASK_ON_INVALID
                and provider.supports_reask
            ):
                reask = replace(
                    request,
                    previous_errors=tuple(attempt.validated.errors),
                    previous_output=attempt.result.raw_text,
                )
                second = _call(provider, reask, "reask", calls)
                attempt = max(attempt, second, key=lambda a: a.rank)
        except ProviderError as exc:
            logger.warning(
                "provider call failed provider=%s error=%s", name, type(exc).__name__
            )
            errors.append(exc)
            continue

        if best is None or attempt.rank > best.rank:
            best = attempt
        if attempt.validated.is_valid and attempt.confidence >= threshold:
            break
        logger.info(
            "provider under threshold provider=%s confidence=%.2f threshold=%.2f",
            name,
            attempt.confidence,
            threshold,
        )

    if best is None:
        raise ChainFailed(_decisive_error(errors), calls)
    return ChainResult(best=best, calls=calls)


def _decisive_error(errors: list[ProviderError]) -> ProviderError:
    """A transient failure anywhere means a retry may succeed."""
    transient = [e for e in errors if isinstance(e, TransientProviderError)]
    if transient:
        delays = [e.retry_after for e in transient if e.retry_after]
        first = transient[0]
        if delays:
            first.retry_after = max(delays)
        return first
    if errors:
        return errors[0]
    return PermanentProviderError("No provider is configured for this document type.")


def describe(attempt: Attempt) -> dict[str, Any]:
    return {"provider": attempt.provider, "model": attempt.model}
