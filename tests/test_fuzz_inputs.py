"""Bad-input fuzzing of every public Store method (and the ``tx`` helpers) with hypothesis.

Arguments are drawn from arbitrary JSON-like values, odd Python objects, naive and
offset datetimes, enum members, over-long and NUL-bearing strings — mixed with real ids of
the store so that calls get past the first check. Every call must either succeed or raise
one of the documented :class:`ChimewayError` leaves; a call that raised must have written
nothing; and ``verify()`` must stay empty afterwards. On both backends.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from factories import START, escalation_workflow, trigger
from hypothesis import given
from hypothesis import strategies as st
from strategies import json_values, table_dump, workflows

import chimeway_lite
from chimeway_lite import (
    ChimewayError,
    DeliveryStatus,
    FakeClock,
    OnOutcome,
    Outcome,
    RunState,
    SchemaMismatch,
    Signal,
    Step,
    Stop,
    StorageError,
    Store,
    StoreBusy,
    WaitUntil,
    Workflow,
    WorkflowDefinition,
    WorkflowRun,
)

#: The errors the package documents for bad input: its exported ChimewayError leaves, less
#: those about the file itself (nothing is wrong with the file here, so a StorageError
#: would be a binding error in disguise).
DOCUMENTED = frozenset(
    value
    for value in vars(chimeway_lite).values()
    if isinstance(value, type) and issubclass(value, ChimewayError)
) - {ChimewayError, StorageError, StoreBusy, SchemaMismatch}


@attrs.define
class Known:
    """Real things of the fuzzed store, for arguments that get past the first check."""

    run_ids: list[str]
    delivery_ids: list[str]
    definition: WorkflowDefinition
    notification_ids: list[str]
    step_ids: list[str]
    run: WorkflowRun
    tenants: list[str] = attrs.field(factory=lambda: ["acme", "globex"])

    def strings(self) -> list[str]:
        """Every real id and name, as a pool to draw from."""
        return [
            *self.run_ids,
            *self.delivery_ids,
            *self.notification_ids,
            *self.step_ids,
            self.definition.id,
            *self.tenants,
            "ada",
            "escalation",
            "inapp",
            "email",
            "notification_read",
        ]


@pytest.fixture
def fuzzed(location: str) -> Iterator[tuple[Store, Known]]:
    """A store with runs in several states, and what is known about them (on the test's
    backend)."""
    clock = FakeClock(START)
    with Store(location, clock=clock) as store:
        results = [
            trigger(store, tenant=tenant, key=f"k{i}")
            for i, tenant in enumerate(["acme", "acme", "globex", "acme"])
        ]
        store.record_outcome(results[0].deliveries[0].id, "succeeded")  # waiting
        store.record_outcome(results[1].deliveries[0].id, "cancelled", "bounced")  # advanced
        clock.advance(hours=1)
        definition = store.fetch_definition("escalation", 1)
        assert definition is not None
        deliveries = [
            d.id for r in results for d in store.list_deliveries(r.run.tenant_id, r.run.id)
        ]
        known = Known(
            run_ids=[r.run.id for r in results],
            delivery_ids=deliveries,
            definition=definition,
            notification_ids=[r.notification.id for r in results],
            step_ids=[s.id for s in definition.steps],
            run=store.get_run(results[0].run.id),
        )
        assert store.verify() == []
        yield store, known


# -- values -----------------------------------------------------------------------------------

#: A marker inside hostile values, never in their first 64 characters: an error may show a
#: short prefix of a value, never more, and never a payload or data value (CONTRACT §16).
MARKER = "MARKER-c0ffee-"


def _deep(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"m": MARKER}
    for _ in range(depth):
        value = {"a": value}
    return value


_hostile = st.sampled_from(
    [
        "x" * 100 + MARKER + "x" * 1_000_000,  # a megabyte of id
        _deep(100_000),  # nested past any recursion limit
        [_deep(50)],
        10**5000,  # an int no str() may print
        {"delivery_id": MARKER},
        "\x1b[2J" + "y" * 100 + MARKER,
        "=cmd|' /C calc'!A0",
    ]
)

_odd_text = st.one_of(
    st.just(""),
    st.just("   "),
    st.just("\x00"),
    st.just("a\x00b"),
    st.text(min_size=250, max_size=300),
    st.just("' OR 1=1; DROP TABLE workflow_runs; --"),
    st.just("\ud800"),  # a lone surrogate: not encodable as UTF-8
)
_EAST, _WEST = timezone(timedelta(hours=5)), timezone(timedelta(hours=-5))
_datetimes = st.one_of(
    # the edges: converted to UTC these fall outside what datetime can hold
    st.sampled_from(
        [
            datetime.min.replace(tzinfo=_EAST),
            datetime.max.replace(tzinfo=_WEST),
            datetime.min.replace(tzinfo=UTC),
            datetime.max.replace(tzinfo=UTC),
        ]
    ),
    st.datetimes(),  # naive
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(
        timezones=st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23)).map(
            timezone
        )
    ),
)
_odd_objects = st.one_of(
    st.sampled_from(
        [
            object(),
            float("nan"),
            float("inf"),
            -1,
            2**70,
            b"bytes",
            (),
            frozenset({1}),
            RunState.WAITING,
            DeliveryStatus.CANCELLED,
            Outcome.BOUNCED,
            escalation_workflow(),
            Signal("acme", "notification_read"),
        ]
    ),
    _datetimes,
    st.uuids(),  # a UUID object, not its string
)

#: Dicts and lists holding the odd values (in payloads, contexts, configs).
_odd_dicts = st.one_of(
    st.dictionaries(st.text(max_size=4) | _odd_text, _odd_text | _odd_objects, max_size=2),
    st.lists(_odd_text | _odd_objects, max_size=2),
)


def values(known: Known) -> st.SearchStrategy[Any]:
    """Anything at all, with real ids of the store mixed in."""
    return st.one_of(
        _hostile,
        json_values,
        _odd_text,
        _odd_objects,
        _odd_dicts,
        st.sampled_from(known.strings()),
        st.uuids().map(str),
    )


def _rules(v: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(WaitUntil, v, v, v),
        st.builds(OnOutcome, v, v),
        st.builds(Stop, v),
        st.builds(WaitUntil, st.integers(-5, 10**12), st.sampled_from(["email", "inapp", "x"])),
        st.fixed_dictionaries({"kind": v}, optional={"to_step": v, "outcome": v, "extra": v}),
        v,
    )


def declarations(known: Known) -> st.SearchStrategy[Any]:
    """Workflow declarations, typed and as dicts, mostly broken; some valid."""
    v = values(known)
    steps = st.lists(
        st.one_of(
            st.builds(Step, v, v, v, st.lists(_rules(v), max_size=3), v),
            st.builds(
                Step,
                st.sampled_from(["inapp", "email"]),
                st.integers(-1, 3),
                st.just("email"),
                st.lists(_rules(v), max_size=2),
            ),
            st.fixed_dictionaries(
                {"step_key": v, "step_order": v, "channel": v},
                optional={"config": st.fixed_dictionaries({}, optional={"progress": v})},
            ),
            v,
        ),
        max_size=3,
    )
    odd_config = st.builds(
        Workflow,
        st.just("odd"),
        st.just(1),
        st.tuples(
            st.builds(
                Step,
                st.just("only"),
                st.just(1),
                st.just("email"),
                config=_odd_dicts.filter(lambda d: isinstance(d, dict)),
            )
        ),
    )
    return st.one_of(
        odd_config,
        st.builds(Workflow, v, v, steps),
        st.fixed_dictionaries(
            {"workflow_key": v, "workflow_version": v, "steps": steps},
            optional={"extra": v},
        ),
        workflows(),
        st.just(known.definition),
        st.just(attrs.evolve(known.definition, id=str(uuid.uuid4()))),
        v,
    )


def signals(known: Known) -> st.SearchStrategy[Any]:
    """Signals with any fields and payloads (a delivery id in some), and non-signals."""
    v = values(known)
    payloads = st.one_of(
        v,
        st.fixed_dictionaries({"delivery_id": v}),
        st.fixed_dictionaries({"delivery_id": st.sampled_from(known.delivery_ids)}),
    )
    return st.one_of(
        st.builds(Signal, v, v, v, payloads),
        st.builds(
            Signal,
            st.sampled_from(known.tenants),
            st.just("notification_read"),
            st.sampled_from([None, "ada"]),
            payloads | _odd_dicts.filter(lambda d: isinstance(d, dict)),
        ),
        v,
    )


def _with(run: WorkflowRun, name: str, value: Any) -> WorkflowRun:
    """A copy of ``run`` with any value in one field (past the record's converters)."""
    copy = attrs.evolve(run)
    object.__setattr__(copy, name, value)
    return copy


def runs(known: Known) -> st.SearchStrategy[Any]:
    """The real run, the run with garbage in a field, or anything else."""
    v = values(known)
    field = st.sampled_from([f.name for f in attrs.fields(WorkflowRun)])
    broken = st.builds(lambda name, value: _with(known.run, name, value), field, v)
    return st.one_of(st.just(known.run), broken, v)


# -- the calls --------------------------------------------------------------------------------

Call = tuple[tuple[Any, ...], dict[str, Any]]


def _call(*args: st.SearchStrategy[Any], **kwargs: st.SearchStrategy[Any]) -> Any:
    return st.tuples(st.tuples(*args), st.fixed_dictionaries(kwargs))


STORE_CALLS: dict[str, Callable[[Known], st.SearchStrategy[Call]]] = {
    "upsert_definition": lambda k: _call(values(k), declarations(k)),
    "fetch_definition": lambda k: _call(values(k), values(k)),
    "persisted_workflow": lambda k: _call(values(k)),
    "fetch_step_by_key": lambda k: _call(values(k), values(k)),
    "trigger": lambda k: _call(
        tenant_id=values(k),
        notification_key=values(k),
        recipient=values(k),
        workflow=declarations(k),
        idempotency_key=values(k),
        data=values(k),
        timezone=values(k) | st.sampled_from(["Europe/Paris", "Mars/Olympus", "../etc"]),
    ),
    "trigger_many": lambda k: _call(
        st.lists(
            st.fixed_dictionaries(
                {"tenant_id": values(k), "recipient": values(k), "idempotency_key": values(k)},
                optional={"workflow": declarations(k), "notification_key": values(k)},
            )
            | values(k),
            max_size=3,
        )
        | values(k)
    ),
    "record_outcomes": lambda k: _call(
        st.lists(
            st.tuples(st.sampled_from(k.delivery_ids) | values(k), values(k))
            | st.fixed_dictionaries(
                {"delivery_id": st.sampled_from(k.delivery_ids), "status": values(k)},
                optional={"tenant_id": values(k), "suppression_reason": values(k)},
            )
            | values(k),
            max_size=3,
        )
        | values(k)
    ),
    "claim_deliveries": lambda k: _call(values(k), channel=values(k), lease_seconds=values(k)),
    "record_outcome": lambda k: _call(
        st.sampled_from(k.delivery_ids) | values(k),
        st.sampled_from(list(DeliveryStatus)) | values(k),
        values(k),
        tenant_id=values(k),
    ),
    "extend_lease": lambda k: _call(st.sampled_from(k.delivery_ids) | values(k), values(k)),
    "explain_delivery": lambda k: _call(values(k), st.sampled_from(k.delivery_ids) | values(k)),
    "digest_members": lambda k: _call(st.sampled_from(k.delivery_ids) | values(k)),
    "next_claimable_at": lambda k: _call(channel=values(k)),
    "list_deliveries": lambda k: _call(values(k), values(k)),
    "progress_run": lambda k: _call(st.sampled_from(k.run_ids) | values(k), now=values(k)),
    "progress_due_runs": lambda k: _call(now=values(k), limit=values(k)),
    "next_due_at": lambda k: _call(),
    "route_signal": lambda k: _call(signals(k)),
    "track_signal": lambda k: _call(signals(k)),
    "preview_signal": lambda k: _call(signals(k)),
    "cancel": lambda k: _call(
        values(k),
        run_id=st.sampled_from(k.run_ids) | values(k),
        correlation_key=values(k),
        recipient=values(k),
    ),
    "explain": lambda k: _call(values(k), values(k)),
    "list_traces": lambda k: _call(values(k), values(k), limit=values(k)),
    "get_run": lambda k: _call(values(k)),
    "get_current_step": lambda k: _call(runs(k)),
    "active_step_linkage": lambda k: _call(values(k)),
    "verify": lambda k: _call(),
    "prune": lambda k: _call(values(k), tenant_id=values(k)),
    "forget": lambda k: _call(values(k), values(k)),
    "list_erasures": lambda k: _call(values(k)),
}

_RUN_FIELDS = [f.name for f in attrs.fields(WorkflowRun)]

TX_CALLS: dict[str, Callable[[Known], st.SearchStrategy[Call]]] = {
    "lock_run": lambda k: _call(values(k)),
    "get_run": lambda k: _call(values(k)),
    "update_run": lambda k: st.tuples(
        st.tuples(runs(k) | st.sampled_from(k.run_ids)),
        st.dictionaries(st.sampled_from([*_RUN_FIELDS, "bogus"]), values(k), max_size=3),
    ),
    "append_transition": lambda k: _call(
        st.sampled_from(k.run_ids) | values(k),
        st.sampled_from(list(RunState)) | values(k),
        values(k),
        workflow_step_id=values(k),
        delivery_id=values(k),
        from_state=st.sampled_from(list(RunState)) | values(k),
        context=st.one_of(
            values(k), st.dictionaries(st.sampled_from(["source", "payload"]), values(k))
        ),
    ),
    "create_initial_run": lambda k: _call(
        st.sampled_from(k.notification_ids) | values(k),
        st.just(k.definition) | declarations(k),
        values(k),
        st.sampled_from(k.tenants) | values(k),
    ),
    "ensure_definition": lambda k: _call(values(k), declarations(k)),
}


def _check(outcome: BaseException | None) -> None:
    if outcome is None:
        return
    if not isinstance(outcome, ChimewayError) or type(outcome) not in DOCUMENTED:
        raise AssertionError(f"undocumented exception {type(outcome).__name__}") from outcome
    # Errors name the field and show at most a short prefix of a value, never a payload.
    text = str(outcome)
    assert len(text) < 1000, f"{type(outcome).__name__}: {len(text)} characters"
    assert MARKER not in text, text[:200]


def test_every_public_store_method_is_fuzzed() -> None:
    public = {
        name for name in dir(Store) if not name.startswith("_") and callable(getattr(Store, name))
    }
    # these take no input
    assert public - set(STORE_CALLS) == {"close", "transaction", "snapshot"}


# Each method's fuzzing is a hypothesis run over a populated store (0.1-0.7 s; several
# seconds for the lot): slow, while the pinned cases below stay in the fast loop.
@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(STORE_CALLS))
@given(data=st.data())
def test_store_methods_take_bad_input_safely(
    fuzzed: tuple[Store, Known], method: str, data: st.DataObject
) -> None:
    store, known = fuzzed
    args, kwargs = data.draw(STORE_CALLS[method](known), label=method)
    before = table_dump(store)
    outcome: BaseException | None = None
    try:
        getattr(store, method)(*args, **kwargs)
    except Exception as exc:
        outcome = exc
    _check(outcome)
    if outcome is not None:
        assert table_dump(store) == before, f"{method} raised {outcome!r} but wrote"
    assert store.verify() == []


