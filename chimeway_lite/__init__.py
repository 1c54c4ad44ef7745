"""chimeway_lite: durable, explainable, multi-step notification workflows in one SQLite file.

The contract is ``docs/CONTRACT.md`` (the code's "CONTRACT §N" notes point there); the
layers are described in ``docs/ARCHITECTURE.md``.
"""

from .async_store import AsyncStore
from .core.clock import FakeClock, SystemClock
from .core.errors import (
    ChimewayError,
    ConstraintFailed,
    DamagedRow,
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
    UnitClosed,
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
from .declarations import OnOutcome, OnSignal, Retry, Step, Stop, WaitUntil, Workflow
from .engine.operations import Engine as Transaction
from .hooks import EventKind, StoreEvent
from .store import Store
from .tools.worker import Handled, Worker

__all__ = [
    "AsyncStore",
    "ChimewayError",
    "ConstraintFailed",
    "DamagedRow",
    "DefinitionConflict",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryExplanation",
    "DeliveryNotFound",
    "DeliveryStatus",
    "Erasure",
    "EventKind",
    "FakeClock",
    "Handled",
    "InvalidArgument",
    "InvalidSignal",
    "InvalidTransition",
    "InvalidWorkflow",
    "Notification",
    "OnOutcome",
    "OnSignal",
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
    "StoreEvent",
    "SystemClock",
    "Transaction",
    "TriggerResult",
    "UnitClosed",
    "WaitUntil",
    "Worker",
    "Workflow",
    "WorkflowDefinition",
    "WorkflowRun",
    "WorkflowStep",
    "WorkflowTransition",
]
