"""Errors raised by chimeway_lite.

Every error is a :class:`ChimewayError`; each leaf builds its own message and keeps the
fields that explain it as attributes, so callers can branch on data instead of parsing text::

    ChimewayError
    ├── InvalidWorkflow        (ValueError)   a declaration broke a rule of CONTRACT §2
    ├── DefinitionConflict                    same key + version, different steps
    ├── RunNotFound            (LookupError)  missing run, or a run of another tenant
    ├── StepNotFound           (LookupError)
    ├── DeliveryNotFound       (LookupError)  record_outcome of an unknown delivery
    ├── InvalidSignal          (ValueError)
    ├── InvalidTransition      (ValueError)   terminal run changed, context key off-catalogue
    ├── InvalidArgument        (ValueError)   blank id, bad limit, unknown status, naive time
    ├── StoreBusy                             the write lock was not obtained in time
    ├── SchemaMismatch                        newer/foreign schema, or not SQLite at all
    ├── DamagedRow                            a stored row the engine could not have written
    ├── UnitClosed                            a tx used after its with block
    └── StorageError                          the file cannot be opened or written
        └── ConstraintFailed                  a value the schema's constraints refuse

Errors pickle with their fields, so they cross process boundaries intact.
"""

from __future__ import annotations

from typing import Any

from .text import shown


class ChimewayError(Exception):
    """Base class of every error chimeway_lite raises on purpose."""

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self._fields = fields
        for name, value in fields.items():
            setattr(self, name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        # Leaves take keyword fields, not the message: rebuild through the fields.
        return (_rebuild, (type(self), self.message, self._fields))

    def __str__(self) -> str:
        return self.message

    def at_item(self, index: int) -> ChimewayError:
        """This error, as raised by item ``index`` of a batch (``trigger_many``,
        ``record_outcomes``): the index becomes the field ``item`` and leads the message."""
        self.message = f"item {index}: {self.message}"
        self.args = (self.message,)
        self._fields = {**self._fields, "item": index}
        self.item = index
        return self


def _rebuild(cls: type[ChimewayError], message: str, fields: dict[str, Any]) -> ChimewayError:
    error = cls.__new__(cls)
    ChimewayError.__init__(error, message, **fields)
    return error


class InvalidWorkflow(ChimewayError, ValueError):
    """A workflow declaration is malformed.

    ``path`` locates the fault (``steps[1](email).progress[0](wait_until).delay_seconds``);
    ``step`` is the offending step's key (or None), ``rule`` the rule's index in that step's
    progress list (or None) and ``problem`` says what is wrong.
    """

    path: str
    problem: str
    step: str | None
    rule: int | None

    def __init__(
        self, path: str, problem: str, *, step: str | None = None, rule: int | None = None
    ) -> None:
        super().__init__(
            f"invalid workflow at {path}: {problem}",
            path=path,
            problem=problem,
            step=step,
            rule=rule,
        )


class DefinitionConflict(ChimewayError):
    """The key and version are registered already, with different steps."""

    workflow_key: str
    workflow_version: int

    def __init__(self, workflow_key: str, workflow_version: int) -> None:
        super().__init__(
            f"workflow {shown(workflow_key, 64)} version {workflow_version} is already registered "
            "with different steps; register the change under a new version",
            workflow_key=workflow_key,
            workflow_version=workflow_version,
        )


class RunNotFound(ChimewayError, LookupError):
    """No run with this id is visible to the caller.

    A missing run and a run of another tenant raise the same error with the same message,
    so the error reveals nothing about who owns a run.
    """

    run_id: str

    def __init__(self, run_id: object) -> None:
        super().__init__(f"workflow run {shown(run_id, 64)} not found", run_id=run_id)


class StepNotFound(ChimewayError, LookupError):
    """A step id or step key does not name a step of the definition."""

    step: str

    def __init__(self, step: object) -> None:
        super().__init__(f"workflow step {shown(step, 64)} not found", step=step)


class DeliveryNotFound(ChimewayError, LookupError):
    """No delivery with this id exists."""

    delivery_id: str

    def __init__(self, delivery_id: object) -> None:
        super().__init__(f"delivery {shown(delivery_id, 64)} not found", delivery_id=delivery_id)


class InvalidSignal(ChimewayError, ValueError):
    """A signal is malformed; ``field`` names the part at fault."""

    field: str
    problem: str

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"invalid signal {field}: {problem}", field=field, problem=problem)