class _Undo(Exception):
    """Raised to roll back a transaction whose host writes may be legitimately odd."""


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(TX_CALLS))
@given(data=st.data())
def test_transaction_helpers_take_bad_input_safely(
    fuzzed: tuple[Store, Known], method: str, data: st.DataObject
) -> None:
    store, known = fuzzed
    args, kwargs = data.draw(TX_CALLS[method](known), label=method)
    before = table_dump(store)
    outcome: BaseException | None = None
    # update_run and append_transition accept what a host may legitimately write even when
    # the trace then disagrees with the row: roll every call back, then check the store.
    with pytest.raises(_Undo), store.transaction() as tx:
        try:
            getattr(tx, method)(*args, **kwargs)
        except Exception as exc:
            outcome = exc
        raise _Undo
    _check(outcome)
    assert table_dump(store) == before
    assert store.verify() == []
    # The store still takes a normal write afterwards.
    assert store.next_due_at() is not None


# -- what the fuzzing found, pinned ----------------------------------------------------------

_LONE = "\ud800"  # a lone surrogate: a str Python accepts and sqlite3 cannot bind
_EARLY = datetime.min.replace(tzinfo=_EAST)  # before year 1 once in UTC
_LATE = datetime.max.replace(tzinfo=_WEST)  # after year 9999 once in UTC


