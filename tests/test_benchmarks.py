"""benchmarks/run.py must keep working: its smoke mode runs every benchmark on a few hundred
rows and fails when chimeway_lite and raw sqlite3 did not write the same rows (per table, and
value for value where the order is fixed), or when Store.verify() finds fault with a store
either side wrote or bulk.py built. No timing is asserted here: the figures come from the
benchmark itself (benchmarks/README.md)."""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

# rows of chimeway_lite alone (no raw sqlite3 side)
ENGINE_ONLY = {
    "rss-base",
    "verify-600",
    "verify-quick-600",
    "verify-workers-600",
    "verify-quick-workers-600",
    "prune-600",
    "prune-wal-600",
}
ROWS = {
    "trigger",
    "resume-p50",
    "resume-p99",
    "fanout",
    "journeys",
    "retries",
    "workers-1",
    "workers-2",
    "workers-4",
    "sweep-200",
    "sweep-600",
    "sweep-growth",
    "explain-200",
    "explain-600",
    "explain-growth",
    "rss",
    "journeys-batch",
    "trigger-batch",
    "trigger-600",
    "journeys-600",
    "journeys-batch-600",
    "trigger-growth",
    "journeys-growth",
    "journeys-batch-growth",
    "retries-600",
    "retries-growth",
    "workers-1-600",
    "workers-2-600",
    "workers-4-600",
    "workers-1-growth",
    "workers-2-growth",
    "workers-4-growth",
    "resume-p50-600",
    "resume-p99-600",
    "resume-p50-growth",
    "fanout-600",
    "fanout-growth",
    *ENGINE_ONLY,
}


@contextmanager
def _benchmark_module(name: str) -> Iterator[ModuleType]:
    """benchmarks/``name``.py imported as a module (it imports its siblings by name); the
    benchmark modules leave sys.modules again afterwards."""
    before = set(sys.modules)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
        for imported in set(sys.modules) - before:
            module = sys.modules[imported]
            if str(getattr(module, "__file__", "")).startswith(str(BENCHMARKS)):
                del sys.modules[imported]


@pytest.fixture
def run_module() -> Iterator[ModuleType]:
    """benchmarks/run.py imported as a module."""
    with _benchmark_module("run") as module:
        yield module


@pytest.mark.slow
def test_smoke_run_measures_every_benchmark_and_both_sides_write_the_same_rows(
    tmp_path: Path,
) -> None:
    peer = tmp_path / "peer.json"
    peer.write_text(
        json.dumps(
            {
                "version": "0.0-canned",
                "starts_per_s_default": [20.0],
                "resume_ms_default": [900.0],
                "starts_per_s_wal": [200.0],
                "resume_ms_wal": [950.0],
            }
        )
    )
    measured = tmp_path / "measured.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "run.py"),
            "--smoke",
            "--dir",
            str(tmp_path),
            "--json",
            str(measured),
            "--peer-json",
            str(peer),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(measured.read_text())
    assert report["problems"] == []
    assert set(report["rows"]) == ROWS
    for key, row in report["rows"].items():
        assert row["chimeway_lite"] and all(v > 0 for v in row["chimeway_lite"]), key
        if key not in ENGINE_ONLY:
            assert row["raw_sqlite3"] and all(v > 0 for v in row["raw_sqlite3"]), key
    table = done.stdout
    assert "| trigger (notification + run + 2 transitions + delivery) | /s |" in table
    assert "| trigger vs one-step workflow start | /s |" in table  # the peer table
    assert "DBOS 0.0-canned" in table
    # explain and the due sweep are held to issue 16's "stay flat (at most 1.2x)"
    for name in ("due sweep: cost at", "explain: cost at"):
        (line,) = [line for line in table.splitlines() if line.startswith(f"| {name}")]
        assert "| ≤ 1.2x |" in line, line
    # The smoke run leaves nothing behind but what the test asked for.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["measured.json", "peer.json"]


