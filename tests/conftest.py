"""Shared fixtures and hypothesis profiles; the shared helpers are in ``factories``.

Profiles: ``fast`` (default, what CI runs) and ``thorough`` (``HYPOTHESIS_PROFILE=thorough``).
Tests marked ``slow`` (real processes, SIGKILL, benchmarks, long hypothesis runs) are left out
by ``pytest -m "not slow"``, the fast inner loop; a plain ``pytest`` runs everything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from factories import START, escalation_workflow
from hypothesis import HealthCheck, settings

from chimeway_lite import FakeClock, Store, Workflow

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
def store(db_path: str, clock: FakeClock) -> Iterator[Store]:
    """A store on a new file, driven by the fake clock."""
    with Store(db_path, clock=clock) as opened:
        yield opened


@pytest.fixture
def memory_store(clock: FakeClock) -> Iterator[Store]:
    """A store in memory, driven by the fake clock."""
    with Store(":memory:", clock=clock) as opened:
        yield opened


@pytest.fixture
def escalation() -> Workflow:
    """The escalation journey of the README."""
    return escalation_workflow()
