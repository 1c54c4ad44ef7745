"""The state spine: run rows and their trace rows, and the seed's low-level API (SPEC §4, §8).

:class:`Spine` holds one open transaction's connection, clock and definitions, and the only
code that writes runs, trace rows and planned deliveries: :meth:`Spine._apply` carries out a
:class:`~chimeway_lite.machine.Decision`. The engine's operations build on it in
:mod:`~chimeway_lite.progression`, :mod:`~chimeway_lite.outbox`, :mod:`~chimeway_lite.signals`
and :mod:`~chimeway_lite.inspection`; :class:`~chimeway_lite.transaction.Transaction` joins them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from . import convert, machine
from .arguments import (
    json_text,
    optional_id,
    require_enum,
    require_id,
)
from .clock import Clock
from .declarations import Workflow, is_unicode
from .definitions import DefinitionIndex, Definitions
from .errors import (
    InvalidArgument,
    InvalidTransition,
    InvalidWorkflow,
    RunNotFound,
    StepNotFound,
)
from .machine import Decision, Journey, TransitionPlan
from .records import (
    Delivery,
    DeliveryStatus,
    RunState,
    StepLinkage,
    WorkflowDefinition,
    WorkflowRun,
    WorkflowStep,
    WorkflowTransition,
)
from .timestamps import require_utc

_RUN_COLUMNS = convert.field_names(WorkflowRun)
_INSERT_RUN = (
    f"INSERT INTO workflow_runs ({', '.join(_RUN_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _RUN_COLUMNS)})"
)
_UPDATE_RUN = """
UPDATE workflow_runs
   SET workflow_definition_id = :workflow_definition_id,
       current_step_id = :current_step_id,
       state = :state,
       status_reason = :status_reason,
       status_context = :status_context,
       last_transition_at = :last_transition_at,
       suspended_until = :suspended_until,
       pending_signals = :pending_signals,
       terminal_reason = :terminal_reason
 WHERE id = :id
"""
INSERT_TRANSITION = """
INSERT INTO workflow_transitions
    (seq, id, workflow_run_id, workflow_step_id, delivery_id, from_state, to_state, reason,
     context, inserted_at)
VALUES
    (:seq, :id, :workflow_run_id, :workflow_step_id, :delivery_id, :from_state, :to_state,
     :reason, :context, :inserted_at)
"""
_INSERT_DELIVERY = """
INSERT INTO deliveries
    (id, tenant_id, notification_id, channel, status, suppression_reason, workflow_run_id,
     workflow_step_id, inserted_at, updated_at)
VALUES
    (:id, :tenant_id, :notification_id, :channel, :status, :suppression_reason,
     :workflow_run_id, :workflow_step_id, :inserted_at, :updated_at)
