"""Declaring a workflow: ``Workflow`` and ``Step``, typed or as dicts (CONTRACT §2).

The typed classes only normalise (lists become tuples, strings are trimmed, ``config=None``
becomes ``{}``, steps are kept sorted by order, a step's config is deep-frozen); every rule of
CONTRACT §2 is checked by :func:`coerce_workflow`, which raises :class:`InvalidWorkflow` naming
the field, step and rule at fault. The rules themselves are the registered kinds of
:mod:`chimeway_lite.machine.kinds`. Nothing here touches the store.

The dict form is the JSON shape of the stored rows::

    {"workflow_key": "signup", "workflow_version": 1, "steps": [
        {"step_key": "inapp", "step_order": 1, "channel": "in_app",
         "config": {"progress": [{"kind": "wait_until", "delay_seconds": 7200,
                                  "to_step": "email", "cancel_signals": ["read"]}]}},
        {"step_key": "email", "step_order": 2, "channel": "email", "config": {}}]}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from ..core.errors import InvalidWorkflow
from ..core.frozen import FrozenDict, freeze, thaw
from ..core.names import check_json, check_name, is_int
from ..core.text import json_size, shown
from ..machine.kinds import (
    RULE_TYPE_NAMES,
    STEP_OPTIONS,
    Retry,
    Rule,
    Where,
    kind_of,
    option_from_dict,
    rule_from_dict,
    rule_to_dict,
)

MAX_STEPS = 100
MAX_RULES_PER_STEP = 32
MAX_CONFIG_BYTES = 64 * 1024
MAX_VERSION = 2**63 - 1  # the largest SQLite INTEGER


# -- converters: normalise, never raise (validation reports what is still wrong) -------------


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _config(value: Any) -> Any:
    # A deep-frozen copy: later changes to the caller's dict do not reach the declaration,
    # and the declaration itself cannot be changed in place. It equals the plain JSON the
    # store gives back (tuples compare equal to lists), so persisted_workflow() equals it.
    if value is None:
        return FrozenDict()
    if not isinstance(value, Mapping):
        return value  # validation names it
    try:
        return freeze(value)
    except RecursionError:  # absurdly deep: keep it as given, validation names it
        return value


def _sorted_steps(value: Any) -> Any:
    steps = _as_tuple(value)
    if isinstance(steps, tuple) and all(isinstance(s, Step) and is_int(s.order) for s in steps):
        return tuple(sorted(steps, key=lambda s: s.order))
    return steps


# -- the typed declarations -------------------------------------------------------------------


@attrs.frozen
class Step:
    """One step: a delivery on ``channel``, then the first matching ``progress`` rule.

    ``retry`` is the step's retry policy for failed deliveries (CONTRACT §12.2).
    """

    key: str = attrs.field(converter=_trim)
    order: int
    channel: str = attrs.field(converter=_trim)
    progress: tuple[Rule, ...] = attrs.field(default=(), converter=_as_tuple)
    config: Mapping[str, Any] = attrs.field(default=None, converter=_config)
    retry: Retry | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class Workflow:
    """A journey: its identity (``key``, ``version``) and its steps, kept sorted by order."""

    key: str = attrs.field(converter=_trim)
    version: int
    steps: tuple[Step, ...] = attrs.field(converter=_sorted_steps)


# -- validation ---------------------------------------------------------------------------------


def _validate_rule(rule: Any, path: str, step: str, index: int, keys: frozenset[str]) -> None:
    where = f"{path}.progress[{index}]"
    try:
        kind = kind_of(rule)
    except KeyError:
        raise InvalidWorkflow(
            where,
            f"must be {RULE_TYPE_NAMES}, got {type(rule).__name__}",
            step=step,
            rule=index,
        ) from None
    kind.validate(rule, Where(f"{where}({kind.name})", step, index), keys)


def _validate_keys(steps: tuple[Any, ...]) -> frozenset[str]:
    keys: set[str] = set()
    for i, step in enumerate(steps):
        if not isinstance(step, Step):
            raise InvalidWorkflow(f"steps[{i}]", f"must be a Step, got {type(step).__name__}")
        key = check_name(step.key, f"steps[{i}].step_key")
        if key in keys:
            raise InvalidWorkflow(f"steps[{i}].step_key", f"duplicate step key {key!r}", step=key)
        keys.add(key)
    return frozenset(keys)


def _validate_orders(steps: tuple[Step, ...]) -> None:
    orders = []
    for i, step in enumerate(steps):
        path = f"steps[{i}]({step.key})"
        if not is_int(step.order):
            raise InvalidWorkflow(
                f"{path}.step_order", f"must be an int, got {shown(step.order)}", step=step.key
            )
        orders.append(step.order)
        check_name(step.channel, f"{path}.channel", step=step.key)
    seen: set[int] = set()
    for i, step in enumerate(steps):
        # Name the first step whose order repeats or falls outside 1..N (CONTRACT §2: the error
        # names the offending step).
        if step.order in seen or not 1 <= step.order <= len(steps):
            raise InvalidWorkflow(
                f"steps[{i}]({step.key}).step_order",
                f"step orders must be exactly 1..{len(steps)}, each once; got {sorted(orders)}",
                step=step.key,
            )
        seen.add(step.order)


def _validate_step(step: Step, index: int, keys: frozenset[str]) -> None:
    path = f"steps[{index}]({step.key})"
    if not isinstance(step.config, Mapping):
        raise InvalidWorkflow(
            f"{path}.config", f"must be a dict, got {type(step.config).__name__}", step=step.key
        )
    if "progress" in step.config:
        raise InvalidWorkflow(
            f"{path}.config.progress",
            "rules go in Step(progress=...), not in config",
            step=step.key,
        )
    for option in STEP_OPTIONS:
        if option.key in step.config:
            raise InvalidWorkflow(
                f"{path}.config.{option.key}",
                f"goes in Step({option.key}=...), not in config",
                step=step.key,
            )
    check_json(step.config, f"{path}.config", step.key)
    if json_size(thaw(step.config)) > MAX_CONFIG_BYTES:
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
    for rule_index, rule in enumerate(step.progress):
        _validate_rule(rule, path, step.key, rule_index, keys)
    for rule_index, rule in enumerate(step.progress):
        kind = kind_of(rule)
        at = Where(f"{path}.progress[{rule_index}]({kind.name})", step.key, rule_index)
        kind.check_siblings(rule, step.progress, at)
    for option in STEP_OPTIONS:
        value = getattr(step, option.key)
        if value is None:
            continue
        where = f"{path}.{option.key}"
        if not isinstance(value, option.option_type):
            raise InvalidWorkflow(
                where,
                f"must be a {option.option_type.__name__}, got {type(value).__name__}",
                step=step.key,
            )
        option.validate(value, Where(where, step.key, None))


def validate_workflow(workflow: Workflow) -> Workflow:
    """Check every rule of CONTRACT §2; return the workflow, or raise :class:`InvalidWorkflow`."""
    check_name(workflow.key, "workflow_key")
    if not is_int(workflow.version) or not 0 < workflow.version <= MAX_VERSION:
        raise InvalidWorkflow(
            "workflow_version",
            f"must be an int > 0 (at most {MAX_VERSION}), got {shown(workflow.version)}",
        )
    steps = workflow.steps
    if not isinstance(steps, tuple):
        raise InvalidWorkflow("steps", f"must be a list of steps, got {type(steps).__name__}")
    if not steps:
        raise InvalidWorkflow("steps", "a workflow needs at least one step")
    if len(steps) > MAX_STEPS:
        raise InvalidWorkflow("steps", f"has {len(steps)} steps; at most {MAX_STEPS} allowed")
    keys = _validate_keys(steps)
    _validate_orders(steps)
    for i, step in enumerate(steps):
        _validate_step(step, i, keys)
    return workflow


# -- dict form ----------------------------------------------------------------------------------

_WORKFLOW_KEYS = frozenset({"workflow_key", "workflow_version", "steps"})
_STEP_REQUIRED = frozenset({"step_key", "step_order", "channel"})
_STEP_OPTIONAL = frozenset({"config"})


def _check_keys(
    data: Mapping[str, Any],
    required: frozenset[str],
    optional: frozenset[str],
    path: str,
    *,
    step: str | None = None,
) -> None:
    unknown = sorted(str(k) for k in data if k not in required | optional)
    if unknown:
        raise InvalidWorkflow(path, f"unknown keys {', '.join(unknown)}", step=step)
    missing = sorted(required - set(data))
    if missing:
        raise InvalidWorkflow(path, f"missing keys {', '.join(missing)}", step=step)


def step_from_dict(data: Any, path: str = "step") -> Step:
    """Build one step from its dict form; rules come from ``config["progress"]``."""
    if not isinstance(data, Mapping):
        raise InvalidWorkflow(path, f"a step must be a dict, got {type(data).__name__}")
    _check_keys(data, _STEP_REQUIRED, _STEP_OPTIONAL, path)
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
    options = {
        option.key: option_from_dict(
            option, config.pop(option.key), f"{path}.config.{option.key}", step=label
        )
        for option in STEP_OPTIONS
        if option.key in config
    }
    return Step(key, data["step_order"], data["channel"], rules, config, **options)


def workflow_from_dict(data: Mapping[str, Any]) -> Workflow:
    """Build a :class:`Workflow` from its dict form (not yet validated)."""
    _check_keys(data, _WORKFLOW_KEYS, frozenset(), "workflow")
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


def step_config(step: Step) -> dict[str, Any]:
    """The stored ``config`` of a step, as plain JSON: its own config plus ``progress``
    when it has rules."""
    config: dict[str, Any] = thaw(step.config)
    if step.progress:
        config["progress"] = [rule_to_dict(r) for r in step.progress]
    for option in STEP_OPTIONS:
        value = getattr(step, option.key)
        if value is not None:
            config[option.key] = option.to_dict(value)
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
