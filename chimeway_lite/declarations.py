"""Declaring a workflow: ``Workflow``, ``Step`` and the progress rules, typed or as dicts.

The typed classes only normalise (lists become tuples, strings are trimmed, enum members
become their values, ``config=None`` becomes ``{}``, steps are kept sorted by order); every
rule of SPEC §2 is checked by :func:`coerce_workflow`, which raises :class:`InvalidWorkflow`
naming the field, step and rule at fault. Nothing here touches the store.

The dict form is the JSON shape of the stored rows::

    {"workflow_key": "signup", "workflow_version": 1, "steps": [
        {"step_key": "inapp", "step_order": 1, "channel": "in_app",
         "config": {"progress": [{"kind": "wait_until", "delay_seconds": 7200,
                                  "to_step": "email", "cancel_signals": ["read"]}]}},
        {"step_key": "email", "step_order": 2, "channel": "email", "config": {}}]}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar

import attrs

from .errors import InvalidWorkflow
from .records import Outcome

WAIT_UNTIL = "wait_until"
ON_OUTCOME = "on_outcome"
STOP = "stop"
RULE_KINDS = (WAIT_UNTIL, ON_OUTCOME, STOP)
DEFAULT_ANCHOR = "prior_delivery_terminal_at"

MAX_CANCEL_SIGNALS = 10
MAX_STEPS = 100
MAX_RULES_PER_STEP = 32
MAX_NAME_LENGTH = 200
MAX_CONFIG_BYTES = 64 * 1024
MAX_CONFIG_DEPTH = 32
MAX_VERSION = 2**63 - 1  # the largest SQLite INTEGER

_OUTCOMES = frozenset(o.value for o in Outcome)


# -- converters: normalise, never raise (validation reports what is still wrong) -------------


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else _trim(value)


def _signal_names(value: Any) -> Any:
    if not isinstance(value, (list, tuple)):
        return value
    seen: dict[Any, None] = {}
    for name in value:
        name = _trim(name)
        try:
            seen.setdefault(name, None)
        except TypeError:  # unhashable: keep it so that validation names it
            return tuple(_trim(n) for n in value)
    return tuple(seen)


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _plain(value: Any) -> Any:
    # A copy with tuples as lists: what the stored JSON gives back, so that a config holding
    # a tuple still equals its persisted_workflow() (and later changes to the caller's dict
    # do not reach the declaration).
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _config(value: Any) -> Any:
    if value is None:
        return {}
    try:
        return _plain(value)
    except RecursionError:  # absurdly deep: keep it as given, validation names it
        return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _sorted_steps(value: Any) -> Any:
    steps = _as_tuple(value)
    if isinstance(steps, tuple) and all(isinstance(s, Step) and _is_int(s.order) for s in steps):
        return tuple(sorted(steps, key=lambda s: s.order))
    return steps


# -- the typed declarations -------------------------------------------------------------------


@attrs.frozen
class WaitUntil:
    """Wait ``delay_seconds`` after the step's delivery settled, then go to ``to_step``,
    unless one of ``cancel_signals`` arrives first."""

    kind: ClassVar[str] = WAIT_UNTIL

    delay_seconds: int
    to_step: str = attrs.field(converter=_trim)
    cancel_signals: tuple[str, ...] = attrs.field(default=(), converter=_signal_names)
    anchor: str = attrs.field(default=DEFAULT_ANCHOR, kw_only=True, converter=_trim)


@attrs.frozen
class OnOutcome:
    """When the step's delivery ends with ``outcome``, go to ``to_step`` at once."""

    kind: ClassVar[str] = ON_OUTCOME

    outcome: str = attrs.field(converter=_enum_value)
    to_step: str = attrs.field(converter=_trim)


@attrs.frozen
class Stop:
    """When the step's delivery ends with ``outcome``, stop the run."""

    kind: ClassVar[str] = STOP

    outcome: str = attrs.field(converter=_enum_value)


Rule = WaitUntil | OnOutcome | Stop


@attrs.frozen
class Step:
    """One step: a delivery on ``channel``, then the first matching ``progress`` rule."""

    key: str = attrs.field(converter=_trim)
    order: int
    channel: str = attrs.field(converter=_trim)
    progress: tuple[Rule, ...] = attrs.field(default=(), converter=_as_tuple)
    config: dict[str, Any] = attrs.field(default=None, converter=_config)


@attrs.frozen
class Workflow:
    """A journey: its identity (``key``, ``version``) and its steps, kept sorted by order."""

    key: str = attrs.field(converter=_trim)
    version: int
    steps: tuple[Step, ...] = attrs.field(converter=_sorted_steps)


# -- validation ---------------------------------------------------------------------------------