def test_a_row_count_difference_is_a_problem(run_module: ModuleType) -> None:
    report = run_module.Report()
    report.same_rows("trigger", {"deliveries": 3}, {"deliveries": 3})
    assert report.problems == []
    report.same_rows("trigger", {"deliveries": 3}, {"deliveries": 2})
    assert report.problems == [
        "trigger: chimeway_lite wrote {'deliveries': 3}, raw sqlite3 {'deliveries': 2}"
    ]


def test_ratios_are_speed_relative_to_raw(run_module: ModuleType) -> None:
    throughput = run_module.Row("t", "/s", True, engine=[50.0, 30.0], raw=[100.0, 100.0])
    latency = run_module.Row("l", "ms", False, engine=[2.0], raw=[1.0])
    assert throughput.ratios() == [0.5, 0.3]
    assert latency.ratios() == [0.5]  # twice raw's time is half its speed


def test_a_value_difference_is_a_problem_and_ids_compare_by_version_and_order(
    run_module: ModuleType, tmp_path: Path
) -> None:
    shapes = sys.modules["shapes"]
    paths = []
    for name, ids in (("a", ("0", "1")), ("b", ("2", "3")), ("c", ("4", "4"))):
        path = str(tmp_path / f"{name}.db")
        conn = sqlite3.connect(path)
        for table in shapes.TABLES:
            conn.execute(f"CREATE TABLE {table} (id TEXT, context TEXT)")
        first, second = (f"01a2340a-d5cc-7000-ad8e-1be6c041f6b{i}" for i in ids)
        conn.execute(
            "INSERT INTO deliveries VALUES (?, ?), (?, ?)",
            (first, "{}", second, f'{{"anchor_delivery_id":"{first}"}}'),
        )
        conn.commit()
        conn.close()
        paths.append(path)
    report = run_module.Report()
    report.same_values("same shape, other ids", paths[0], paths[1])
    assert report.problems == []
    report.same_values("one id where there were two", paths[0], paths[2])
    assert len(report.problems) == 1
    assert report.problems[0].startswith(
        "one id where there were two: the two sides wrote different rows: deliveries row 2:"
    )
    dump = shapes.table_dump(paths[0])
    assert dump["deliveries"] == [("<v7:0>", "{}"), ("<v7:1>", '{"anchor_delivery_id":"<v7:0>"}')]


def test_a_growth_row_divides_the_big_stores_figure_by_the_new_files(
    run_module: ModuleType,
) -> None:
    report = run_module.Report()
    run_module._growth(report, "workers-1", 600, "1 worker: /s")
    assert report.rows == {}  # neither figure measured: no row
    report.row("workers-1", "new", "/s", True, engine=[800.0], raw=[1600.0])
    run_module._growth(report, "workers-1", 600, "1 worker: /s")
    assert "workers-1-growth" not in report.rows  # the big store's figure is missing
    report.row("workers-1-600", "big", "/s", True, engine=[600.0], raw=[1400.0])
    run_module._growth(report, "workers-1", 600, "1 worker: /s")
    growth = report.rows["workers-1-growth"]
    assert (growth.engine, growth.raw) == ([0.75], [0.875])
    assert growth.name == "1 worker: /s at 600 ÷ /s on a new file"