def _trigger_with(**changes: Any) -> Callable[[Store, Known], Any]:
    return lambda store, known: trigger(store, key="pinned", **changes)


def _in_tx(method: str, *args: Any, **kwargs: Any) -> Callable[[Store, Known], Any]:
    def call(store: Store, known: Known) -> Any:
        with store.transaction() as tx:
            real = [known.run_ids[0] if a is _RUN else a for a in args]
            return getattr(tx, method)(*real, **kwargs)

    return call


_RUN = object()  # stands for a real run id in _in_tx

PINNED: dict[str, tuple[Callable[[Store, Known], Any], type[ChimewayError]]] = {
    "trigger tenant": (_trigger_with(tenant_id=_LONE), chimeway_lite.InvalidArgument),
    "trigger recipient": (_trigger_with(recipient=_LONE), chimeway_lite.InvalidArgument),
    "workflow key": (
        lambda s, k: s.upsert_definition("n", Workflow(_LONE, 1, [Step("a", 1, "c")])),
        chimeway_lite.InvalidWorkflow,
    ),
    "step config value": (
        lambda s, k: s.upsert_definition(
            "n", Workflow("w", 1, [Step("a", 1, "c", config={"x": _LONE})])
        ),
        chimeway_lite.InvalidWorkflow,
    ),
    "step config key": (
        lambda s, k: s.upsert_definition(
            "n", Workflow("w", 1, [Step("a", 1, "c", config={_LONE: 1})])
        ),
        chimeway_lite.InvalidWorkflow,
    ),
    "signal payload": (
        lambda s, k: s.track_signal(Signal("acme", "read", None, {"x": _LONE})),
        chimeway_lite.InvalidSignal,
    ),
    "signal actor": (
        lambda s, k: s.route_signal(Signal("acme", "read", _LONE)),
        chimeway_lite.InvalidSignal,
    ),
    "suppression reason": (
        lambda s, k: s.record_outcome(k.delivery_ids[0], "cancelled", _LONE),
        chimeway_lite.InvalidArgument,
    ),
    "run id": (lambda s, k: s.get_run(_LONE), chimeway_lite.InvalidArgument),
    "forgotten recipient": (lambda s, k: s.forget("acme", _LONE), chimeway_lite.InvalidArgument),
    "terminal reason": (
        _in_tx("update_run", _RUN, terminal_reason=_LONE),
        chimeway_lite.InvalidArgument,
    ),
    "terminal reason type": (
        _in_tx("update_run", _RUN, terminal_reason=7),
        chimeway_lite.InvalidArgument,
    ),
    "pending signals": (
        _in_tx("update_run", _RUN, pending_signals=[_LONE]),
        chimeway_lite.InvalidArgument,
    ),
    "context value": (
        _in_tx("append_transition", _RUN, "waiting", "note", context={"source": _LONE}),
        chimeway_lite.InvalidArgument,
    ),
    "current step of a run": (
        lambda s, k: s.get_current_step(_with(k.run, "current_step_id", _LONE)),
        chimeway_lite.InvalidArgument,
    ),
    "prune cutoff": (lambda s, k: s.prune(_EARLY), chimeway_lite.InvalidArgument),
    "progress time": (
        lambda s, k: s.progress_run(k.run_ids[0], now=_LATE),
        chimeway_lite.InvalidArgument,
    ),
    "sweep time": (lambda s, k: s.progress_due_runs(now=_EARLY), chimeway_lite.InvalidArgument),
}


