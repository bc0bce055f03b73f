"""What the consumer does with one message, by stage.

A handler turns an upload id into a ``Decision``: ack, retry after a delay,
or give up. The worker loop does the rest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from django.db import close_old_connections

from ..models import Stage
from ..pipeline import Outcome, Result, process_upload

Action = Literal["ack", "retry"]


@dataclass(frozen=True)
class Decision:
    action: Action
    #: Short label for logs and statistics: done, already_done, failed, ...
    outcome: str
    delay: float | None = None
    reason: str = ""

    @classmethod
    def from_outcome(cls, outcome: Outcome) -> Decision:
        if outcome.result in (Result.RETRY, Result.BUSY):
            return cls(
                "retry", outcome.result.value, outcome.retry_after, outcome.error
            )
        return cls("ack", outcome.result.value, reason=outcome.error)


class Handler(ABC):
    #: The stage recorded on extractions and ledger rows.
    stage: str = Stage.IN_PROCESS

    @abstractmethod
    def handle(self, upload_id: int) -> Decision:
        """Deliver one upload. Must not raise for expected failures."""

    def close(self) -> None:
        """Release clients."""


class InProcessHandler(Handler):
    """Runs the pipeline in this process (single-host sites)."""

    stage = Stage.IN_PROCESS

    def handle(self, upload_id: int) -> Decision:
        try:
            return Decision.from_outcome(process_upload(upload_id, stage=self.stage))
        finally:
            close_old_connections()