NOT_UNICODE = "must be valid Unicode text (no lone surrogates)"


def is_unicode(text: str) -> bool:
    """True when ``text`` encodes as UTF-8 (a lone surrogate does not, and sqlite3 cannot
    store it). Kept here, not imported from arguments, so this module stays pure."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _name(value: Any, path: str, *, step: str | None = None, rule: int | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidWorkflow(
            path, f"must be a string, got {type(value).__name__}", step=step, rule=rule
        )
    if not value:
        raise InvalidWorkflow(path, "must not be blank", step=step, rule=rule)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidWorkflow(
            path, f"is longer than {MAX_NAME_LENGTH} characters", step=step, rule=rule
        )
    if "\x00" in value:
        # SQLite's JSON functions cut text at NUL: such a cancel signal could never match.
        raise InvalidWorkflow(path, "must not contain NUL characters", step=step, rule=rule)
    if not is_unicode(value):
        raise InvalidWorkflow(path, NOT_UNICODE, step=step, rule=rule)
    return value


def _json_size(value: Any) -> int:
    try:
        text = json.dumps(value, sort_keys=True, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(str(exc)) from None
    return len(text.encode())


def _check_json(value: Any, path: str, step: str) -> None:
    """Config must be plain JSON: dicts with string keys, lists, str, int, float, bool, None."""
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)) and depth >= MAX_CONFIG_DEPTH:
            # json.dumps (and the Step converter) recurse: refuse before they overflow
            raise InvalidWorkflow(
                where, f"is nested deeper than {MAX_CONFIG_DEPTH} levels", step=step
            )
        if isinstance(item, dict):
            for k, v in item.items():
                if not isinstance(k, str):
                    raise InvalidWorkflow(where, f"has a non-string key {k!r}", step=step)
                if not is_unicode(k):
                    raise InvalidWorkflow(where, f"has a key that {NOT_UNICODE}", step=step)
                stack.append((v, f"{where}.{k}", depth + 1))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidWorkflow(where, "holds a non-finite number", step=step)
        elif isinstance(item, str) and not is_unicode(item):
            raise InvalidWorkflow(where, NOT_UNICODE, step=step)
        elif item is not None and not isinstance(item, (str, int, float, bool)):
            raise InvalidWorkflow(where, f"holds a {type(item).__name__}, not JSON", step=step)


def _validate_rule(rule: Any, path: str, step: str, index: int, keys: set[str]) -> None:
    where = f"{path}.progress[{index}]"
    if not isinstance(rule, (WaitUntil, OnOutcome, Stop)):
        raise InvalidWorkflow(
            where,
            f"must be WaitUntil, OnOutcome or Stop, got {type(rule).__name__}",
            step=step,
            rule=index,
        )
    where = f"{where}({rule.kind})"
    if isinstance(rule, WaitUntil):
        if not _is_int(rule.delay_seconds) or rule.delay_seconds <= 0:
            raise InvalidWorkflow(
                f"{where}.delay_seconds",
                f"must be an int > 0, got {rule.delay_seconds!r}",
                step=step,
                rule=index,
            )
        if rule.anchor != DEFAULT_ANCHOR:
            raise InvalidWorkflow(
                f"{where}.anchor",
                f"must be {DEFAULT_ANCHOR!r} (the only anchor), got {rule.anchor!r}",
                step=step,
                rule=index,
            )
        signals = rule.cancel_signals
        if not isinstance(signals, tuple):
            raise InvalidWorkflow(
                f"{where}.cancel_signals",
                f"must be a list of strings, got {type(signals).__name__}",
                step=step,
                rule=index,
            )
        for i, name in enumerate(signals):
            _name(name, f"{where}.cancel_signals[{i}]", step=step, rule=index)
        if len(signals) > MAX_CANCEL_SIGNALS:
            raise InvalidWorkflow(
                f"{where}.cancel_signals",
                f"has {len(signals)} distinct names; at most {MAX_CANCEL_SIGNALS} are allowed",
                step=step,
                rule=index,
            )
    else:
        if not isinstance(rule.outcome, str) or rule.outcome not in _OUTCOMES:
            raise InvalidWorkflow(
                f"{where}.outcome",
                f"must be one of {', '.join(sorted(_OUTCOMES))}; got {rule.outcome!r}",
                step=step,
                rule=index,
            )
    if isinstance(rule, (WaitUntil, OnOutcome)):
        to_step = _name(rule.to_step, f"{where}.to_step", step=step, rule=index)
        if to_step not in keys:
            raise InvalidWorkflow(
                f"{where}.to_step",
                f"names no step of this workflow: {to_step!r}",
                step=step,
                rule=index,
            )


def validate_workflow(workflow: Workflow) -> Workflow:
    """Check every rule of SPEC §2 and return the workflow, or raise :class:`InvalidWorkflow`."""
    _name(workflow.key, "workflow_key")
    if not _is_int(workflow.version) or not 0 < workflow.version <= MAX_VERSION:
        raise InvalidWorkflow(
            "workflow_version",
            f"must be an int > 0 (at most {MAX_VERSION}), got {workflow.version!r}",
        )
    steps = workflow.steps
    if not isinstance(steps, tuple):
        raise InvalidWorkflow("steps", f"must be a list of steps, got {type(steps).__name__}")
    if not steps:
        raise InvalidWorkflow("steps", "a workflow needs at least one step")
    if len(steps) > MAX_STEPS:
        raise InvalidWorkflow("steps", f"has {len(steps)} steps; at most {MAX_STEPS} allowed")
    keys: set[str] = set()
    for i, step in enumerate(steps):
        if not isinstance(step, Step):
            raise InvalidWorkflow(f"steps[{i}]", f"must be a Step, got {type(step).__name__}")
        key = _name(step.key, f"steps[{i}].step_key")
        if key in keys:
            raise InvalidWorkflow(f"steps[{i}].step_key", f"duplicate step key {key!r}", step=key)
        keys.add(key)
    orders = []
    for i, step in enumerate(steps):
        path = f"steps[{i}]({step.key})"
        if not _is_int(step.order):
            raise InvalidWorkflow(
                f"{path}.step_order", f"must be an int, got {step.order!r}", step=step.key
            )
        orders.append(step.order)
        _name(step.channel, f"{path}.channel", step=step.key)
    seen_orders: set[int] = set()
    for i, step in enumerate(steps):
        # Name the first step whose order repeats or falls outside 1..N (SPEC §2: the error
        # names the offending step).
        if step.order in seen_orders or not 1 <= step.order <= len(steps):
            raise InvalidWorkflow(
                f"steps[{i}]({step.key}).step_order",
                f"step orders must be exactly 1..{len(steps)}, each once; got {sorted(orders)}",
                step=step.key,
            )
        seen_orders.add(step.order)
    for i, step in enumerate(steps):
        path = f"steps[{i}]({step.key})"
        if not isinstance(step.config, dict):
            raise InvalidWorkflow(
                f"{path}.config",
                f"must be a dict, got {type(step.config).__name__}",
                step=step.key,
            )
        if "progress" in step.config:
            raise InvalidWorkflow(
                f"{path}.config.progress",
                "rules go in Step(progress=...), not in config",
                step=step.key,
            )
        _check_json(step.config, f"{path}.config", step.key)
        if _json_size(step.config) > MAX_CONFIG_BYTES:
            raise InvalidWorkflow(
                f"{path}.config", f"is larger than {MAX_CONFIG_BYTES} bytes", step=step.key
            )
        if not isinstance(step.progress, tuple):
            raise InvalidWorkflow(
                f"{path}.progress",
                f"must be a list of rules, got {type(step.progress).__name__}",
                step=step.key,
            )
        if len(step.progress) > MAX_RULES_PER_STEP:
            raise InvalidWorkflow(
                f"{path}.progress",
                f"has {len(step.progress)} rules; at most {MAX_RULES_PER_STEP} allowed",
                step=step.key,
            )
        for index, rule in enumerate(step.progress):
            _validate_rule(rule, path, step.key, index, keys)
    return workflow


# -- dict form ----------------------------------------------------------------------------------

_WORKFLOW_KEYS = {"workflow_key", "workflow_version", "steps"}
_STEP_KEYS = {"step_key", "step_order", "channel", "config"}
_RULE_KEYS = {
    WAIT_UNTIL: ({"kind", "delay_seconds", "to_step"}, {"anchor", "cancel_signals"}),
    ON_OUTCOME: ({"kind", "outcome", "to_step"}, set()),
    STOP: ({"kind", "outcome"}, set()),
}


def _check_keys(
    data: Mapping[str, Any],
    required: set[str],
    optional: set[str],
    path: str,
    *,
    step: str | None = None,
    rule: int | None = None,
) -> None:
    unknown = sorted(str(k) for k in data if k not in required | optional)
    if unknown:
        raise InvalidWorkflow(path, f"unknown keys {', '.join(unknown)}", step=step, rule=rule)
    missing = sorted(required - set(data))
    if missing:
        raise InvalidWorkflow(path, f"missing keys {', '.join(missing)}", step=step, rule=rule)


def rule_from_dict(
    data: Any, path: str = "rule", *, step: str | None = None, index: int = 0
) -> Rule:
    """Build one rule from its dict form (``{"kind": "wait_until", ...}``)."""
    if not isinstance(data, Mapping):
        raise InvalidWorkflow(
            path, f"a rule must be a dict, got {type(data).__name__}", step=step, rule=index
        )
    kind = data.get("kind")
    if kind not in _RULE_KEYS:
        raise InvalidWorkflow(
            f"{path}.kind",
            f"must be one of {', '.join(RULE_KINDS)}; got {kind!r}",
            step=step,
            rule=index,
        )
    required, optional = _RULE_KEYS[kind]
    _check_keys(data, required, optional, f"{path}({kind})", step=step, rule=index)
    if kind == WAIT_UNTIL:
        signals = data.get("cancel_signals", ())
        return WaitUntil(
            data["delay_seconds"],
            data["to_step"],
            () if signals is None else signals,
            anchor=data.get("anchor", DEFAULT_ANCHOR),
        )
    if kind == ON_OUTCOME:
        return OnOutcome(data["outcome"], data["to_step"])
    return Stop(data["outcome"])


def step_from_dict(data: Any, path: str = "step") -> Step:
    """Build one step from its dict form; rules come from ``config["progress"]``."""
    if not isinstance(data, Mapping):
        raise InvalidWorkflow(path, f"a step must be a dict, got {type(data).__name__}")
    _check_keys(data, {"step_key", "step_order", "channel"}, {"config"}, path)
    key = _trim(data["step_key"])
    label = key if isinstance(key, str) else None
    config = data.get("config")
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise InvalidWorkflow(
            f"{path}.config", f"must be a dict, got {type(config).__name__}", step=label
        )
    config = dict(config)
    raw_rules = config.pop("progress", None)
    if raw_rules is None:
        raw_rules = []
    if not isinstance(raw_rules, (list, tuple)):
        raise InvalidWorkflow(
            f"{path}.config.progress",
            f"must be a list of rules, got {type(raw_rules).__name__}",
            step=label,
        )
    rules = tuple(
        rule_from_dict(r, f"{path}.config.progress[{i}]", step=label, index=i)
        for i, r in enumerate(raw_rules)
    )
    return Step(key, data["step_order"], data["channel"], rules, config)


def workflow_from_dict(data: Mapping[str, Any]) -> Workflow:
    """Build a :class:`Workflow` from its dict form (not yet validated)."""
    _check_keys(data, _WORKFLOW_KEYS, set(), "workflow")
    steps = data["steps"]
    if not isinstance(steps, (list, tuple)):
        raise InvalidWorkflow("steps", f"must be a list of steps, got {type(steps).__name__}")
    return Workflow(
        data["workflow_key"],
        data["workflow_version"],
        [step_from_dict(s, f"steps[{i}]") for i, s in enumerate(steps)],
    )


def coerce_workflow(workflow: Workflow | Mapping[str, Any]) -> Workflow:
    """Accept a typed or dict declaration; return it validated, or raise InvalidWorkflow."""
    if isinstance(workflow, Mapping):
        workflow = workflow_from_dict(workflow)
    elif not isinstance(workflow, Workflow):
        raise InvalidWorkflow(
            "workflow", f"expected a Workflow or a dict, got {type(workflow).__name__}"
        )
    return validate_workflow(workflow)


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The dict form of a rule, as stored in ``config["progress"]``."""
    if isinstance(rule, WaitUntil):
        data: dict[str, Any] = {
            "kind": WAIT_UNTIL,
            "anchor": rule.anchor,
            "delay_seconds": rule.delay_seconds,
            "to_step": rule.to_step,
        }
        if rule.cancel_signals:  # an empty list is stored as absent (SPEC §2)
            data["cancel_signals"] = list(rule.cancel_signals)
        return data
    if isinstance(rule, OnOutcome):
        return {"kind": ON_OUTCOME, "outcome": rule.outcome, "to_step": rule.to_step}
    return {"kind": STOP, "outcome": rule.outcome}


def step_config(step: Step) -> dict[str, Any]:
    """The stored ``config`` of a step: its own config plus ``progress`` when it has rules."""
    config = dict(step.config)
    if step.progress:
        config["progress"] = [rule_to_dict(r) for r in step.progress]
    return config


def workflow_to_dict(workflow: Workflow) -> dict[str, Any]:
    """The dict form of a workflow; :func:`coerce_workflow` turns it back into an equal one."""
    return {
        "workflow_key": workflow.key,
        "workflow_version": workflow.version,
        "steps": [
            {
                "step_key": s.key,
                "step_order": s.order,
                "channel": s.channel,
                "config": step_config(s),
            }
            for s in workflow.steps
        ],
    }


def rules_of(config: Mapping[str, Any]) -> tuple[Rule, ...]:
    """The rules stored in a step's config (already validated when it was registered)."""
    return tuple(rule_from_dict(r) for r in config.get("progress", ()))