@pytest.mark.parametrize("case", sorted(PINNED))
def test_inputs_the_fuzzing_found_raise_documented_errors(
    fuzzed: tuple[Store, Known], case: str
) -> None:
    store, known = fuzzed
    call, error = PINNED[case]
    before = table_dump(store)
    with pytest.raises(error):
        call(store, known)
    assert table_dump(store) == before
    assert store.verify() == []


# -- the CLI ------------------------------------------------------------------------------------

_cli_text = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
            "\x1b[2J\x1b]0;pwned\x07",
            '=HYPERLINK("http://x")',
            "x" * 10_000,
            "9999-12-31T23:59:59-05:00",
            "0001-01-01T00:00:00+05:00",
            "-1",
            "nan",
            "' OR 1=1; --",
            "acme",
            "notification_read",
        ]
    ),
    st.text(max_size=20).filter(lambda t: "\x00" not in t),
)

#: Every command with the places where a hostile value goes (None: the value itself).
CLI_SHAPES: dict[str, Callable[[str, str], list[str]]] = {
    "runs": lambda v, run: ["runs", "--tenant", v],
    "runs-limit": lambda v, run: ["runs", "--limit", v],
    "runs-state": lambda v, run: ["runs", "--state", v, "--csv"],
    "explain": lambda v, run: ["explain", v, run],
    "explain-run": lambda v, run: ["explain", "acme", v],
    "traces": lambda v, run: ["traces", "acme", v, "--csv"],
    "traces-limit": lambda v, run: ["traces", "acme", run, "--limit", v],
    "timeline": lambda v, run: ["timeline", v, run, "--out", "-"],
    "timeline-format": lambda v, run: ["timeline", "acme", run, "--out", "-", "--format", v],
    "signal": lambda v, run: ["signal", v, "notification_read"],
    "signal-event": lambda v, run: ["signal", "acme", v, "--dry-run"],
    "signal-actor": lambda v, run: ["signal", "acme", "notification_read", "--actor", v],
    "signal-key": lambda v, run: ["signal", "acme", "x", "--correlation-key", v],
    "cancel": lambda v, run: ["cancel", v, "--run", run],
    "cancel-recipient": lambda v, run: ["cancel", "acme", "--recipient", v],
    "tick": lambda v, run: ["tick", "--now", v],
    "verify": lambda v, run: ["verify"],
    "tables": lambda v, run: ["tables", "--json"],
}


