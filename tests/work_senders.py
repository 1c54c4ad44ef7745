"""Senders for the tests of ``chimeway-lite work``, named as ``--senders work_senders:NAME``
(``tests/`` is on ``sys.path`` in the test process)."""

from __future__ import annotations

import threading
from typing import Any

from chimeway_lite import Delivery

#: (channel, recipient) of every delivery the senders below were handed, in order.
SENT: list[tuple[str, str]] = []
#: Set to let :func:`hang` return.
RELEASE = threading.Event()


def send(delivery: Delivery) -> None:
    """Deliver (nothing): recorded ``succeeded``."""
    SENT.append((delivery.channel, delivery.recipient))


def bounce(delivery: Delivery) -> tuple[str, str]:
    """The message bounced."""
    SENT.append((delivery.channel, delivery.recipient))
    return "cancelled", "bounced"


def explode(delivery: Delivery) -> None:
    """A sender whose error text quotes its recipient (which must go nowhere)."""
    SENT.append((delivery.channel, delivery.recipient))
    raise RuntimeError(f"SMTP refused {delivery.recipient}@example.org")


def hang(delivery: Delivery) -> None:
    """A sender that hangs until :data:`RELEASE` is set (at most 3 s)."""
    SENT.append((delivery.channel, delivery.recipient))
    RELEASE.wait(3)


SENDERS = {"in_app": send, "email": send}
BOUNCING = {"in_app": bounce, "email": send}
EXPLODING = {"in_app": explode, "email": explode}
HANGING = {"in_app": hang, "email": hang}
NOT_A_MAPPING = [send]
NOT_CALLABLE: dict[str, Any] = {"email": "smtp://localhost"}
EMPTY: dict[str, Any] = {}
BLANK_CHANNEL = {" ": send}


def make_senders() -> dict[str, Any]:
    """A factory of senders, as ``--senders work_senders:make_senders``."""
    return SENDERS


def broken_factory() -> dict[str, Any]:
    """A factory that fails."""
    raise RuntimeError("no SMTP configured\nsecond line")


class Holder:
    """Senders one attribute further, as ``--senders work_senders:Holder.senders``."""

    senders = SENDERS
