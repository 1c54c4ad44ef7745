"""chimeway_lite against raw sqlite3 (and DBOS, when installed), measured in the same run.

    python benchmarks/run.py [--quick | --smoke] [--runs N] [--peer-python PATH] [--json FILE]

Every figure is the median of ``--runs`` repetitions (default 3) with its min-max; each ratio is
taken per repetition (the two sides run back to back, alternating which goes first, in files of
one directory, so on one file system) and the median of those is shown. ``speed vs raw`` is
chimeway_lite's throughput divided by raw sqlite3's (for latencies: raw's time divided by
chimeway_lite's), so 1.0 means as fast as hand-written SQL. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import bulk
import engine_side
import workers
from raw_side import RawStore
from shapes import (
    RETRY_WORKFLOW,
    T0,
    WORKFLOW,
    after,
    checkpoint,
    count_rows,
    first_difference,
    table_dump,
    text,
)

from chimeway_lite import FakeClock, Store

HERE = Path(__file__).resolve().parent
SIGNAL_TENANT = "tenant-signal"
# Fan-out is timed over three tenants per repetition: one signal is too short to time alone.
FANOUT_TENANTS = ("tenant-fanout-a", "tenant-fanout-b", "tenant-fanout-c")
SALT = f"{os.getpid()}-{time.time_ns()}"


@dataclass(frozen=True)
class Sizes:
    """How much each benchmark does in one repetition."""

    triggers: int
    journeys: int
    signal_runs: int  # waiting runs of one tenant; half of them get a signal each
    fanout_runs: int  # waiting runs of another tenant, all resumed by one signal
    other_waiting: int  # waiting runs of a third tenant (they must not be touched)
    small_store: int
    big_store: int
    due_runs: int
    explains: int
    runs: int
    peer_starts: int
    peer_signals: int
    retry_journeys: int
    worker_deliveries: int  # pending deliveries the workers share out, per measurement
    verify: bool  # run Store.verify() on every store written (and on the built ones)


SIZES = {
    "full": Sizes(
        3000, 1000, 2000, 2000, 6000, 10_000, 1_000_000, 50, 200, 3, 200, 10, 1000, 10_000, False
    ),
    "quick": Sizes(
        1000, 500, 2000, 2000, 2000, 10_000, 100_000, 50, 200, 3, 200, 5, 500, 4000, False
    ),
    "smoke": Sizes(60, 30, 40, 100, 60, 200, 600, 10, 20, 2, 20, 1, 30, 200, True),
}
WORKER_PROCESSES = (1, 2, 4)  # the writer counts issue 16 names
WORKERS_AT = after(T0, 60)  # when the workers claim the pending work of a new file
BIG_WORKERS_AT = T0 - timedelta(hours=6)  # when the big store's pending work is planned


def _label(count: int) -> str:
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000} M"
    if count >= 1000 and count % 1000 == 0:
        return f"{count // 1000} K"
    return f"{count:,}"


@dataclass
class Row:
    """One line of the table: per-repetition values of both sides."""

    name: str
    unit: str
    higher_is_better: bool
    engine: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    target: str = ""
    check: Callable[[Row], bool] | None = None
    ratio_kind: str = "speed"  # speed (vs raw), or none

    def ratios(self) -> list[float]:
        """Speed vs raw per repetition (higher is better)."""
        pairs = zip(self.engine, self.raw, strict=False)
        if self.higher_is_better:
            return [e / r for e, r in pairs if r]
        return [r / e for e, r in pairs if e]


@dataclass
class Report:
    """Everything measured, and the problems found (row-count mismatches)."""

    rows: dict[str, Row] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    peer: dict[str, Any] = field(default_factory=dict)

    def row(self, key: str, name: str, unit: str, higher: bool, **kwargs: Any) -> Row:
        """The row ``key``, created on first use."""
        if key not in self.rows:
            self.rows[key] = Row(name, unit, higher, **kwargs)
        return self.rows[key]

    def same_rows(self, what: str, engine: dict[str, int], raw: dict[str, int]) -> None:
        """Record a problem unless both sides wrote the same number of rows per table."""
        if engine != raw:
            self.problems.append(f"{what}: chimeway_lite wrote {engine}, raw sqlite3 {raw}")

    def same_values(self, what: str, engine_path: str, raw_path: str) -> None:
        """Record a problem unless both files hold the same rows, value for value, in the
        same order (ids compared by version and order of appearance: shapes.table_dump)."""
        difference = first_difference(table_dump(engine_path), table_dump(raw_path))
        if difference is not None:
            self.problems.append(f"{what}: the two sides wrote different rows: {difference:.600}")

    def verified(self, what: str, path: str) -> None:
        """Record what ``Store.verify()`` finds in the store at ``path`` (first five)."""
        store = Store(path)
        try:
            found = store.verify()
        finally:
            store.close()
        self.problems += [f"{what}: verify(): {p:.300}" for p in found[:5]]

    def compare(
        self, what: str, sizes: Sizes, paths: dict[str, str], *, values: bool = True
    ) -> None:
        """Both sides' files: the same rows per table, the same values (unless ``values`` is
        False: the rows of concurrent writers come in no fixed order), and, in smoke mode,
        stores ``verify()`` finds nothing wrong with."""
        self.same_rows(what, count_rows(paths["engine"]), count_rows(paths["raw"]))
        if values:
            self.same_values(what, paths["engine"], paths["raw"])
        if sizes.verify:
            for side, path in paths.items():
                self.verified(f"{what} ({side})", path)


def _delta(before: dict[str, int], after_: dict[str, int]) -> dict[str, int]:
    return {t: after_[t] - before[t] for t in before}


# -- the benchmarks ----------------------------------------------------------------------------


CHUNKS = 10


def _interleaved(
    rep: int, engine: Callable[[int], float], raw: Callable[[int], float]
) -> tuple[float, float]:
    """Run both sides in CHUNKS alternating slices and sum each side's time: a disturbance
    (a checkpoint, another process) hits both sides alike instead of one whole side."""
    engine_total = raw_total = 0.0
    for chunk in range(CHUNKS):
        e, r = _pair(rep + chunk, partial(engine, chunk), partial(raw, chunk))
        engine_total += e
        raw_total += r
    return engine_total, raw_total


def bench_trigger(report: Report, sizes: Sizes, work: Path, rep: int) -> None:
    """N triggers, each its own unit of work, on new files."""
    paths = {side: str(work / f"trigger-{side}-{rep}.db") for side in ("engine", "raw")}
    per_chunk = max(1, sizes.triggers // CHUNKS)
    store, _ = engine_side.open_store(paths["engine"], T0)
    store.upsert_definition("welcome", WORKFLOW)
    raw_store = RawStore(paths["raw"])

    def engine(chunk: int) -> float:
        started = time.perf_counter()
        for i in range(chunk * per_chunk, (chunk + 1) * per_chunk):
            engine_side.trigger(store, "tenant-0", f"user-{i}", f"key-{i}")
        return time.perf_counter() - started

    def raw(chunk: int) -> float:
        started = time.perf_counter()
        for i in range(chunk * per_chunk, (chunk + 1) * per_chunk):
            raw_store.trigger("tenant-0", f"user-{i}", f"key-{i}", T0)
        return time.perf_counter() - started

    with store:
        e, r = _interleaved(rep, engine, raw)
    raw_store.close()
    row = report.row(
        "trigger",
        "trigger (notification + run + 2 transitions + delivery)",
        "/s",
        True,
        target="≥ 0.5x raw",
        check=lambda row: statistics.median(row.ratios()) >= 0.5,
    )
    row.engine.append(per_chunk * CHUNKS / e)
    row.raw.append(per_chunk * CHUNKS / r)
    report.compare("trigger", sizes, paths)


def bench_trigger_batches(report: Report, sizes: Sizes, work: Path, rep: int) -> None:
    """N triggers in batches of BATCH on new files: ``trigger_many`` against raw sqlite3
    writing the same rows with the BATCH units in one transaction."""
    paths = {side: str(work / f"trigger-batch-{side}-{rep}.db") for side in ("engine", "raw")}
    per_chunk = max(BATCH, sizes.triggers // CHUNKS // BATCH * BATCH)
    store, _ = engine_side.open_store(paths["engine"], T0)
    store.upsert_definition("welcome", WORKFLOW)
    raw_store = RawStore(paths["raw"])

    def engine(chunk: int) -> float:
        started = time.perf_counter()
        for low in range(chunk * per_chunk, (chunk + 1) * per_chunk, BATCH):
            engine_side.trigger_batch(store, "tenant-0", low, BATCH)
        return time.perf_counter() - started

    def raw(chunk: int) -> float:
        started = time.perf_counter()
        for low in range(chunk * per_chunk, (chunk + 1) * per_chunk, BATCH):
            with raw_store.batch():
                for i in range(low, low + BATCH):
                    raw_store.trigger("tenant-0", f"user-{i}", f"key-{i}", T0)
        return time.perf_counter() - started

    with store:
        e, r = _interleaved(rep, engine, raw)
    raw_store.close()
    row = report.row(
        "trigger-batch",
        f"trigger in batches of {BATCH} (trigger_many)",
        "/s",
        True,
    )
    row.engine.append(per_chunk * CHUNKS / e)
    row.raw.append(per_chunk * CHUNKS / r)
    report.compare("batched triggers", sizes, paths)


def bench_journeys(report: Report, sizes: Sizes, work: Path, rep: int) -> None:
    """Full journeys: trigger → claim → outcome → wait → due sweep → claim → outcome."""
    paths = {side: str(work / f"journey-{side}-{rep}.db") for side in ("engine", "raw")}
    per_chunk = max(1, sizes.journeys // CHUNKS)
    moved = {"engine": 0, "raw": 0}
    store, clock = engine_side.open_store(paths["engine"], T0)
    store.upsert_definition("welcome", WORKFLOW)
    raw_store = RawStore(paths["raw"])

    def engine(chunk: int) -> float:
        started = time.perf_counter()
        moved["engine"] += engine_side.journeys(
            store, clock, per_chunk, T0, 100, first=chunk * per_chunk
        )
        return time.perf_counter() - started

    def raw(chunk: int) -> float:
        started = time.perf_counter()
        moved["raw"] += raw_store.journeys(per_chunk, T0, 100, first=chunk * per_chunk)
        return time.perf_counter() - started

    with store:
        e, r = _interleaved(rep, engine, raw)
    raw_store.close()
    total = per_chunk * CHUNKS
    row = report.row(
        "journeys",
        "full journey (trigger → claim → outcome → wait → due sweep → claim → outcome → complete)",
        "/s",
        True,
        target="≥ 1,000/s",
        check=lambda row: statistics.median(row.engine) >= 1000,
    )
    row.engine.append(total / e)
    row.raw.append(total / r)
    if moved != {"engine": total, "raw": total}:
        report.problems.append(f"journeys: runs moved by the sweep {moved}")
    report.compare("journeys", sizes, paths)


BATCH = 100  # requests per trigger_many, reports per record_outcomes, due runs per unit


def _journeys_both(
    report: Report,
    rep: int,
    count: int,
    engine_path: str,
    raw_path: str,
    *,
    batched: bool,
    start: datetime,
    first: int,
) -> tuple[float, float]:
    """``count`` full journeys per side (one by one, or ``BATCH`` per transaction) in
    CHUNKS alternating slices; (engine s, raw s). Problems: runs the sweep did not move,
    rows that differ in number."""
    per_chunk = max(1, count // CHUNKS)
    moved = {"engine": 0, "raw": 0}
    before = {"engine": count_rows(engine_path), "raw": count_rows(raw_path)}
    store, clock = engine_side.open_store(engine_path, start)
    store.upsert_definition("welcome", WORKFLOW)
    raw_store = RawStore(raw_path)
    drive = engine_side.batched_journeys if batched else engine_side.journeys
    raw_drive = raw_store.batched_journeys if batched else raw_store.journeys

    def engine(chunk: int) -> float:
        started = time.perf_counter()
        moved["engine"] += drive(
            store, clock, per_chunk, start, BATCH, first=first + chunk * per_chunk
        )
        return time.perf_counter() - started

    def raw(chunk: int) -> float:
        started = time.perf_counter()
        moved["raw"] += raw_drive(per_chunk, start, BATCH, first=first + chunk * per_chunk)
        return time.perf_counter() - started

    with store:
        e, r = _interleaved(rep, engine, raw)
    raw_store.close()
    what = f"journeys ({'batches' if batched else 'one by one'}) in {Path(engine_path).name}"
    total = per_chunk * CHUNKS
    if moved != {"engine": total, "raw": total}:
        report.problems.append(f"{what}: runs moved by the sweep {moved}")
    report.same_rows(
        what,
        _delta(before["engine"], count_rows(engine_path)),
        _delta(before["raw"], count_rows(raw_path)),
    )
    return total / e, total / r


def bench_batches(report: Report, sizes: Sizes, work: Path, rep: int) -> None:
    """Full journeys in batches of 100 (trigger_many, record_outcomes, the sweep 100 runs
    per store.transaction()) on new files; raw sqlite3 puts the same 100 units in one
    transaction."""
    paths = {side: str(work / f"batch-{side}-{rep}.db") for side in ("engine", "raw")}
    RawStore(paths["raw"]).close()  # both files with the definition, before rows are counted
    store, _ = engine_side.open_store(paths["engine"], T0)
    with store:
        store.upsert_definition("welcome", WORKFLOW)
    e, r = _journeys_both(
        report, rep, sizes.journeys, paths["engine"], paths["raw"], batched=True, start=T0, first=0
    )
    row = report.row(
        "journeys-batch",
        f"full journey in batches of {BATCH} (trigger_many, record_outcomes, sweep)",
        "/s",
        True,
        target="≥ 2,500/s",
        check=lambda row: statistics.median(row.engine) >= 2500,
    )
    row.engine.append(e)
    row.raw.append(r)
    report.compare("batched journeys", sizes, paths)


def bench_scale(
    report: Report, sizes: Sizes, scale: dict[str, str], prune_source: str, rep: int
) -> None:
    """The write paths on a store of ``sizes.big_store`` runs (one copy per side, reused by
    every repetition), then verify and a full prune of the finished runs (on a fresh copy)."""
    label = _label(sizes.big_store)
    _warm(scale["engine"])
    _warm(scale["raw"])
    # trigger
    per_chunk = max(1, sizes.triggers // CHUNKS)
    before = {side: count_rows(path) for side, path in scale.items()}
    store, _ = engine_side.open_store(scale["engine"], T0)
    raw_store = RawStore(scale["raw"])

    def engine(chunk: int) -> float:
        started = time.perf_counter()
        for i in range(chunk * per_chunk, (chunk + 1) * per_chunk):
            engine_side.trigger(store, "tenant-scale", f"user-{i}", f"scale-{rep}-{i}")
        return time.perf_counter() - started

    def raw(chunk: int) -> float:
        started = time.perf_counter()
        for i in range(chunk * per_chunk, (chunk + 1) * per_chunk):
            raw_store.trigger("tenant-scale", f"user-{i}", f"scale-{rep}-{i}", T0)
        return time.perf_counter() - started

    with store:
        e, r = _interleaved(rep, engine, raw)
    raw_store.close()
    report.same_rows(
        f"trigger at {label}",
        _delta(before["engine"], count_rows(scale["engine"])),
        _delta(before["raw"], count_rows(scale["raw"])),
    )
    row = report.row(f"trigger-{sizes.big_store}", f"trigger, {label} runs stored", "/s", True)
    row.engine.append(per_chunk * CHUNKS / e)
    row.raw.append(per_chunk * CHUNKS / r)
    # journeys, one by one and in batches; they start a day before the store's waiting runs
    # are due, so the sweep moves the journeys' runs only
    start = T0 - timedelta(days=1)
    for batched, key, name in (
        (False, "journeys", "full journey"),
        (True, "journeys-batch", f"full journey in batches of {BATCH}"),
    ):
        e, r = _journeys_both(
            report,
            rep,
            sizes.journeys,
            scale["engine"],
            scale["raw"],
            batched=batched,
            start=start,
            first=(rep * 2 + batched + 1) * 10_000_000,
        )
        row = report.row(
            f"{key}-{sizes.big_store}",
            f"{name}, {label} runs stored",
            "/s",
            True,
            target="≥ 2,500/s" if batched else "≥ 1,000/s",
            check=(lambda row: statistics.median(row.engine) >= 2500)
            if batched
            else (lambda row: statistics.median(row.engine) >= 1000),
        )
        row.engine.append(e)
        row.raw.append(r)
    # retrying journeys (their own definition), half a day before the triggers above: their
    # deliveries are not claimable yet, and the journeys left none behind (they claim until
    # none is left), so each side claims its own only
    before = {side: count_rows(path) for side, path in scale.items()}
    e, r = _retries_both(
        report,
        rep,
        sizes.retry_journeys,
        scale["engine"],
        scale["raw"],
        first=(rep + 1) * 10_000_000,
        start=T0 - timedelta(hours=12),
    )
    report.same_rows(
        f"retrying journeys at {label}",
        _delta(before["engine"], count_rows(scale["engine"])),
        _delta(before["raw"], count_rows(scale["raw"])),
    )
    row = report.row(
        f"retries-{sizes.big_store}", f"retrying journey, {label} runs stored", "/s", True
    )
    row.engine.append(e)
    row.raw.append(r)
    for key in ("trigger", "journeys", "journeys-batch", "retries"):
        is_trigger = key == "trigger"
        _growth(
            report,
            key,
            sizes.big_store,
            f"{key.replace('-batch', ' in batches')}: /s",
            target="≥ 0.9x" if is_trigger else "",
            check=(lambda row: statistics.median(row.engine) >= 0.9) if is_trigger else None,
        )
    # verify, whole and quick (no integrity_check), in one process and in one per CPU
    # (the runs and deliveries cut into shares, the store-wide checks in this process):
    # the engine only
    parts = max(2, os.cpu_count() or 1)
    for quick, processes, key, name in (
        (False, 1, "verify", "verify()"),
        (True, 1, "verify-quick", "verify(quick=True)"),
        (False, parts, "verify-workers", f"verify(workers={parts})"),
        (True, parts, "verify-quick-workers", f"verify(quick=True, workers={parts})"),
    ):
        with Store(scale["engine"]) as checked:
            started = time.perf_counter()
            found = checked.verify(quick=quick, workers=processes)
            elapsed = time.perf_counter() - started
        report.problems += [f"{name} at {label}: {p:.300}" for p in found[:5]]
        row = report.row(
            f"{key}-{sizes.big_store}",
            f"{name}, {label} runs stored",
            "s",
            False,
            target="≤ 60 s at 1 M" if key in ("verify", "verify-workers") else "",
            ratio_kind="none",
        )
        row.engine.append(elapsed)
    # prune of every finished run, on a fresh copy of the built store
    target = str(Path(scale["engine"]).with_name(f"prune-{rep}.db"))
    shutil.copyfile(prune_source, target)
    _warm(target)
    finished = _finished_runs(target)
    seconds, peak, deleted_runs = _prune_watched(target, T0 - timedelta(days=1))
    _remove(target)
    if deleted_runs != finished:
        report.problems.append(f"prune at {label}: {deleted_runs} of {finished} finished runs")
    row = report.row(
        f"prune-{sizes.big_store}",
        f"prune() of {finished:,} finished runs, {label} runs stored",
        "s",
        False,
        ratio_kind="none",
    )
    row.engine.append(seconds)
    row = report.row(
        f"prune-wal-{sizes.big_store}",
        f"prune(): largest WAL seen, {label} runs stored",
        "MB",
        False,
        target="≤ 64 MB",
        check=lambda row: max(row.engine) <= 64,
        ratio_kind="none",
    )
    row.engine.append(peak / 1e6)


def _finished_runs(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        query = "SELECT count(*) FROM workflow_runs WHERE state IN ('completed', 'stopped')"
        return int(conn.execute(query).fetchone()[0])
    finally:
        conn.close()


def _prune_watched(path: str, before: datetime) -> tuple[float, int, int]:
    """Prune ``path`` of the runs finished before ``before`` while a thread samples the
    WAL's size every millisecond: (seconds, largest WAL in bytes, runs deleted)."""
    wal = path + "-wal"
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.001):
            with contextlib.suppress(OSError):  # no WAL at this instant
                peak[0] = max(peak[0], os.path.getsize(wal))

    watcher = threading.Thread(target=watch, daemon=True)
    runs_before = _finished_runs(path)
    with Store(path) as store:
        watcher.start()
        started = time.perf_counter()
        store.prune(before)
        elapsed = time.perf_counter() - started
        done.set()
        watcher.join()
    return elapsed, peak[0], runs_before - _finished_runs(path)