def test_every_cli_command_is_fuzzed() -> None:
    from chimeway_lite.tools.cli import cli as group

    # demo and work create or drive a store of their own; work is fuzzed in test_cli_work.
    # ui serves until it is stopped: its requests are fuzzed in test_ui.
    covered = {name.split("-")[0] for name in CLI_SHAPES} | {"demo", "work", "ui"}
    assert set(group.commands) <= covered


@pytest.mark.slow
@pytest.mark.parametrize("shape", sorted(CLI_SHAPES))
@given(data=st.data())
def test_cli_commands_take_hostile_values_safely(
    fuzzed: tuple[Store, Known], shape: str, data: st.DataObject
) -> None:
    from click.testing import CliRunner

    from chimeway_lite.tools.cli import cli as group

    store, known = fuzzed
    value = data.draw(_cli_text, label="value")
    args = CLI_SHAPES[shape](value, known.run_ids[2])
    before = table_dump(store)
    result = CliRunner().invoke(group, ["--db", store.path, *args], prog_name="chimeway-lite")
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in (0, 1, 2, 3), result.output
    assert "Traceback" not in result.output + result.stderr
    assert "\x1b" not in result.output + result.stderr  # escapes are shown, not sent
    if result.exit_code != 0:
        assert table_dump(store) == before, f"{shape} failed ({result.exit_code}) but wrote"
    assert store.verify() == []