def test_pending_and_waiting_runs_added_to_a_built_store_are_the_only_work_in_it(
    tmp_path: Path,
) -> None:
    with _benchmark_module("bulk") as bulk:
        shapes = sys.modules["shapes"]
        built = str(tmp_path / "built.db")
        bulk.build(built, 300)
        before = shapes.count_rows(built)
        pending = str(tmp_path / "pending.db")
        waiting = str(tmp_path / "waiting.db")
        for path in (pending, waiting):
            shapes.checkpoint(built)
            Path(path).write_bytes(Path(built).read_bytes())
        planned = shapes.T0 - timedelta(hours=6)
        bulk.build_pending(pending, 40, tenant_prefix="tenant-pending-", at=planned)
        bulk.build_waiting(waiting, {"tenant-signal": 25, "tenant-fanout": 15})
        # build_pending counts its template run in, build_waiting adds it to the groups
        for path, added in ((pending, 40), (waiting, 41)):
            rows = shapes.count_rows(path)
            assert rows["workflow_runs"] - before["workflow_runs"] == added
            assert rows["notifications"] - before["notifications"] == added
            store = sys.modules["chimeway_lite"].Store(path)
            try:
                assert store.verify() == []
            finally:
                store.close()
        conn = sqlite3.connect(pending)
        # every delivery a worker could claim, now or later, is one of the added runs'
        claimable = conn.execute(
            "SELECT tenant_id FROM deliveries WHERE status IN ('pending', 'dispatched')"
        ).fetchall()
        assert conn.execute(
            "SELECT DISTINCT inserted_at FROM deliveries WHERE status = 'pending'"
        ).fetchall() == [(shapes.text(planned),)]
        conn.close()
        assert len(claimable) == 40
        assert all(t.startswith("tenant-pending-") or t.startswith("tpl-") for (t,) in claimable)
        conn = sqlite3.connect(waiting)
        resumable = dict(
            conn.execute(
                "SELECT tenant_id, count(*) FROM workflow_runs WHERE state = 'waiting' "
                "AND tenant_id IN ('tenant-signal', 'tenant-fanout') GROUP BY tenant_id"
            ).fetchall()
        )
        conn.close()
        assert resumable == {"tenant-signal": 25, "tenant-fanout": 15}


def test_workers_refuse_a_seed_that_holds_other_work_than_theirs(
    run_module: ModuleType, tmp_path: Path
) -> None:
    bulk, shapes = sys.modules["bulk"], sys.modules["shapes"]
    seed = str(tmp_path / "seed.db")
    planned = shapes.T0 - timedelta(hours=6)
    bulk.build_pending(seed, 20, at=planned)
    assert run_module._claimable(seed, shapes.after(planned, -1)) == 0  # not due yet
    assert run_module._claimable(seed, shapes.after(planned, 60)) == 20
    sizes = run_module.SIZES["smoke"]
    report = run_module.Report()
    run_module.bench_workers(report, sizes, tmp_path, seed, 0, now=shapes.after(planned, 60))
    assert report.problems == [
        f"workers: the seed holds 20 deliveries to claim, not {sizes.worker_deliveries}"
    ]
    assert report.rows == {}  # nothing was measured


@pytest.fixture
def indexes_module() -> Iterator[ModuleType]:
    """benchmarks/indexes.py imported as a module."""
    with _benchmark_module("indexes") as module:
        yield module


def _store_file(tmp_path: Path) -> sqlite3.Connection:
    from chimeway_lite import Store

    Store(tmp_path / "plans.db").close()
    return sqlite3.connect(tmp_path / "plans.db")


def test_every_index_of_the_schema_serves_a_named_query_whose_plan_uses_it(
    indexes_module: ModuleType, tmp_path: Path
) -> None:
    conn = _store_file(tmp_path)
    assert indexes_module.check(conn) == []
    # every index the schema makes (CREATE INDEX and UNIQUE) is named, primary keys aside
    assert set(indexes_module.schema_indexes(conn)) == {u.index for u in indexes_module.USES}
    conn.close()


def test_an_index_no_query_reads_is_a_problem(indexes_module: ModuleType, tmp_path: Path) -> None:
    conn = _store_file(tmp_path)
    conn.execute("CREATE INDEX deliveries_by_channel ON deliveries (channel)")
    assert indexes_module.check(conn) == ["deliveries_by_channel: no query named for it"]
    conn.execute("DROP INDEX workflow_runs_finished")
    assert indexes_module.check(conn) == [
        "deliveries_by_channel: no query named for it",
        "workflow_runs_finished: not in the schema",
    ]
    conn.close()


