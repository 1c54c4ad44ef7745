"""``retry``: send a failed delivery again, a bounded number of times, with backoff.

Declared ``Step(..., retry=Retry(max_attempts, backoff_seconds, multiplier=2.0,
max_backoff_seconds=None))``, stored as ``config["retry"] = {"max_attempts": 3,
"backoff_seconds": 60, "multiplier": 2.0, "max_backoff_seconds": 3600}``. When a delivery of
the step fails and it has attempts left, it goes back to pending, claimable again after
``min(backoff_seconds * multiplier ** (attempt - 1), max_backoff_seconds)``; the attempt that
reaches ``max_attempts`` exhausts it, and the run branches on ``retries_exhausted``
(CONTRACT §12.2). Deciding that is :func:`chimeway_lite.machine.deliveries.record`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from ...core.names import MAX_DELAY_SECONDS, is_int
from ...core.text import duration_text, shown
from .base import StepOption, Where

KEY = "retry"
MAX_ATTEMPTS = 100
MAX_SECONDS = MAX_DELAY_SECONDS
_LATEST = datetime.max.replace(tzinfo=UTC)


def _multiplier(value: Any) -> Any:
    # 2 and 2.0 are one policy: store the float, so the two declare the same definition.
    return float(value) if is_int(value) else value


@attrs.frozen
class Retry:
    """Retry a failed delivery up to ``max_attempts`` attempts in all, waiting
    ``backoff_seconds`` after the first failure and ``multiplier`` times longer after each
    next one, never longer than ``max_backoff_seconds``."""

    max_attempts: int
    backoff_seconds: int
    multiplier: float = attrs.field(default=2.0, converter=_multiplier)
    max_backoff_seconds: int | None = None

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after attempt number ``attempt`` (1-based) failed."""
        try:
            seconds = self.backoff_seconds * self.multiplier ** (attempt - 1)
        except OverflowError:
            seconds = math.inf
        if self.max_backoff_seconds is not None:
            seconds = min(seconds, self.max_backoff_seconds)
        return float(seconds)

    def retry_at(self, attempt: int, now: datetime) -> datetime:
        """When a delivery whose attempt ``attempt`` failed at ``now`` may be claimed again."""
        try:
            return now + timedelta(seconds=self.backoff(attempt))
        except (OverflowError, ValueError):
            return _LATEST


class RetryOption(StepOption[Retry]):
    """The ``retry`` step option."""

    key = KEY
    option_type = Retry
    required_keys = frozenset({"max_attempts", "backoff_seconds"})
    optional_keys = frozenset({"multiplier", "max_backoff_seconds"})

    def from_dict(self, data: Mapping[str, Any]) -> Retry:
        """A Retry from ``config["retry"]``."""
        return Retry(
            data["max_attempts"],
            data["backoff_seconds"],
            data.get("multiplier", 2.0),
            data.get("max_backoff_seconds"),
        )

    def to_dict(self, option: Retry) -> dict[str, Any]:
        """The stored form: max_backoff_seconds only when set."""
        data: dict[str, Any] = {
            "max_attempts": option.max_attempts,
            "backoff_seconds": option.backoff_seconds,
            "multiplier": option.multiplier,
        }
        if option.max_backoff_seconds is not None:
            data["max_backoff_seconds"] = option.max_backoff_seconds
        return data

    def validate(self, option: Retry, where: Where) -> None:
        """max_attempts 1..100; backoff_seconds ≥ 1; multiplier 1..10; a cap ≥ the backoff."""
        attempts = option.max_attempts
        if not is_int(attempts) or not 1 <= attempts <= MAX_ATTEMPTS:
            raise where.error(
                "max_attempts", f"must be an int from 1 to {MAX_ATTEMPTS}, got {shown(attempts)}"
            )
        backoff = option.backoff_seconds
        if not is_int(backoff) or not 1 <= backoff <= MAX_SECONDS:
            raise where.error(
                "backoff_seconds", f"must be an int from 1 to {MAX_SECONDS}, got {shown(backoff)}"
            )
        multiplier = option.multiplier
        if (
            not isinstance(multiplier, float)
            or not math.isfinite(multiplier)
            or not 1 <= multiplier <= 10
        ):
            raise where.error(
                "multiplier", f"must be a number from 1 to 10, got {shown(multiplier)}"
            )
        cap = option.max_backoff_seconds
        if cap is not None and (not is_int(cap) or not backoff <= cap <= MAX_SECONDS):
            raise where.error(
                "max_backoff_seconds",
                f"must be an int >= backoff_seconds ({backoff}) or absent, got {shown(cap)}",
            )

    def describe(self, option: Retry) -> str:
        """``retried up to 3 attempts, first after 1 min, 2 times longer each time``."""
        text = (
            f"retried up to {option.max_attempts} attempts, first after "
            f"{duration_text(option.backoff_seconds)}"
        )
        if option.multiplier != 1:
            text += f", {option.multiplier:g} times longer each time"
        if option.max_backoff_seconds is not None:
            text += f", at most {duration_text(option.max_backoff_seconds)}"
        return text


OPTION = RetryOption()
