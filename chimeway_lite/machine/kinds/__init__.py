"""The registry of rule kinds: every kind of progress rule the engine knows, in one list.

Each kind is one module holding one :class:`~chimeway_lite.machine.kinds.base.RuleKind` (see there);
:data:`RULE_KINDS` lists them. Declarations (:mod:`chimeway_lite.declarations`) read dict
keys, validation and the dict form here; the machine (:mod:`chimeway_lite.machine`) reads
the decision hooks and the moves. To add a kind, write its module and add its ``KIND`` to
:data:`RULE_KINDS` (``docs/ARCHITECTURE.md`` walks through it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...core.errors import InvalidWorkflow
from ...core.text import shown
from . import on_outcome, on_signal, retry, stop, wait_until
from .base import RuleKind, Situation, StepOption, Where, kind_of, wait_signals
from .on_outcome import OnOutcome
from .on_signal import OnSignal
from .retry import Retry
from .stop import Stop
from .wait_until import WaitUntil

__all__ = [
    "RULE_KINDS",
    "STEP_OPTIONS",
    "OnOutcome",
    "OnSignal",
    "Retry",
    "Rule",
    "RuleKind",
    "Situation",
    "StepOption",
    "Stop",
    "WaitUntil",
    "Where",
    "kind_named",
    "kind_of",
    "option_from_dict",
    "options_of",
    "rule_from_dict",
    "rule_to_dict",
    "rules_of",
    "wait_signals",
]

#: Every rule kind, in the order their names are listed in messages.
RULE_KINDS: tuple[RuleKind[Any], ...] = (
    wait_until.KIND,
    on_outcome.KIND,
    stop.KIND,
    on_signal.KIND,
)

#: A typed rule of any registered kind.
Rule = WaitUntil | OnOutcome | Stop | OnSignal

#: Every step option: what a step may declare besides its rules, each under its config key.
STEP_OPTIONS: tuple[StepOption[Any], ...] = (retry.OPTION,)

_BY_NAME: Mapping[str, RuleKind[Any]] = {k.name: k for k in RULE_KINDS}
RULE_KIND_NAMES = tuple(_BY_NAME)
RULE_TYPE_NAMES = ", ".join(k.rule_type.__name__ for k in RULE_KINDS[:-1]) + (
    f" or {RULE_KINDS[-1].rule_type.__name__}"
)


def kind_named(name: object) -> RuleKind[Any] | None:
    """The kind called ``name`` (``"wait_until"`` …), or None."""
    return _BY_NAME.get(name) if isinstance(name, str) else None


def rule_from_dict(
    data: Any, path: str = "rule", *, step: str | None = None, index: int = 0
) -> Any:
    """Build one rule from its dict form (``{"kind": "wait_until", ...}``); unknown and
    missing keys raise :class:`InvalidWorkflow`. The rule is not validated yet."""
    if not isinstance(data, Mapping):
        raise InvalidWorkflow(
            path, f"a rule must be a dict, got {type(data).__name__}", step=step, rule=index
        )
    raw = data.get("kind")
    kind = kind_named(raw)
    if kind is None:
        raise InvalidWorkflow(
            f"{path}.kind",
            f"must be one of {', '.join(RULE_KIND_NAMES)}; got {shown(raw)}",
            step=step,
            rule=index,
        )
    allowed = kind.required_keys | kind.optional_keys | {"kind"}
    where = f"{path}({kind.name})"
    unknown = sorted(str(k) for k in data if k not in allowed)
    if unknown:
        raise InvalidWorkflow(where, f"unknown keys {', '.join(unknown)}", step=step, rule=index)
    missing = sorted(kind.required_keys - set(data))
    if missing:
        raise InvalidWorkflow(where, f"missing keys {', '.join(missing)}", step=step, rule=index)
    return kind.from_dict(data)


def rule_to_dict(rule: Any) -> dict[str, Any]:
    """The dict form of a rule, as stored in ``config["progress"]``."""
    return kind_of(rule).to_dict(rule)


def rules_of(config: Mapping[str, Any]) -> tuple[Any, ...]:
    """The rules stored in a step's config (already validated when it was registered)."""
    return tuple(rule_from_dict(r) for r in config.get("progress", ()))


def option_from_dict(
    option: StepOption[Any], data: Any, path: str, *, step: str | None = None
) -> Any:
    """Build a step option from its dict form (``config["retry"]``); unknown and missing
    keys raise :class:`InvalidWorkflow`. The option is not validated yet."""
    if not isinstance(data, Mapping):
        raise InvalidWorkflow(path, f"must be a dict, got {type(data).__name__}", step=step)
    unknown = sorted(str(k) for k in data if k not in option.required_keys | option.optional_keys)
    if unknown:
        raise InvalidWorkflow(path, f"unknown keys {', '.join(unknown)}", step=step)
    missing = sorted(option.required_keys - set(data))
    if missing:
        raise InvalidWorkflow(path, f"missing keys {', '.join(missing)}", step=step)
    return option.from_dict(data)


def options_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The step options stored in a step's config, by key (already validated)."""
    return {
        o.key: option_from_dict(o, config[o.key], o.key) for o in STEP_OPTIONS if o.key in config
    }