def test_a_query_whose_plan_skips_its_index_is_a_problem(
    indexes_module: ModuleType, tmp_path: Path
) -> None:
    conn = _store_file(tmp_path)
    # an index the planner prefers for the prune's query: the named index goes unused
    conn.execute("DROP INDEX workflow_runs_finished")
    conn.execute(
        "CREATE INDEX workflow_runs_finished ON workflow_runs (last_transition_at, id) "
        "WHERE state = 'completed'"
    )
    assert indexes_module.check(conn) == [
        "workflow_runs_finished: the plan of upkeep._FINISHED_BEFORE does not use it"
    ]
    conn.close()


def test_the_index_listing_prints_and_exits_clean(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "indexes.py"), "--markdown"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "| `workflow_runs_finished` |" in done.stdout
    assert "not used" not in done.stdout


def test_the_lever_script_builds_a_store_and_measures_one_variant(tmp_path: Path) -> None:
    root = str(BENCHMARKS.parent)
    script = str(BENCHMARKS / "ab.py")
    built = subprocess.run(
        [sys.executable, script, root, "build", str(tmp_path), "200"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    measured = subprocess.run(
        [sys.executable, script, root, "run", str(tmp_path), "40"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "CHIMEWAY_AB_PRAGMAS": "wal_autocheckpoint=1000"},
    )
    assert measured.returncode == 0, measured.stderr
    figures = json.loads(measured.stdout)
    assert set(figures) == {"trigger", "journeys"}
    assert all(v > 0 for v in figures.values())


def test_the_lever_script_measures_every_write_path_on_both_sides_and_counts_statements(
    tmp_path: Path,
) -> None:
    root = str(BENCHMARKS.parent)
    script = str(BENCHMARKS / "ab.py")
    built = subprocess.run(
        [sys.executable, script, root, "build", str(tmp_path), "200"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    for side in ("all", "raw"):
        measured = subprocess.run(
            [sys.executable, script, root, "run", str(tmp_path), "40", side],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert measured.returncode == 0, measured.stderr
        figures = json.loads(measured.stdout)
        assert set(figures) == {"trigger", "outcome", "journeys", "batches"}, side
        assert all(v > 0 for v in figures.values()), side
    counted = subprocess.run(
        [sys.executable, script, root, "count"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert counted.returncode == 0, counted.stderr
    statements = json.loads(counted.stdout)
    # BEGIN, notification (no idempotency read first: the declaration is known), the
    # definition's key, run, sequence, the two trace rows in one statement, delivery, COMMIT.
    assert statements["trigger"] == 8
    assert statements["record_outcome"] > statements["trigger"]
    assert statements["journey in batches of 100"] < statements["journey"]


def test_the_scale_script_measures_explain_fan_out_and_verify_on_two_sizes() -> None:
    done = _script("scale.py", "--smoke")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    names = [row.split(" | ")[0].lstrip("| ") for row in rows]
    assert names == [
        "operation",
        "explain p50, chimeway_lite",
        "explain p50, raw sqlite3",
        "route_signal resuming 20 runs, chimeway_lite",
        "route_signal resuming 20 runs, raw sqlite3",
        "verify",
        "verify(quick=True)",
        "verify(quick=True, workers=2)",
        "verify()",
        "verify(workers=2)",
    ]
    for row in rows[1:5]:
        small, big, ratio = (cell.strip() for cell in row.split("|")[3:6])
        assert float(small.replace(",", "")) > 0 and float(big.replace(",", "")) > 0
        assert ratio.startswith("**")


def test_the_lock_scope_study_runs_every_side_with_real_writers_and_counts_their_rows() -> None:
    done = _script(
        "lock_scope.py", "--processes", "2", "--writes", "30", "--python", "10", "--repeat", "1"
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| writers | raw sqlite3 (/s) | raw + gate (/s)")
    assert len(rows) == 2 and rows[1].startswith("| 2 | ")
    cells = [cell.strip() for cell in rows[1].split("|")[2:-1]]
    assert len(cells) == 6  # five sides and the ratio
    for cell in cells[:5]:
        assert float(cell.split(" ")[0].replace(",", "")) > 0
    assert float(cells[5]) > 0


def test_the_page_layout_study_measures_both_sides_and_each_layout_is_what_it_says(
    tmp_path: Path,
) -> None:
    done = _script("page_layout.py", "--smoke")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| layout | side | triggers/s | journeys/s | WAL KiB per trigger")
    cells = [[cell.strip() for cell in row.split("|")[1:-1]] for row in rows[1:]]
    assert [(c[0], c[1]) for c in cells] == [
        ("1024 B pages", "raw sqlite3"),
        ("1024 B pages", "chimeway_lite"),
        ("4096 B pages", "raw sqlite3"),
        ("4096 B pages", "chimeway_lite"),
        ("4096 B pages, WITHOUT ROWID", "raw sqlite3"),
    ]
    for c in cells:
        assert float(c[2].split(" ")[0].replace(",", "")) > 0
        assert float(c[3].split(" ")[0].replace(",", "")) > 0
        assert (c[4] != "") is (c[1] == "raw sqlite3")
    # a commit appends whole pages: a quarter of the page size writes fewer bytes
    assert float(cells[0][4]) < float(cells[2][4])
    with _benchmark_module("page_layout") as layout:
        conn = sqlite3.connect(tmp_path / "variant.db")
        for statement in layout.without_rowid():
            conn.execute(statement)
        for table in layout.UUID_TABLES:
            with pytest.raises(sqlite3.OperationalError, match="rowid"):
                conn.execute(f"SELECT rowid FROM {table}")
        conn.execute("SELECT rowid FROM workflow_transitions")
        conn.close()


def test_the_payload_study_measures_each_size_on_both_sides() -> None:
    rows = _table(
        "payloads.py",
        "--triggers",
        "20",
        "--rounds",
        "1",
        header="| data as JSON | chimeway_lite triggers/s | raw sqlite3",
    )
    sizes = [int(row.split("|")[1].strip().removesuffix(" B").replace(",", "")) for row in rows[1:]]
    assert sizes[0] < 10 and 900 < sizes[1] < 1100 and 29_000 < sizes[3] < 31_000
    for row in rows[1:]:
        cells = [cell.strip() for cell in row.split("|")[2:-1]]
        assert all(float(cell.split(" ")[0].replace(",", "")) > 0 for cell in cells)


def test_the_time_split_times_sql_and_python_of_each_workload_on_both_sides() -> None:
    done = _script("time_split.py", "-n", "40", "--rounds", "1")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| workload | side | total | SQL | Python | statements |")
    seen = set()
    for row in rows[1:]:
        workload, side, total, sql, python, statements, allowed = (
            cell.strip() for cell in row.split("|")[1:-1]
        )
        seen.add((workload, side))
        total_us, sql_us, python_us = (float(v.replace(",", "")) for v in (total, sql, python))
        assert 0 < sql_us < total_us and python_us > 0
        assert abs(total_us - sql_us - python_us) <= 1.5  # each rounded on its own
        assert float(statements) >= 6  # a trigger is a transaction of several statements
        assert (allowed != "") == (side == "chimeway_lite")
    workloads = ("trigger", "journeys", "batches")
    assert seen == {(w, s) for w in workloads for s in ("chimeway_lite", "raw")}


def test_the_time_split_replays_the_engines_statements_and_writes_the_same_rows(
    tmp_path: Path,
) -> None:
    done = _script("time_split.py", "-n", "40", "--rounds", "1", "--replay", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")]
    table = {(r[0].strip(), r[1].strip()): [c.strip() for c in r[2:]] for r in rows[1:]}
    (work,) = tmp_path.iterdir()
    for workload in ("trigger", "journeys", "batches"):
        engine, replay = table[(workload, "chimeway_lite")], table[(workload, "replay")]
        assert replay[3] == engine[3]  # the same statements, every one of them
        assert float(replay[1].replace(",", "")) > 0
        assert _rows(work / f"{workload}-replay-0.db") == _rows(
            work / f"{workload}-chimeway_lite-0.db"
        )


def _rows(path: Path) -> list[str]:
    """Every row of the file, as SQL text."""
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the benchmark script ``name`` with ``args`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _table(name: str, *args: str, header: str) -> list[str]:
    """The Markdown table rows (header first, no separator) the benchmark script ``name``
    prints when run with ``args``; it must exit 0 and its table start with ``header``."""
    done = _script(name, *args)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows and rows[0].startswith(header), done.stdout
    return rows


def _line_of(path: Path, text: str) -> int:
    """The number of the first line of ``path`` that holds ``text``."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} is not in {path.name}")


def test_the_layer_table_counts_innermost_frames_under_the_workload_only(tmp_path: Path) -> None:
    package = BENCHMARKS.parent / "chimeway_lite"
    execute = _line_of(package / "backends/sqlite/executor.py", "return self.conn.execute(")
    engine = package / "engine/deliveries.py"
    engine_line = _line_of(engine, "deliveries.check_report(")  # a Python call, not C
    under = "<module> (profile_hot.py:1);main (profile_hot.py:2);measured (profile_hot.py:3)"
    raw = tmp_path / "work.txt"
    raw.write_text(
        "\n".join(
            [
                # the setup: not under measured, not counted
                "<module> (profile_hot.py:1);_setup (profile_hot.py:9);"
                f"Executor.execute (chimeway_lite/backends/sqlite/executor.py:{execute}) 50",
                f"{under};Executor.execute (chimeway_lite/backends/sqlite/executor.py:{execute}) 6",
                f"{under};record_outcome (chimeway_lite/engine/deliveries.py:{engine_line}) 2",
                f"{under};__init__ (<attrs generated methods chimeway_lite.core.records.Run>:3) 1",
                f"{under};JSONEncoder.iterencode (json/encoder.py:258) 1",
            ]
        )
        + "\n"
    )
    done = _script("layers.py", "--from", str(raw))
    assert done.returncode == 0, done.stderr
    rows = {
        cells[0]: cells[1]
        for line in done.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| layer")
        for cells in [[c.strip() for c in line.split("|")[1:-1]]]
    }
    assert rows == {
        "SQLite": "60.0 %",
        "engine": "20.0 %",
        "records (attrs, enums)": "10.0 %",
        "JSON": "10.0 %",
        "samples": "10",
    }


def test_the_layer_table_refuses_samples_that_never_ran_the_workload(tmp_path: Path) -> None:
    raw = tmp_path / "setup.txt"
    raw.write_text("<module> (profile_hot.py:1);_setup (profile_hot.py:9) 12\n")
    done = _script("layers.py", "--from", str(raw))
    assert done.returncode == 1
    assert "no sample passed through profile_hot.measured" in done.stderr


def test_the_bare_profile_runs_the_workload_without_cprofile(tmp_path: Path) -> None:
    done = _script("profile_hot.py", "journey", "-n", "20", "--bare", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # no profile printed
    (store,) = tmp_path.glob("chimeway-profile-*/profile.db")
    with sqlite3.connect(store) as conn:
        completed = conn.execute("SELECT count(*) FROM workflow_runs WHERE state = 'completed'")
        assert completed.fetchone() == (20,)


def test_the_layer_table_names_a_sample_file_it_cannot_read(tmp_path: Path) -> None:
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\xff\xfe\x00 not text")
    for file in (tmp_path / "missing.txt", binary):
        done = _script("layers.py", "--from", str(file))
        assert done.returncode == 2
        assert f"cannot read the samples in {file}" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_unit_cost_layers_are_empty_units_each_wrapping_the_one_before(
    tmp_path: Path,
) -> None:
    # Every layer runs exactly one empty unit per call: BEGIN IMMEDIATE … COMMIT for the
    # writes (through the store's connection from the backend up), BEGIN … COMMIT for the
    # reads, and nothing else; the raw layers never touch the store's connection.
    with _benchmark_module("unit_cost") as unit_cost:
        import engine_side
        from shapes import T0, WORKFLOW

        store, _ = engine_side.open_store(str(tmp_path / "store.db"), T0)
        store.upsert_definition("welcome", WORKFLOW)
        units = unit_cost.layers(store, str(tmp_path))
        assert list(units) == [
            "raw sqlite3",
            "raw + writer gate",
            "backend unit",
            "store call",
            "store method",
            "store.transaction()",
            "read: raw sqlite3",
            "read: backend unit",
            "read: store call",
            "read: store method",
            "read: store.snapshot()",
        ]
        assert set(unit_cost.WRAPS) == set(units) - {"raw sqlite3", "read: raw sqlite3"}
        seen: list[str] = []
        store.connection.set_trace_callback(seen.append)
        for name, unit in units.items():
            seen.clear()
            unit()
            if name.startswith(("raw", "read: raw")):
                assert seen == [], name
            elif name.startswith("read:"):
                assert seen == ["BEGIN", "COMMIT"], name
            else:
                assert seen == ["BEGIN IMMEDIATE", "COMMIT"], name
        store.close()


def test_the_unit_cost_script_prints_every_layer_with_its_increments() -> None:
    rows = _table("unit_cost.py", "-n", "50", "--rounds", "2", header="| layer | µs per empty unit")
    cells = [[cell.strip() for cell in row.split("|")[1:-1]] for row in rows[1:]]
    assert [c[0] for c in cells][:3] == ["raw sqlite3", "raw + writer gate", "backend unit"]
    assert len(cells) == 11
    for name, figure, over_raw, over_inner in cells:
        assert float(figure.split(" ")[0]) > 0
        if name in ("raw sqlite3", "read: raw sqlite3"):
            assert over_raw == over_inner == ""
        else:
            assert over_raw[0] in "+-" and over_inner.endswith(")")
    assert _script("unit_cost.py", "-n", "0").returncode == 2


def test_the_verify_stages_go_through_every_row_and_find_a_built_store_healthy(
    tmp_path: Path,
) -> None:
    rows = _table(
        "verify_stages.py",
        *("--runs", "300", "--rounds", "1", "--keep", str(tmp_path)),
        header="| stage | s, median (range) | µs per run",
    )
    cells = {
        row.split("|")[1].strip(): [cell.strip() for cell in row.split("|")[2:-1]]
        for row in rows[1:]
    }
    assert list(cells) == [
        "scan",
        "merge",
        "records",
        "traces",
        "deliveries",
        "store checks",
        "verify(quick=True)",
    ]
    (built,) = tmp_path.glob("verify-300.db")
    conn = sqlite3.connect(built)
    tables = ("workflow_runs", "workflow_transitions", "deliveries", "delivery_events")
    count = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    conn.close()
    went = {name: int(values[3].replace(",", "")) for name, values in cells.items()}
    assert went["scan"] == sum(count.values())
    assert went["merge"] == went["records"] == count["workflow_runs"] + count["deliveries"]
    # healthy: no check finds a problem
    assert went["traces"] == went["deliveries"] == went["store checks"] == 0
    assert went["verify(quick=True)"] == 0
    assert cells["merge"][2].startswith(("+", "-")) and cells["traces"][2] == ""
    assert all(float(values[1]) > 0 for values in cells.values())
    # the check stages count what they find: a run moved without a trace row is found
    conn = sqlite3.connect(built)
    with conn:
        conn.execute(
            "UPDATE workflow_runs SET state = 'stopped' "
            "WHERE id = (SELECT min(id) FROM workflow_runs WHERE state = 'completed')"
        )
    conn.close()
    rows = _table(
        "verify_stages.py",
        *("--runs", "300", "--rounds", "1", "--keep", str(tmp_path)),
        header="| stage | s, median (range) | µs per run",
    )
    went = {
        row.split("|")[1].strip(): int(row.split("|")[5].strip().replace(",", ""))
        for row in rows[1:]
    }
    assert went["traces"] >= 1 and went["verify(quick=True)"] >= 1
    assert went["deliveries"] == 0


def test_the_direct_path_prints_every_side_and_writes_what_the_engine_writes() -> None:
    rows = _table("direct_path.py", "--smoke", "--machine", header="| side | triggers/s")
    machine = [r for r in rows if r.startswith(("| trigger |", "| record_outcome |"))]
    parts = [[cell.strip() for cell in row.split("|")[1:-1]] for row in machine]
    assert [p[0] for p in parts] == ["trigger"] * 4 + ["record_outcome"] * 6
    for path in ("trigger", "record_outcome"):
        mine = [float(p[2].strip("*")) for p in parts if p[0] == path]
        assert all(us > 0 for us in mine)
        assert mine[-1] == pytest.approx(sum(mine[:-1]), abs=0.2)  # the sum row adds up
    rows = [r for r in rows if r not in machine and not r.startswith("| path |")]
    cells = [[cell.strip() for cell in row.split("|")[1:-1]] for row in rows[1:]]
    assert [c[0] for c in cells] == ["engine", "direct", "direct, 6 statements", "raw"]
    for _, per_second, micros, over_raw, over_engine in cells:
        assert float(per_second.replace(",", "")) > 0 and float(micros.replace(",", "")) > 0
        assert float(over_raw) > 0 and float(over_engine) > 0
    assert cells[3][3] == "1.00" and cells[0][4] == "1.00"


@pytest.mark.parametrize(
    ("statement", "changed"),
    [
        ("_DELIVERY", ("'pending'", "'dispatched'")),
        ("_NOTIFICATION", ("recipient, notification_key", "notification_key, recipient")),
    ],
)
def test_a_direct_path_that_writes_other_values_is_a_problem(
    tmp_path: Path, statement: str, changed: tuple[str, str]
) -> None:
    with _benchmark_module("direct_path") as direct_path:
        seconds, problems = direct_path.measure(str(tmp_path), 10, 1)
        assert problems == []
        assert all(len(values) == 1 and values[0] > 0 for values in seconds.values())
        original = getattr(direct_path, statement)
        assert changed[0] in original
        setattr(direct_path, statement, original.replace(*changed))
        _, problems = direct_path.measure(str(tmp_path), 10, 1)
    assert [p.split(" wrote ")[0] for p in problems] == ["direct", "direct, 6 statements"]
    assert sorted(os.listdir(tmp_path)) == []


def test_the_direct_outcome_path_prints_every_side() -> None:
    done = _script("direct_path.py", "--smoke", "--outcomes")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    start = lines.index(next(line for line in lines if line.startswith("| side | outcomes/s")))
    rows = lines[start + 2 : start + 6]
    cells = [[cell.strip() for cell in row.split("|")[1:-1]] for row in rows]
    assert [c[0] for c in cells] == ["engine", "direct", "direct, 10 statements", "raw"]
    for _, per_second, micros, over_raw, over_engine in cells:
        assert float(per_second.replace(",", "")) > 0 and float(micros.replace(",", "")) > 0
        assert float(over_raw) > 0 and float(over_engine) > 0
    assert cells[3][3] == "1.00" and cells[0][4] == "1.00"


def test_a_direct_outcome_path_that_writes_other_values_is_a_problem(tmp_path: Path) -> None:
    with _benchmark_module("direct_path") as direct_path:
        seconds, problems = direct_path.measure_outcomes(str(tmp_path), 10, 1)
        assert problems == []
        assert all(len(values) == 1 and values[0] > 0 for values in seconds.values())
        # the trace row of the 10-statement side with two columns swapped
        original = direct_path._TRANSITION
        assert "from_state, to_state" in original
        direct_path._TRANSITION = original.replace("from_state, to_state", "to_state, from_state")
        _, problems = direct_path.measure_outcomes(str(tmp_path), 10, 1)
        assert [p.split(" wrote ")[0] for p in problems] == ["direct, 10 statements"]
        direct_path._TRANSITION = original
        # both direct sides' JSON not canonical (spaces after the separators)
        direct_path.canonical_json = json.dumps
        _, problems = direct_path.measure_outcomes(str(tmp_path), 10, 1)
    assert [p.split(" wrote ")[0] for p in problems] == ["direct", "direct, 10 statements"]
    assert sorted(os.listdir(tmp_path)) == []
