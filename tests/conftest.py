"""Shared fixtures and hypothesis profiles; the shared helpers are in ``factories``.

Backends: the fixtures ``store``, ``memory_store``, ``location``, ``new_location`` and
``new_store`` run each test that takes them once on SQLite and once on PostgreSQL (when a
server can be had: see ``backends``; under CI it must be). A test about a SQLite mechanism
is marked ``sqlite_only`` and runs on SQLite alone.

Profiles: ``fast`` (default, what CI runs) and ``thorough`` (``HYPOTHESIS_PROFILE=thorough``).
Tests marked ``slow`` (real processes, SIGKILL, benchmarks, long hypothesis runs) are left out
by ``pytest -m "not slow"``, the fast inner loop; a plain ``pytest`` runs everything.

Hangs: ``hang_guard`` (a plugin this file loads) ends a session whose test runs past a limit,
printing every thread's stack.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import backends
import pg_server
import pytest
from factories import START, escalation_workflow
from hypothesis import HealthCheck, settings

from chimeway_lite import FakeClock, Store, Workflow

pytest_plugins = ["hang_guard"]
__all__ = ["START", "escalation_workflow"]  # re-exported: ``from conftest import START``

settings.register_profile(
    "fast",
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough",
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# Once per change of the machine or the engine: ten thousand sequences per property.
settings.register_profile(
    "soak",
    max_examples=10_000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at 2026-01-05 09:30 UTC."""
    return FakeClock(START)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """A path for a new store file in a fresh directory."""
    return str(tmp_path / "chimeway.db")


@pytest.fixture
def location(backend: str, db_path: str, new_location: Callable[[], str]) -> str:
    """A fresh place for a store on the test's backend: ``db_path``, or a new schema."""
    return db_path if backend == backends.SQLITE else new_location()


@pytest.fixture
def store(location: str, clock: FakeClock) -> Iterator[Store]:
    """A store on a new file (or a new PostgreSQL schema), driven by the fake clock."""
    with Store(location, clock=clock) as opened:
        yield opened


@pytest.fixture
def memory_store(
    backend: str, new_location: Callable[[], str], clock: FakeClock
) -> Iterator[Store]:
    """A store in memory (or in a new PostgreSQL schema), driven by the fake clock."""
    where = ":memory:" if backend == backends.SQLITE else new_location()
    with Store(where, clock=clock) as opened:
        yield opened


@pytest.fixture
def escalation() -> Workflow:
    """The escalation journey of the README."""
    return escalation_workflow()


# Tests of what only PostgreSQL has: collected when a server can be had (else the report
# header says why, in one line).
collect_ignore_glob = [] if backends.postgres_dsn() is not None else ["test_postgres*.py"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sqlite_only: about a SQLite mechanism (writer gate, WAL, PRAGMAs, the file itself): "
        "the backend fixtures give it SQLite alone",
    )
    if backends.postgres_dsn() is None and backends.required():
        raise pytest.UsageError(
            f"PostgreSQL tests must run here (CI or {pg_server.ENV_DSN} set) but no server "
            f"could be had: {backends.why_not()}"
        )


def pytest_report_header(config: pytest.Config) -> str:
    if backends.postgres_dsn() is None:
        return (
            f"PostgreSQL tests: not run, no server ({backends.why_not()}); "
            "the SQLite tests run alone"
        )
    return f"backends: sqlite and postgres ({pg_server.ENV_DSN} or a throwaway cluster)"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("sqlite_only") is not None
        names = (backends.SQLITE,) if only else backends.available()
        metafunc.parametrize("backend", names, scope="function")


@pytest.fixture(scope="module", params=backends.available())
def module_backend(request: pytest.FixtureRequest) -> str:
    """The backend of a module-scoped fixture that builds one store for many tests (each
    test then runs once per backend, as with ``backend``)."""
    name: str = request.param
    return name


@pytest.fixture
def new_location(backend: str, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes fresh places for stores on the test's backend (files, or new schemas)."""
    made: list[str] = []
    count = iter(range(1_000_000))

    def make() -> str:
        location = backends.new_location(backend, tmp_path, f"store-{next(count)}.db")
        made.append(location)
        return location

    yield make
    for location in made:
        backends.close_sql(location)
        if backend == backends.POSTGRES:
            backends.drop_location(location)


@pytest.fixture
def new_store(new_location: Callable[[], str], clock: FakeClock) -> Iterator[Callable[..., Store]]:
    """Opens new stores on the test's backend (``clock`` by default); closes them after."""
    opened: list[Store] = []

    def make(**options: Any) -> Store:
        options.setdefault("clock", clock)
        store = Store(new_location(), **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


_backend_of: dict[str, str] = {}
_outcomes: dict[str, dict[str, int]] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "backend" in callspec.params:
            _backend_of[item.nodeid] = callspec.params["backend"]
        elif callspec is not None and "module_backend" in callspec.params:
            _backend_of[item.nodeid] = callspec.params["module_backend"]
        elif Path(str(item.fspath)).name.startswith("test_postgres"):
            _backend_of[item.nodeid] = backends.POSTGRES


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        backend = _backend_of.get(report.nodeid, "either")
        counts = _outcomes.setdefault(backend, {})
        counts[report.outcome] = counts.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The closing note: the tests run per backend ("either": tests of no store)."""
    if not _outcomes:
        return
    terminalreporter.section("tests per backend")
    for backend in (backends.SQLITE, backends.POSTGRES, "either"):
        counts = _outcomes.get(backend)
        if counts:
            text = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
            terminalreporter.write_line(f"{backend}: {text}")
    if backends.postgres_dsn() is None:
        terminalreporter.write_line(f"PostgreSQL tests: not run, no server ({backends.why_not()})")
