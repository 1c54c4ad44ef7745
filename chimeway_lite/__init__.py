"""chimeway_lite: durable, explainable, multi-step notification workflows in one SQLite file.

The contract is ``docs/CONTRACT.md`` (the code's "CONTRACT §N" notes point there); the
layers are described in ``docs/ARCHITECTURE.md``.
"""

from .core.clock import FakeClock, SystemClock
from .core.errors import (
    ChimewayError,
    ConstraintFailed,
    DefinitionConflict,
    DeliveryNotFound,
    InvalidArgument,
    InvalidSignal,
    InvalidTransition,
    InvalidWorkflow,
    RunNotFound,
    SchemaMismatch,
    StepNotFound,
    StorageError,
    StoreBusy,
)
from .core.records import (
    Delivery,
    DeliveryAttempt,
    DeliveryExplanation,
    DeliveryStatus,
    Erasure,
    Notification,
    Outcome,
    Progress,
    ProgressKind,
    Resumed,
    RunExplanation,
    RunState,
    Signal,
    StepLinkage,
    TriggerResult,
    WorkflowDefinition,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from .declarations import OnOutcome, Retry, Step, Stop, WaitUntil, Workflow
from .engine.operations import Engine as Transaction
from .store import Store
from .tools.worker import Handled, Worker

__all__ = [
    "ChimewayError",
    "ConstraintFailed",
    "DefinitionConflict",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryExplanation",
    "DeliveryNotFound",
    "DeliveryStatus",
    "Erasure",
    "FakeClock",
    "Handled",
    "InvalidArgument",
    "InvalidSignal",
    "InvalidTransition",
    "InvalidWorkflow",
    "Notification",
    "OnOutcome",
    "Outcome",
    "Progress",
    "ProgressKind",
    "Resumed",
    "Retry",
    "RunExplanation",
    "RunNotFound",
    "RunState",
    "SchemaMismatch",
    "Signal",
    "Step",
    "StepLinkage",
    "StepNotFound",
    "Stop",
    "StorageError",
    "Store",
    "StoreBusy",
    "SystemClock",
    "Transaction",
    "TriggerResult",
    "WaitUntil",
    "Worker",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowRun",
    "WorkflowStep",
    "WorkflowTransition",
]