"""
# Rows the hot paths read by position (convert.from_values): every column, in field order.
RUN_COLUMNS_OF_R = convert.columns(WorkflowRun, "r")
SELECT_RUN = f"SELECT {convert.columns(WorkflowRun)} FROM workflow_runs"
SELECT_DELIVERY = f"SELECT {convert.columns(Delivery)} FROM deliveries"
SELECT_TRANSITION = f"SELECT {convert.columns(WorkflowTransition)} FROM workflow_transitions"

# Fields a host may change with update_run; identity and ownership stay fixed.
_UPDATABLE = frozenset(_RUN_COLUMNS) - {"id", "tenant_id", "notification_id", "started_at"}


_UPDATE_SQL: dict[tuple[tuple[str, ...], bool], str] = {}


def _update_run_sql(columns: tuple[str, ...], *, many: bool = False) -> str:
    """``UPDATE workflow_runs`` of these columns (record field names, never input), for the
    run ``:where_id``, or (``many``) for the runs of the JSON array ``:where_ids``."""
    sql = _UPDATE_SQL.get((columns, many))
    if sql is None:
        assignments = ", ".join(f"{name} = :{name}" for name in columns)
        where = "id IN (SELECT value FROM json_each(:where_ids))" if many else "id = :where_id"
        sql = _UPDATE_SQL[columns, many] = f"UPDATE workflow_runs SET {assignments} WHERE {where}"
    return sql


def new_id() -> str:
    # A uuid4 without building a uuid.UUID (twice as fast; issue 5): 16 random bytes with
    # the version (4) and variant (10xx) bits set, as uuid.uuid4() does.
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Spine:
    """Runs, trace rows and deliveries inside one open transaction."""

    def __init__(self, conn: sqlite3.Connection, clock: Clock, index: DefinitionIndex) -> None:
        self._conn = conn
        self._clock = clock
        self.definitions = Definitions(conn, index)

    @property
    def connection(self) -> sqlite3.Connection:
        """This transaction's connection, for statements that belong to its unit of work
        (:mod:`~chimeway_lite.lifecycle`, :mod:`~chimeway_lite.audit`). Never commit or roll
        back on it: the store does."""
        return self._conn

    # -- time and sequence ---------------------------------------------------------------------

    def now(self) -> datetime:
        """The store clock's current instant, in UTC."""
        return require_utc(self._clock.now(), "clock.now()")

    def _at(self, now: datetime | None) -> datetime:
        return self.now() if now is None else require_utc(now, "now")

    def _seqs(self, count: int) -> list[int]:
        # Numbers are handed out here so that trace rows can be inserted in one executemany.
        # We hold the write lock; sqlite_sequence remembers pruned numbers and follows
        # savepoint rollbacks, so it is read afresh each time rather than cached.
        row = self._conn.execute(
            "SELECT seq FROM sqlite_sequence WHERE name = 'workflow_transitions'"
        ).fetchone()
        first = (row[0] if row else 0) + 1
        return list(range(first, first + count))

    # -- definitions ---------------------------------------------------------------------------

    def ensure_definition(
        self, notification_key: str, workflow: Workflow | Mapping[str, Any]
    ) -> WorkflowDefinition:
        """Register ``workflow`` or return its identical registration (SPEC §3)."""
        return self.definitions.ensure(notification_key, workflow, self.now())

    def fetch_definition(
        self, workflow_key: str, workflow_version: int
    ) -> WorkflowDefinition | None:
        """The definition registered under key + version, with its steps, or None."""
        return self.definitions.fetch(workflow_key, workflow_version)

    def persisted_workflow(self, workflow_definition_id: str) -> Workflow | None:
        """The declaration rebuilt from the stored rows, or None."""
        return self.definitions.persisted_workflow(
            require_id(workflow_definition_id, "workflow_definition_id")
        )

    def fetch_step_by_key(self, workflow_definition_id: str, step_key: str) -> WorkflowStep | None:
        """One step of a definition by key, or None."""
        return self.definitions.step_by_key(
            require_id(workflow_definition_id, "workflow_definition_id"),
            require_id(step_key, "step_key"),
        )

    def _journey(self, definition_id: str) -> Journey:
        return self.definitions.journey(definition_id)

    # -- rows ----------------------------------------------------------------------------------

    def _run_row(self, run_id: str, tenant_id: str | None = None) -> WorkflowRun | None:
        if tenant_id is None:
            row = self._conn.execute(SELECT_RUN + " WHERE id = ?", (run_id,))
        else:
            row = self._conn.execute(
                SELECT_RUN + " WHERE id = ? AND tenant_id = ?", (run_id, tenant_id)
            )
        found = row.fetchone()
        return None if found is None else convert.from_values(WorkflowRun, found)

    def _visible_run(self, tenant_id: object, run_id: object) -> WorkflowRun:
        # Another tenant's run and a missing run must be indistinguishable (SPEC §6).
        tenant = require_id(tenant_id, "tenant_id")
        run = self._run_row(require_id(run_id, "run_id"), tenant)
        if run is None:
            raise RunNotFound(run_id)
        return run

    def _apply(
        self, before: WorkflowRun | None, decision: Decision, now: datetime
    ) -> tuple[WorkflowRun, list[WorkflowTransition], list[Delivery]]:
        """Carry out a decision: the run row, its trace rows in order, its deliveries."""
        run = decision.run
        if before is None:
            self._conn.execute(_INSERT_RUN, convert.to_row(run))
        else:
            self._update_runs([(before, run)])
        transitions = self._trace_rows([(run.id, plan) for plan in decision.transitions], now)
        self._insert(INSERT_TRANSITION, [convert.to_row(t) for t in transitions])
        deliveries = [
            Delivery(
                id=new_id(),
                tenant_id=run.tenant_id,
                notification_id=run.notification_id,
                channel=plan.channel,
                status=DeliveryStatus.PENDING,
                suppression_reason=None,
                workflow_run_id=run.id,
                workflow_step_id=plan.workflow_step_id,
                inserted_at=now,
                updated_at=now,
            )
            for plan in decision.deliveries
        ]
        self._insert(_INSERT_DELIVERY, [convert.to_row(d) for d in deliveries])
        return run, transitions, deliveries

    def _trace_rows(
        self, plans: list[tuple[str, TransitionPlan]], now: datetime
    ) -> list[WorkflowTransition]:
        """The trace rows of (run id, plan) pairs, numbered in order, stamped ``now``."""
        return [
            WorkflowTransition(
                id=new_id(),
                seq=seq,
                workflow_run_id=run_id,
                workflow_step_id=plan.workflow_step_id,
                delivery_id=plan.delivery_id,
                from_state=plan.from_state,
                to_state=plan.to_state,
                reason=plan.reason,
                context=plan.context,
                inserted_at=now,
            )
            for seq, (run_id, plan) in zip(self._seqs(len(plans)), plans, strict=True)
        ]

    def _insert(self, sql: str, rows: list[dict[str, Any]]) -> None:
        # executemany costs more than execute for the one row most decisions write.
        if len(rows) == 1:
            self._conn.execute(sql, rows[0])
        elif rows:
            self._conn.executemany(sql, rows)

    def _update_runs(self, changes: list[tuple[WorkflowRun, WorkflowRun]]) -> None:
        """Write each (before, after) pair's changed columns.

        Only what a decision changed is written (issue 5): an unchanged status_context is
        not serialised again, and an unchanged current_step_id or workflow_definition_id
        costs no foreign-key lookup, which SQLite makes for every key column in a SET list.
        Runs given the same new values (a signal resuming many runs) take one UPDATE for
        all of them, their ids passed as one JSON array.
        """
        groups: dict[tuple[tuple[str, ...], tuple[Any, ...]], list[str]] = {}
        for before, after in changes:
            columns = convert.changed_columns(before, after)
            if columns:
                shape = (tuple(columns), tuple(columns.values()))
                groups.setdefault(shape, []).append(before.id)
        for (names, values), ids in groups.items():
            params = dict(zip(names, values, strict=True))
            if len(ids) == 1:
                self._conn.execute(_update_run_sql(names), {**params, "where_id": ids[0]})
            else:
                params["where_ids"] = convert.dumps(ids)
                self._conn.execute(_update_run_sql(names, many=True), params)

    # -- the low-level seed API (SPEC §8) ------------------------------------------------------

    def get_run(self, run_id: str) -> WorkflowRun:
        """The run with this id, in any tenant, or RunNotFound."""
        run = self._run_row(require_id(run_id, "run_id"))
        if run is None:
            raise RunNotFound(run_id)
        return run

    def lock_run(self, run_id: str) -> WorkflowRun:
        """The run, read under this transaction's write lock, or RunNotFound."""
        return self.get_run(run_id)

    def get_current_step(self, run: WorkflowRun) -> WorkflowStep:
        """The step the run's cursor is on, or StepNotFound."""
        if not isinstance(run, WorkflowRun):
            raise InvalidArgument("run", f"expected a WorkflowRun, got {type(run).__name__}")
        row = self._conn.execute(
            "SELECT * FROM workflow_steps WHERE id = ? AND workflow_definition_id = ?",
            (
                require_id(run.current_step_id, "run.current_step_id"),
                require_id(run.workflow_definition_id, "run.workflow_definition_id"),
            ),
        ).fetchone()
        if row is None:
            raise StepNotFound(run.current_step_id)
        return convert.from_row(WorkflowStep, row)

    def update_run(self, run: WorkflowRun | str, **fields: Any) -> WorkflowRun:
        """Write ``fields`` to the run's row as given and return the updated run.

        The escape hatch of SPEC §8: no state-machine rule applies, except that a terminal
        run keeps its state and that ``status_context`` keys stay within the catalogue.
        """
        run_id = run.id if isinstance(run, WorkflowRun) else require_id(run, "run")
        current = self.lock_run(run_id)
        unknown = sorted(set(fields) - _UPDATABLE)
        if unknown:
            raise InvalidArgument(
                "fields", f"cannot update {', '.join(unknown)}; updatable: {sorted(_UPDATABLE)}"
            )
        changes = dict(fields)
        if "state" in changes:
            changes["state"] = require_enum(RunState, changes["state"], "state")
            machine.check_state_change(run_id, current.state, changes["state"])
        if "status_context" in changes:
            json_text(changes["status_context"], "status_context")
            machine.check_context(run_id, changes["status_context"])
        for name in ("last_transition_at", "suspended_until"):
            if changes.get(name) is not None:
                changes[name] = require_utc(changes[name], name)
        if "pending_signals" in changes:
            signals = changes["pending_signals"]
            if not isinstance(signals, (list, tuple)) or not all(
                isinstance(s, str) and s.strip() and is_unicode(s) for s in signals
            ):
                raise InvalidArgument("pending_signals", "must be a list of non-blank strings")
        for name in ("status_reason", "current_step_id", "workflow_definition_id"):
            if name in changes:
                require_id(changes[name], name)
        if changes.get("terminal_reason") is not None:
            require_id(changes["terminal_reason"], "terminal_reason")
        updated = attrs.evolve(current, **changes)
        try:
            self._conn.execute(_UPDATE_RUN, convert.to_row(updated))
        except sqlite3.IntegrityError as exc:
            raise InvalidArgument("fields", f"rejected by the store: {exc}") from None
        return updated

    def append_transition(
        self,
        run_id: str,
        to_state: RunState | str,
        reason: str,
        *,
        workflow_step_id: str | None = None,
        delivery_id: str | None = None,
        from_state: RunState | str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> WorkflowTransition:
        """Append one trace row for a run and return it (SPEC §8).

        Any non-blank reason and any from_state are accepted; InvalidTransition is raised only
        when a completed/stopped run would get another state, or for a context key outside
        the catalogue.
        """
        run = self.lock_run(run_id)
        target = require_enum(RunState, to_state, "to_state")
        source = None if from_state is None else require_enum(RunState, from_state, "from_state")
        reason = require_id(reason, "reason")
        context = {} if context is None else context
        json_text(context, "context")
        machine.check_context(run.id, context)
        machine.check_state_change(run.id, run.state, target)
        if source is not None:
            machine.check_state_change(run.id, source, target)
        step_id = optional_id(workflow_step_id, "workflow_step_id")
        (seq,) = self._seqs(1)
        transition = WorkflowTransition(
            id=new_id(),
            seq=seq,
            workflow_run_id=run.id,
            workflow_step_id=step_id,
            delivery_id=optional_id(delivery_id, "delivery_id"),
            from_state=source,
            to_state=target,
            reason=reason,
            context=dict(context),
            inserted_at=self.now(),
        )
        try:
            self._conn.execute(INSERT_TRANSITION, convert.to_row(transition))
        except sqlite3.IntegrityError as exc:
            raise InvalidTransition(f"rejected by the store: {exc}", run_id=run.id) from None
        return transition

    def create_initial_run(
        self,
        notification_id: str,
        definition: WorkflowDefinition,
        timestamp: datetime,
        tenant_id: str,
    ) -> WorkflowRun:
        """Start the run of a notification on the definition's first step (SPEC §4 item 1).

        Writes the run and its two trace rows; planning the first delivery is the trigger's
        job. One run per notification; a definition without steps raises InvalidWorkflow.
        """
        run, _ = self._start(
            notification_id,
            definition,
            require_utc(timestamp, "timestamp"),
            tenant_id,
            plan_delivery=False,
        )
        return run

    def _start(
        self,
        notification_id: str,
        definition: WorkflowDefinition,
        now: datetime,
        tenant_id: str,
        *,
        plan_delivery: bool,
    ) -> tuple[WorkflowRun, list[Delivery]]:
        notification_id = require_id(notification_id, "notification_id")
        tenant_id = require_id(tenant_id, "tenant_id")
        if not isinstance(definition, WorkflowDefinition):
            raise InvalidArgument(
                "definition", f"expected a WorkflowDefinition, got {type(definition).__name__}"
            )
        if not definition.steps:
            raise InvalidWorkflow("steps", "a definition without steps cannot start a run")
        owner = self._conn.execute(
            "SELECT tenant_id, (SELECT count(*) FROM workflow_runs WHERE notification_id = :id) "
            "FROM notifications WHERE id = :id",
            {"id": notification_id},
        ).fetchone()
        if owner is None or owner[0] != tenant_id:
            raise InvalidArgument("notification_id", "no notification with this id in this tenant")
        if owner[1]:
            raise InvalidArgument("notification_id", "the notification has a run already")
        return self._open_run(
            notification_id,
            self._journey(definition.id),
            now,
            tenant_id,
            plan_delivery=plan_delivery,
        )

    def _open_run(
        self,
        notification_id: str,
        journey: Journey,
        now: datetime,
        tenant_id: str,
        *,
        plan_delivery: bool,
    ) -> tuple[WorkflowRun, list[Delivery]]:
        decision = machine.start(
            journey,
            run_id=new_id(),
            tenant_id=tenant_id,
            notification_id=notification_id,
            now=now,
        )
        if not plan_delivery:
            decision = attrs.evolve(decision, deliveries=())
        run, _, deliveries = self._apply(None, decision, now)
        return run, deliveries

    def active_step_linkage(self, notification_id: str) -> StepLinkage | None:
        """The run and step the notification's deliveries belong to now, or None when it has
        no run or its run has finished."""
        row = self._conn.execute(
            "SELECT r.id, r.current_step_id, s.channel FROM workflow_runs AS r "
            "JOIN workflow_steps AS s ON s.id = r.current_step_id "
            "WHERE r.notification_id = ? AND r.state IN ('active', 'waiting')",
            (require_id(notification_id, "notification_id"),),
        ).fetchone()
        return None if row is None else StepLinkage(row[0], row[1], row[2])