def bench_retries(report: Report, sizes: Sizes, work: Path, rep: int) -> None:
    """Retrying journeys: trigger → claim → failed (retried 1 s later) → the clock moves on
    → claim → succeeded → the run completes."""
    paths = {side: str(work / f"retry-{side}-{rep}.db") for side in ("engine", "raw")}
    e, r = _retries_both(report, rep, sizes.retry_journeys, paths["engine"], paths["raw"])
    row = report.row(
        "retries",
        "retrying journey (trigger → claim → failed, retry in 1 s → claim → succeeded → complete)",
        "/s",
        True,
    )
    row.engine.append(e)
    row.raw.append(r)
    report.compare("retrying journeys", sizes, paths)


def _retries_both(
    report: Report,
    rep: int,
    count: int,
    engine_path: str,
    raw_path: str,
    *,
    first: int = 0,
    start: datetime = T0,
) -> tuple[float, float]:
    """``count`` retrying journeys per side in CHUNKS alternating slices from ``start``,
    their idempotency keys numbered from ``first``; (engine /s, raw /s). A problem when a
    side's second attempts did not all succeed. The file must hold no delivery claimable
    then but theirs."""
    per_chunk = max(1, count // CHUNKS)
    done = {"engine": 0, "raw": 0}
    clock = FakeClock(start)
    store = Store(engine_path, clock=clock)
    store.upsert_definition("welcome", RETRY_WORKFLOW)
    raw_store = RawStore(raw_path, RETRY_WORKFLOW)

    def engine(chunk: int) -> float:
        at = after(start, 10 * chunk)  # the clock only moves forward, chunk after chunk
        started = time.perf_counter()
        done["engine"] += engine_side.retry_journeys(
            store, clock, per_chunk, at, 100, first=first + chunk * per_chunk
        )
        return time.perf_counter() - started

    def raw(chunk: int) -> float:
        at = after(start, 10 * chunk)
        started = time.perf_counter()
        done["raw"] += raw_store.retry_journeys(per_chunk, at, 100, first=first + chunk * per_chunk)
        return time.perf_counter() - started

    with store:
        e, r = _interleaved(rep, engine, raw)
    raw_store.close()
    total = per_chunk * CHUNKS
    if done != {"engine": total, "raw": total}:
        report.problems.append(f"retrying journeys: second attempts that succeeded {done}")
    return total / e, total / r


def bench_workers(
    report: Report,
    sizes: Sizes,
    work: Path,
    seed: str,
    rep: int,
    stored: int = 0,
    now: datetime = WORKERS_AT,
) -> None:
    """Claim → send → outcome by 1, 2 and 4 worker processes on one file (workers.py), on
    two copies of one store of pending deliveries; each worker claims 100 at a time with a
    lease and records each as succeeded (its run enters its wait) until no work is left.
    ``stored``: the seed is the big store with the pending deliveries added (the rows are
    then compared per table, not value for value). The workers claim at ``now``."""
    count = sizes.worker_deliveries
    suffix, where = _stored_names(stored)
    claimable = _claimable(seed, now)
    if claimable != count:
        report.problems.append(
            f"workers{where}: the seed holds {claimable} deliveries to claim, not {count}"
        )
        return
    before = _claims_and_successes(seed)
    for processes in WORKER_PROCESSES:
        paths = {
            side: str(work / f"workers{processes}{suffix}-{side}-{rep}.db")
            for side in ("engine", "raw")
        }
        for path in paths.values():
            shutil.copyfile(seed, path)
        runs: dict[str, workers.WorkersRun] = {}
        e, r = _pair(
            rep + processes,
            partial(_workers_span, runs, "engine", paths["engine"], processes, now),
            partial(_workers_span, runs, "raw", paths["raw"], processes, now),
        )
        label = f"{processes} worker process{'es' if processes > 1 else ''}"
        row = report.row(
            f"workers-{processes}{suffix}",
            f"claim → send → outcome, {label} on one file (100 per claim){where}",
            "deliveries/s",
            True,
        )
        row.engine.append(count / e)
        row.raw.append(count / r)
        for side, path in paths.items():
            claims, succeeded = (
                a - b for a, b in zip(_claims_and_successes(path), before, strict=True)
            )
            if runs[side].total != count or claims != count or succeeded != count:
                report.problems.append(
                    f"{label}{where} ({side}): {runs[side].total} recorded by "
                    f"{runs[side].done}, {claims} claims and {succeeded} succeeded of {count} "
                    "deliveries"
                )
        # One worker's rows come in a fixed order, several workers' do not; a big store's
        # rows are too many to compare one by one.
        report.compare(label + where, sizes, paths, values=processes == 1 and not stored)
        for path in paths.values():
            _remove(path)
        if stored:
            _growth(report, f"workers-{processes}", stored, f"{label}: /s")


def _stored_names(stored: int) -> tuple[str, str]:
    """(row key suffix, row name suffix) of a benchmark run on a store of ``stored`` runs;
    both empty for a new file (``stored`` 0)."""
    return (f"-{stored}", f", {_label(stored)} runs stored") if stored else ("", "")


def _claimable(path: str, now: datetime) -> int:
    """Deliveries a claim at ``now`` could take in the store at ``path`` (the claim's own
    test: pending and due, or dispatched with the lease run out and an attempt left)."""
    conn = sqlite3.connect(path)
    try:
        (found,) = conn.execute(
            "SELECT count(*) FROM deliveries WHERE (status = 'pending' AND "
            "coalesce(available_at, inserted_at) <= :now) OR (status = 'dispatched' AND "
            "lease_expires_at <= :now AND (max_attempts IS NULL OR attempt < max_attempts))",
            {"now": text(now)},
        ).fetchone()
    finally:
        conn.close()
    return int(found)


def _claims_and_successes(path: str) -> tuple[int, int]:
    """(claims recorded, deliveries succeeded) in the store at ``path``."""
    conn = sqlite3.connect(path)
    try:
        claims, succeeded = conn.execute(
            "SELECT (SELECT count(*) FROM delivery_events WHERE kind = 'claimed'), "
            "(SELECT count(*) FROM deliveries WHERE status = 'succeeded')"
        ).fetchone()
    finally:
        conn.close()
    return claims, succeeded


def _growth(
    report: Report,
    key: str,
    stored: int,
    what: str,
    *,
    higher: bool = True,
    target: str = "",
    check: Callable[[Row], bool] | None = None,
) -> None:
    """The row ``{key}-growth``: this repetition's figure at ``stored`` runs ÷ on a new
    file, both sides; nothing when either figure is missing (a benchmark left out)."""
    new, big = report.rows.get(key), report.rows.get(f"{key}-{stored}")
    if new is None or big is None or len(new.engine) != len(big.engine):
        return
    growth = report.row(
        f"{key}-growth",
        f"{what} at {_label(stored)} ÷ {what.split(': ')[-1]} on a new file",
        "x",
        higher,
        target=target,
        check=check,
        ratio_kind="none",
    )
    growth.engine.append(big.engine[-1] / new.engine[-1])
    growth.raw.append(big.raw[-1] / new.raw[-1])


def _workers_span(
    runs: dict[str, workers.WorkersRun], side: str, path: str, processes: int, now: datetime
) -> float:
    """Run the workers of one side, keep what they did in ``runs``; the span in seconds."""
    runs[side] = workers.run_workers(side, path, processes, now=now)
    return runs[side].seconds


def bench_signals(
    report: Report, sizes: Sizes, work: Path, seed: str, rep: int, stored: int = 0
) -> None:
    """route_signal resuming one run (latency), then all runs of a tenant (fan-out), on two
    copies of one store of waiting runs; the sides take turns signal by signal.
    ``stored``: the seed is the big store with the waiting runs added (the rows are then
    compared per table, not value for value)."""
    samples = sizes.signal_runs // 2
    suffix, where = _stored_names(stored)
    at = after(T0, 600)
    latencies: dict[str, list[float]] = {"engine": [], "raw": []}
    resumed: dict[str, list[int]] = {"engine": [], "raw": []}
    paths = {side: str(work / f"signals{suffix}-{side}-{rep}.db") for side in ("engine", "raw")}
    for path in paths.values():
        shutil.copyfile(seed, path)
    store, _ = engine_side.open_store(paths["engine"], at)
    raw_store = RawStore(paths["raw"])
    calls: dict[str, Callable[[str, str | None], int]] = {
        "engine": lambda tenant, actor: engine_side.route(store, tenant, actor),
        "raw": lambda tenant, actor: raw_store.route_signal(tenant, actor, at),
    }

    def timed(side: str, tenant: str, actor: str | None) -> float:
        started = time.perf_counter()
        resumed[side].append(calls[side](tenant, actor))
        return time.perf_counter() - started

    with store:
        for i in range(samples):
            actor = f"{SIGNAL_TENANT}-user-{i}"
            e, r = _pair(
                rep + i,
                partial(timed, "engine", SIGNAL_TENANT, actor),
                partial(timed, "raw", SIGNAL_TENANT, actor),
            )
            latencies["engine"].append(e)
            latencies["raw"].append(r)
        fanout = {"engine": 0.0, "raw": 0.0}
        for j, tenant in enumerate(FANOUT_TENANTS):
            e, r = _pair(
                rep + j, partial(timed, "engine", tenant, None), partial(timed, "raw", tenant, None)
            )
            fanout["engine"] += e
            fanout["raw"] += r
    raw_store.close()
    expected = [1] * samples + [sizes.fanout_runs] * len(FANOUT_TENANTS)
    if resumed["engine"] != expected or resumed["raw"] != expected:
        report.problems.append(f"route_signal{where}: a signal did not resume exactly its runs")
    for key, quantile, label in (("p50", 0.5, "p50"), ("p99", 0.99, "p99")):
        row = report.row(
            f"resume-{key}{suffix}",
            f"route_signal resuming 1 run ({_label(sizes.signal_runs)} of its tenant "
            f"waiting), {label}{where}",
            "ms",
            False,
            target="p50 < 1 ms" if key == "p50" else "",
            check=(lambda row: statistics.median(row.engine) < 1.0) if key == "p50" else None,
        )
        row.engine.append(_quantile(latencies["engine"], quantile) * 1000)
        row.raw.append(_quantile(latencies["raw"], quantile) * 1000)
    row = report.row(
        f"fanout{suffix}",
        f"route_signal resuming {_label(sizes.fanout_runs)} runs of one tenant{where}",
        "runs/s",
        True,
        target="≥ 0.5x raw",
        check=lambda row: statistics.median(row.ratios()) >= 0.5,
    )
    total = sizes.fanout_runs * len(FANOUT_TENANTS)
    row.engine.append(total / fanout["engine"])
    row.raw.append(total / fanout["raw"])
    report.compare("route_signal" + where, sizes, paths, values=not stored)
    for path in paths.values():
        _remove(path)
    if stored:
        _growth(report, "resume-p50", stored, "resuming 1 run, p50: ms", higher=False)
        _growth(report, "fanout", stored, "fan-out: runs/s")


SWEEPS = 3  # sweeps per side and store in one repetition; their median is kept


def bench_store_size(report: Report, sizes: Sizes, stores: dict[int, str], rep: int) -> None:
    """The due sweep over N due runs and explain, on a small and a big store."""
    for runs, path in stores.items():
        _warm(path)
        label = _label(runs)
        engine_ms, raw_ms = [], []
        for sweep in range(SWEEPS):
            tag = f"{SALT}-{rep}-{runs}-{sweep}"  # unique idempotency keys, also in --keep
            measured = _sweep_both(report, sizes, path, tag, rep + sweep, label)
            engine_ms.append(measured[0])
            raw_ms.append(measured[1])
        row = report.row(
            f"sweep-{runs}",
            f"progress_due_runs over {sizes.due_runs} due runs, {label} runs stored",
            "ms",
            False,
        )
        row.engine.append(statistics.median(engine_ms))
        row.raw.append(statistics.median(raw_ms))
        e_us, r_us = _explains(path, sizes.explains, rep)
        row = report.row(f"explain-{runs}", f"explain, {label} runs stored, p50", "µs", False)
        row.engine.append(e_us)
        row.raw.append(r_us)
    small, big = sorted(stores)
    for what, name in (("sweep", "due sweep"), ("explain", "explain")):
        growth = report.row(
            f"{what}-growth",
            f"{name}: cost at {_label(big)} ÷ cost at {_label(small)} runs stored",
            "x",
            False,
            target="≤ 1.2x",  # issue 16: explain and sweep stay flat
            check=lambda row: statistics.median(row.engine) <= 1.2,
            ratio_kind="none",
        )
        growth.engine.append(
            report.rows[f"{what}-{big}"].engine[-1] / report.rows[f"{what}-{small}"].engine[-1]
        )
        growth.raw.append(
            report.rows[f"{what}-{big}"].raw[-1] / report.rows[f"{what}-{small}"].raw[-1]
        )


def _due_batch(path: str, count: int, tag: str) -> None:
    """``count`` runs made by the engine that are due at T0 (waiting since T0 - 2 h - 1 min);
    both sides sweep runs made this way."""
    store, clock = engine_side.open_store(path, T0)
    with store:
        engine_side.waiting_batch(store, clock, count, tag, T0 - timedelta(seconds=7200 + 60))


def _sweep_both(
    report: Report, sizes: Sizes, path: str, tag: str, turn: int, label: str
) -> tuple[float, float]:
    """One due sweep of a fresh batch per side (ms each), checking both moved and wrote the
    same rows."""
    counted: dict[str, dict[str, int]] = {}
    moved: dict[str, int] = {}

    def engine() -> float:
        _due_batch(path, sizes.due_runs, f"e{tag}")
        store, _ = engine_side.open_store(path, T0)
        with store:
            before = count_rows(path)
            started = time.perf_counter()
            moved["engine"] = len(store.progress_due_runs(now=T0))
            elapsed = time.perf_counter() - started
        counted["engine"] = _delta(before, count_rows(path))
        return elapsed

    def raw() -> float:
        _due_batch(path, sizes.due_runs, f"r{tag}")
        raw_store = RawStore(path)
        before = count_rows(path)
        started = time.perf_counter()
        moved["raw"] = raw_store.sweep(T0)
        elapsed = time.perf_counter() - started
        raw_store.close()
        counted["raw"] = _delta(before, count_rows(path))
        return elapsed

    e, r = _pair(turn, engine, raw)
    if moved != {"engine": sizes.due_runs, "raw": sizes.due_runs}:
        report.problems.append(f"due sweep at {label}: runs moved {moved}")
    report.same_rows(f"due sweep at {label}", counted["engine"], counted["raw"])
    return e * 1000, r * 1000


def _warm(path: str) -> None:
    """Read the file once so that both sizes are measured with the OS page cache warm (a
    store built an hour ago and partly evicted would otherwise pay disk reads)."""
    with open(path, "rb") as data:
        while data.read(1 << 24):
            pass


def _explains(path: str, count: int, rep: int) -> tuple[float, float]:
    """p50 latency (µs) of explain on ``count`` random runs, both sides interleaved."""
    runs = _sample_runs(path, count, rep)
    store, _ = engine_side.open_store(path, T0)
    raw_store = RawStore(path)
    engine_times, raw_times = [], []
    with store:
        for i, (run_id, tenant_id) in enumerate(runs):
            sides = [("engine", store.explain), ("raw", raw_store.explain)]
            for side, call in sides if i % 2 else reversed(sides):
                started = time.perf_counter()
                call(tenant_id, run_id)
                elapsed = time.perf_counter() - started
                (engine_times if side == "engine" else raw_times).append(elapsed)
    raw_store.close()
    return statistics.median(engine_times) * 1e6, statistics.median(raw_times) * 1e6


def _sample_runs(path: str, count: int, seed: int) -> list[tuple[str, str]]:
    """(run id, tenant id) of ``count`` runs picked at random (by rowid, without a scan)."""
    conn = sqlite3.connect(path)
    total = conn.execute("SELECT max(rowid) FROM workflow_runs").fetchone()[0]
    picks = random.Random(seed).sample(range(1, total + 1), min(count, total))
    runs = conn.execute(
        f"SELECT id, tenant_id FROM workflow_runs WHERE rowid IN ({','.join('?' * len(picks))})",
        picks,
    ).fetchall()
    conn.close()
    random.Random(seed).shuffle(runs)
    return runs


def bench_rss(report: Report, sizes: Sizes, path: str, runs: int, rep: int) -> None:
    """Peak RSS of a process that opens the big store, sweeps and explains."""
    label = _label(runs)
    for side in ("engine", "raw", "baseline"):
        if side != "baseline":
            _due_batch(path, sizes.due_runs, f"m{side}{SALT}-{rep}")
        output = subprocess.run(
            [
                sys.executable,
                str(HERE / "run.py"),
                "--rss-child",
                side,
                path,
                "--explains",
                str(sizes.explains),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        if side != "baseline" and result["moved"] != sizes.due_runs:
            report.problems.append(f"rss child {side}: moved {result['moved']} runs")
        mb = result["maxrss_kb"] / 1024
        if side == "baseline":
            report.row(
                "rss-base",
                "peak RSS of the interpreter with chimeway_lite imported (reference)",
                "MB",
                False,
                ratio_kind="none",
            ).engine.append(mb)
        else:
            row = report.row(
                "rss",
                f"peak RSS, process opening the {label} store: sweep + {sizes.explains} explains",
                "MB",
                False,
                target="≤ 150 MB",
                check=lambda row: statistics.median(row.engine) <= 150,
            )
            (row.engine if side == "engine" else row.raw).append(mb)


def rss_child(side: str, path: str, explains: int) -> None:
    """Run in a child process: sweep + explains, then print ru_maxrss as JSON."""
    moved = 0
    if side != "baseline":
        runs = _sample_runs(path, explains, 1)
        if side == "engine":
            store, _ = engine_side.open_store(path, T0)
            with store:
                moved = len(store.progress_due_runs(now=T0))
                for run_id, tenant_id in runs:
                    store.explain(tenant_id, run_id)
        else:
            raw_store = RawStore(path)
            moved = raw_store.sweep(T0)
            for run_id, tenant_id in runs:
                raw_store.explain(tenant_id, run_id)
            raw_store.close()
    print(json.dumps({"maxrss_kb": peak_rss_kb(), "moved": moved}))


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB.

    Linux's ``ru_maxrss`` survives ``execve``: a child started by a big parent reports the
    parent's peak. ``VmHWM`` in /proc/self/status belongs to the new image only, so it is
    read first; ``ru_maxrss`` is the fallback elsewhere.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- the peer ----------------------------------------------------------------------------------


def peer_python(given: str | None) -> str | None:
    """The interpreter that has ``dbos``: --peer-python, $CHIMEWAY_BENCH_PEER_PYTHON, or this
    one if it can import dbos; None when there is none."""
    chosen = given or os.environ.get("CHIMEWAY_BENCH_PEER_PYTHON")
    if chosen:
        return chosen
    found = (
        subprocess.run(
            [sys.executable, "-c", "import dbos"], capture_output=True, check=False
        ).returncode
        == 0
    )
    return sys.executable if found else None


def bench_peer(report: Report, sizes: Sizes, work: Path, python: str) -> None:
    """DBOS Transact on SQLite, in its own interpreter: starts/s and signal latency."""
    output = subprocess.run(
        [
            python,
            str(HERE / "peer_dbos.py"),
            "--dir",
            str(work),
            "--runs",
            str(sizes.runs),
            "--starts",
            str(sizes.peer_starts),
            "--signals",
            str(sizes.peer_signals),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    report.peer = json.loads(output.strip().splitlines()[-1])


# -- running -----------------------------------------------------------------------------------


def _pair(rep: int, engine: Callable[[], float], raw: Callable[[], float]) -> tuple[float, float]:
    # Alternate which side goes first so that drift (page cache, WAL size) favours neither.
    if rep % 2:
        r = raw()
        e = engine()
    else:
        e = engine()
        r = raw()
    return e, r


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm", "-lock"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def _signal_groups(sizes: Sizes) -> dict[str, int]:
    """The signals' tenants and how many of their runs wait."""
    return {SIGNAL_TENANT: sizes.signal_runs, "tenant-other": sizes.other_waiting} | dict.fromkeys(
        FANOUT_TENANTS, sizes.fanout_runs
    )


def _store(work: Path, keep: Path | None, runs: int) -> str:
    """A store of ``runs`` runs for the size benchmarks; reused from --keep when built."""
    schema = (HERE.parent / "schema.sql").read_bytes()
    marker = f"{runs}-{hashlib.sha256(schema).hexdigest()}"
    folder = keep or work
    path = str(folder / f"store-{runs}.db")
    stamp = Path(path + ".built")
    if keep is not None and stamp.exists() and stamp.read_text() == marker:
        return path
    _remove(path)
    started = time.perf_counter()
    bulk.build(path, runs)
    stamp.write_text(marker)
    print(
        f"  built a store of {runs:,} runs in {time.perf_counter() - started:.1f} s "
        f"({os.path.getsize(path) / 1e6:,.0f} MB)",
        file=sys.stderr,
    )
    return path


BENCHMARKS = (
    "trigger",
    "journeys",
    "batches",
    "retries",
    "workers",
    "signals",
    "size",
    "rss",
    "scale",
)


def run(
    sizes: Sizes, work: Path, keep: Path | None, peer: str | None, only: tuple[str, ...]
) -> Report:
    """The benchmarks named in ``only``, ``sizes.runs`` times."""
    report = Report()
    seed = str(work / "signals-seed.db")
    if "signals" in only:
        bulk.build_waiting(seed, _signal_groups(sizes))
        checkpoint(seed)
        if sizes.verify:
            report.verified("the signals' store (bulk.build_waiting)", seed)
    pending = str(work / "workers-seed.db")
    if "workers" in only:
        bulk.build_pending(pending, sizes.worker_deliveries)
        if sizes.verify:
            report.verified("the workers' store (bulk.build_pending)", pending)
    stores = {}
    if "size" in only or "rss" in only or "scale" in only:
        stores = {n: _store(work, keep, n) for n in (sizes.small_store, sizes.big_store)}
        if sizes.verify:
            report.verified(
                f"the {_label(sizes.small_store)} store (bulk.build)", stores[sizes.small_store]
            )
    scale = {}
    if "scale" in only:
        # one copy per side of the big store, grown a little by every repetition
        for side in ("engine", "raw"):
            scale[side] = str(work / f"scale-{side}.db")
            shutil.copyfile(stores[sizes.big_store], scale[side])
        # the workers' and the signals' seeds again, added to a copy of the big store: its
        # own tenants have no delivery to claim when the workers run (hours before T0,
        # when a --keep store's due sweeps left none either), and none of them is signalled
        pending_big = str(work / "workers-seed-big.db")
        shutil.copyfile(stores[sizes.big_store], pending_big)
        bulk.build_pending(
            pending_big,
            sizes.worker_deliveries,
            tenant_prefix="tenant-pending-",
            at=BIG_WORKERS_AT,
        )
        waiting_big = str(work / "signals-seed-big.db")
        shutil.copyfile(stores[sizes.big_store], waiting_big)
        bulk.build_waiting(waiting_big, _signal_groups(sizes))
        checkpoint(waiting_big)
        if sizes.verify:
            report.verified("the big workers' store", pending_big)
            report.verified("the big signals' store", waiting_big)
    for rep in range(sizes.runs):
        print(f"  repetition {rep + 1}/{sizes.runs}", file=sys.stderr)
        files = work / f"repetition-{rep}"  # this repetition's new files, removed after it
        files.mkdir()
        if "trigger" in only:
            bench_trigger(report, sizes, files, rep)
        if "journeys" in only:
            bench_journeys(report, sizes, files, rep)
        if "batches" in only:
            bench_batches(report, sizes, files, rep)
            bench_trigger_batches(report, sizes, files, rep)
        if "retries" in only:
            bench_retries(report, sizes, files, rep)
        if "workers" in only:
            bench_workers(report, sizes, files, pending, rep)
        if "signals" in only:
            bench_signals(report, sizes, files, seed, rep)
        if "size" in only:
            bench_store_size(report, sizes, stores, rep)
        if "rss" in only:
            bench_rss(report, sizes, stores[sizes.big_store], sizes.big_store, rep)
        if "scale" in only:
            bench_scale(report, sizes, scale, stores[sizes.big_store], rep)
            bench_workers(
                report,
                sizes,
                files,
                pending_big,
                rep,
                stored=sizes.big_store,
                now=after(BIG_WORKERS_AT, 60),
            )
            bench_signals(report, sizes, files, waiting_big, rep, stored=sizes.big_store)
        shutil.rmtree(files)
    if peer is not None:
        print("  peer: DBOS", file=sys.stderr)
        bench_peer(report, sizes, work, peer)
    return report


def _figure(values: list[float]) -> str:
    if not values:
        return "—"
    mid = statistics.median(values)
    if len(values) == 1:
        return _number(mid)
    return f"{_number(mid)} ({_number(min(values))}-{_number(max(values))})"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _order(key: str) -> tuple[int, str]:
    prefixes = (
        "trigger",
        "resume",
        "fanout",
        "journeys",
        "retries",
        "workers",
        "sweep",
        "explain",
        "rss",
        "verify",
        "prune",
    )
    first = next(i for i, p in enumerate(prefixes) if key.startswith(p))
    return first, key.replace("growth", "~")


def table(report: Report) -> str:
    """The Markdown table of the report."""
    lines = [
        "| operation | unit | chimeway_lite | raw sqlite3 | speed vs raw | target | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for key in sorted(report.rows, key=_order):
        row = report.rows[key]
        ratio = _figure(row.ratios()) if row.ratio_kind == "speed" and row.raw else "—"
        met = ""
        if row.check is not None:
            met = "yes" if row.check(row) else "**no**"
        lines.append(
            f"| {row.name} | {row.unit} | {_figure(row.engine)} | {_figure(row.raw)} | "
            f"{ratio} | {row.target} | {met} |"
        )
    return "\n".join(lines)


def peer_table(report: Report) -> str:
    """The Markdown table comparing chimeway_lite with DBOS."""
    peer = report.peer
    if not peer:
        return "DBOS: not measured (no interpreter with `dbos`; see benchmarks/README.md)."
    if "trigger" not in report.rows or "resume-p50" not in report.rows:
        return "DBOS: measured, but compared only when trigger and signals run too."
    trigger = report.rows["trigger"].engine
    p50 = report.rows["resume-p50"].engine
    lines = [
        f"| operation | unit | chimeway_lite | DBOS {peer['version']}, SQLite defaults | "
        "DBOS, WAL + synchronous NORMAL | chimeway_lite vs DBOS (defaults / WAL) |",
        "|---|---|---:|---:|---:|---|",
    ]
    starts = peer["starts_per_s_default"], peer["starts_per_s_wal"]
    resume = peer["resume_ms_default"], peer["resume_ms_wal"]
    lines.append(
        f"| trigger vs one-step workflow start | /s | {_figure(trigger)} | "
        f"{_figure(starts[0])} | {_figure(starts[1])} | "
        + " / ".join(f"{statistics.median(trigger) / statistics.median(s):,.1f}x" for s in starts)
        + " the starts |"
    )
    lines.append(
        f"| signal -> waiting run resumed, p50 | ms | {_figure(p50)} | {_figure(resume[0])} | "
        f"{_figure(resume[1])} | "
        + " / ".join(f"{statistics.median(r) / statistics.median(p50):,.0f}x" for r in resume)
        + " faster |"
    )
    if "trigger-batch" in report.rows:
        batched = report.rows["trigger-batch"].engine
        lines.append(
            f"| trigger_many (batches of {BATCH}) vs one-step workflow start | /s | "
            f"{_figure(batched)} | {_figure(starts[0])} | {_figure(starts[1])} | "
            + " / ".join(
                f"{statistics.median(batched) / statistics.median(s):,.1f}x" for s in starts
            )
            + " the starts |"
        )
    return "\n".join(lines)


def machine() -> str:
    """The machine the run was on."""
    cpu = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )


def filesystem(work: Path) -> str:
    """The file system type of the benchmark directory (``df -T``)."""
    try:
        out = subprocess.run(
            ["df", "-T", str(work)], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        return out[-1].split()[1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the benchmarks (or one RSS child)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="10 K vs 100 K stores, fewer rows")
    mode.add_argument("--smoke", action="store_true", help="a few hundred rows, one run")
    parser.add_argument("--runs", type=int, help="repetitions (default 3; smoke 1)")
    parser.add_argument("--dir", type=Path, help="where the files go (default: a temp dir)")
    parser.add_argument("--keep", type=Path, help="build the big stores here and reuse them")
    parser.add_argument("--peer-python", help="an interpreter with dbos installed")
    parser.add_argument("--no-peer", action="store_true", help="skip DBOS even if installed")
    parser.add_argument("--peer-json", type=Path, help=argparse.SUPPRESS)  # tests: canned peer
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of {','.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument("--rss-child", nargs=2, metavar=("SIDE", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--explains", type=int, default=200, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child[0], args.rss_child[1], args.explains)
        return 0
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    sizes = SIZES[name]
    if args.runs is not None:
        sizes = Sizes(**{**sizes.__dict__, "runs": max(1, args.runs)})
    peer = None if args.no_peer or args.smoke else peer_python(args.peer_python)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="chimeway-bench-", dir=args.dir))
    try:
        print(f"chimeway_lite benchmarks ({name}, {sizes.runs} runs) in {work}", file=sys.stderr)
        only = tuple(args.only.split(","))
        unknown = set(only) - set(BENCHMARKS)
        if unknown:
            parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
        report = run(sizes, work, args.keep, peer, only)
        if args.peer_json is not None:
            report.peer = json.loads(args.peer_json.read_text())
        fs = filesystem(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Machine: {machine()}, file system {fs}.")
    print(f"Mode: {name}; medians of {sizes.runs} runs (min-max).\n")
    print(table(report))
    print()
    print(peer_table(report))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "mode": name,
                    "machine": machine(),
                    "rows": {
                        k: {
                            "name": r.name,
                            "unit": r.unit,
                            "chimeway_lite": r.engine,
                            "raw_sqlite3": r.raw,
                        }
                        for k, r in report.rows.items()
                    },
                    "peer": report.peer,
                    "problems": report.problems,
                },
                indent=2,
            )
        )
    for problem in report.problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