class InvalidTransition(ChimewayError, ValueError):
    """A change the state spine forbids: a terminal run leaving its state, a context key
    outside the catalogue of CONTRACT §10, or a delivery's status change CONTRACT §12 does
    not allow (a final delivery reported otherwise, a lease extended when not held).

    ``run_id`` or ``delivery_id`` says what was to change; ``from_state``/``to_state`` are
    the states (or delivery statuses) of the refused change.
    """

    run_id: str | None
    delivery_id: str | None
    from_state: str | None
    to_state: str | None
    problem: str

    def __init__(
        self,
        problem: str,
        *,
        run_id: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        delivery_id: str | None = None,
    ) -> None:
        what = (
            f"delivery {shown(delivery_id, 64)}"
            if delivery_id is not None
            else f"run {shown(run_id, 64)}"
        )
        super().__init__(
            f"invalid transition of {what} ({from_state} -> {to_state}): {problem}",
            run_id=run_id,
            delivery_id=delivery_id,
            from_state=from_state,
            to_state=to_state,
            problem=problem,
        )


class InvalidArgument(ChimewayError, ValueError):
    """An argument has the wrong type or value; ``name`` is the parameter."""

    name: str
    problem: str

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"invalid {name}: {problem}", name=name, problem=problem)


class StoreBusy(ChimewayError):
    """The write lock on the store was not obtained within ``timeout`` seconds.

    Nothing was written; the call may be retried as it is.
    """

    path: str
    timeout: float

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(
            f"store {shown(path, 120)} is busy: the write lock was not obtained within "
            f"{timeout:g} s "
            "(nothing was written)",
            path=path,
            timeout=timeout,
        )


class SchemaMismatch(ChimewayError):
    """The file is not a chimeway_lite store this version can use."""

    path: str
    problem: str

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"cannot use {shown(path, 120)}: {problem}", path=path, problem=problem)


class UnitClosed(ChimewayError):
    """A unit of work was used after it ended: a ``tx`` (or ``view``) kept after its
    ``with store.transaction()`` block, or a store used after ``close()``. Nothing is
    written."""

    def __init__(self, what: str = "this transaction") -> None:
        super().__init__(
            f"{what} has ended: open a new one (with store.transaction() as tx: ...)",
            what=what,
        )


class DamagedRow(ChimewayError):
    """A stored row holds what the engine could not have written (JSON of the wrong shape,
    a time that does not parse, an unknown state), so it cannot be read back.

    ``table`` and ``row_id`` locate it; ``problem`` says what is wrong with it, without its
    values. The due sweep, a signal's fan-out and the worker skip such a row, report it, and
    go on; ``verify()`` lists it.
    """

    table: str
    row_id: str | None
    problem: str

    def __init__(self, table: str, row_id: object, problem: str) -> None:
        shown_id = row_id if isinstance(row_id, str) and len(row_id) <= 64 else None
        where = f"{table} row {shown_id}" if shown_id else f"a {table} row"
        super().__init__(
            f"{where} is damaged: {problem} (see verify())",
            table=table,
            row_id=shown_id,
            problem=problem,
        )


class StorageError(ChimewayError):
    """The file cannot be opened or written (missing directory, read-only file, disk full)."""

    path: str
    problem: str

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"storage error on {shown(path, 120)}: {problem}", path=path, problem=problem
        )


class ConstraintFailed(StorageError):
    """A write broke a constraint of the schema (a unique key, a foreign key, a CHECK).

    The engine turns the ones it expects into their own answers (a duplicate trigger, a
    host's value refused); one that reaches the caller means the store's rows are not what
    the engine wrote (see ``verify()``).
    """
