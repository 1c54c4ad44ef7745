"""Declaring journeys: ``Workflow``, ``Step`` and the rules of the registered kinds, typed or
as dicts, validated with the path of every fault. Pure: nothing here touches a store."""

from ..machine.kinds import (
    OnOutcome,
    OnSignal,
    Retry,
    Rule,
    Stop,
    WaitUntil,
    rule_from_dict,
    rule_to_dict,
    rules_of,
)
from ..machine.kinds.wait_until import DEFAULT_ANCHOR, MAX_CANCEL_SIGNALS
from .workflow import (
    MAX_CONFIG_BYTES,
    MAX_RULES_PER_STEP,
    MAX_STEPS,
    MAX_VERSION,
    Step,
    Workflow,
    coerce_workflow,
    step_config,
    step_from_dict,
    validate_workflow,
    workflow_from_dict,
    workflow_to_dict,
)

__all__ = [
    "DEFAULT_ANCHOR",
    "MAX_CANCEL_SIGNALS",
    "MAX_CONFIG_BYTES",
    "MAX_RULES_PER_STEP",
    "MAX_STEPS",
    "MAX_VERSION",
    "OnOutcome",
    "OnSignal",
    "Retry",
    "Rule",
    "Step",
    "Stop",
    "WaitUntil",
    "Workflow",
    "coerce_workflow",
    "rule_from_dict",
    "rule_to_dict",
    "rules_of",
    "step_config",
    "step_from_dict",
    "validate_workflow",
    "workflow_from_dict",
    "workflow_to_dict",
]
