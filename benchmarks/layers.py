"""Where a hot path's time goes, by layer: py-spy samples of ``profile_hot.py --bare``, each
sample given to the layer of the code its innermost frame is running (self time).

    python benchmarks/layers.py [journey batch trigger ...] [-n N] [--rate 250]
    python benchmarks/layers.py --from FILE [FILE ...]   (py-spy ``--format raw`` files)

Needs py-spy (``pip install py-spy``; not a dependency of the package or its tests). Only the
samples under ``profile_hot.measured`` count: the setup is left out. A frame whose source
line calls into sqlite3 (``execute``, ``executemany``, a fetch) is SQLite's, one that calls
``json`` (``dumps``, ``loads``, the scanner) is JSON's, whatever module holds it: py-spy
sees Python frames only, so the C a line calls is counted on that line. The rest go by the
file: see :data:`LAYERS`.

Sampling leans toward lines that make system calls. Checked against timers in the process,
in the same hour: SQLite came out at 62-64 / 44-46 / 71-72 % of journey / batch / trigger
(two runs) where ``time_split.py`` measures 59 / 42 / 69 %, and ``new_id``'s ``os.urandom``
line at 10-12 % of a trigger where a timer around ``new_id`` measured 4.8 %. ``py-spy
--nonblocking`` (it drops the samples it cannot read while Python runs) leans further: SQLite
68-79 %. So a layer of a few per cent is a few per cent, not a figure to the decimal; for SQL
against Python use ``time_split.py``.
What a leaner hot path would save is the share of the layers it removes; SQLite's share is
what no change to the Python can take away.
"""

from __future__ import annotations

import argparse
import collections
import linecache
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
CALLS_SQLITE = re.compile(r"\.(execute|executemany|executescript|fetchone|fetchall|fetchmany)\(")
CALLS_JSON = re.compile(r"\b(dumps|loads)\(|_scan_once\(")
MEASURED = "measured"

#: (layer, files): the first layer with a file the frame's file is, or is under, names it
#: (py-spy names a file by its path below the ``sys.path`` entry that holds it; a file in
#: ``<...>`` is code that attrs, cattrs or the row reader generated).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("JSON", ("json/", "chimeway_lite/core/text.py")),
    ("ids", ("chimeway_lite/core/ids.py", "uuid.py")),
    ("records (attrs, enums)", ("<attrs generated", "attr/", "attrs/", "enum.py")),
    (
        "convert",
        (
            "chimeway_lite/backends/sqlite/convert.py",
            "chimeway_lite/backends/sqlite/inserts.py",
            "<chimeway_lite reader",
            "<cattrs generated",
            "cattrs/",
            "chimeway_lite/core/timestamps.py",
            "chimeway_lite/core/frozen.py",
        ),
    ),
    ("machine", ("chimeway_lite/machine/",)),
    ("engine", ("chimeway_lite/engine/",)),
    ("backend glue", ("chimeway_lite/backends/",)),
    ("store, arguments, tracing", ("chimeway_lite/",)),
)
ORDER = ("SQLite", *(name for name, _ in LAYERS), "other")


def layer_of(frame: str) -> str:
    """The layer of one py-spy frame, ``function (file:line)``."""
    found = FRAME.match(frame)
    if found is None:
        return "other"
    file = found["file"].replace("\\", "/")
    if found["line"] is not None:
        source = linecache.getline(_resolve(file), int(found["line"]))
        if CALLS_SQLITE.search(source) or _is(file, "sqlite3/"):
            return "SQLite"
        if CALLS_JSON.search(source):
            return "JSON"
    for name, markers in LAYERS:
        if any(_is(file, marker) for marker in markers):
            return name
    return "other"


def tally(lines: Iterable[str]) -> collections.Counter[str]:
    """Samples per layer, from py-spy raw lines (``frame;frame;...;innermost count``),
    counting only the stacks that pass through ``profile_hot.measured``."""
    counts: collections.Counter[str] = collections.Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if not any(f.startswith(f"{MEASURED} (") and "profile_hot.py" in f for f in frames):
            continue
        counts[layer_of(frames[-1])] += int(count)
    return counts


def table(columns: dict[str, collections.Counter[str]]) -> str:
    """A markdown table: each layer's share of each column's samples, in per cent."""
    names = list(columns)
    out = ["| layer | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    totals = {name: sum(counts.values()) for name, counts in columns.items()}
    for layer in ORDER:
        if not any(columns[name][layer] for name in names):
            continue
        cells = [
            f"{100 * columns[name][layer] / totals[name]:.1f} %" if totals[name] else "—"
            for name in names
        ]
        out.append(f"| {layer} | " + " | ".join(cells) + " |")
    out.append("| samples | " + " | ".join(f"{totals[name]:,}" for name in names) + " |")
    return "\n".join(out)


def sample(kind: str, n: int, rate: int, py_spy: str) -> list[str]:
    """py-spy's raw samples of ``profile_hot.py kind -n n --bare`` (run from the checkout,
    so the package's frames name files under ``chimeway_lite/``)."""
    with tempfile.TemporaryDirectory(prefix="chimeway-layers-") as work:
        raw = Path(work) / f"{kind}.txt"
        command = [
            py_spy, "record", "--format", "raw", "--rate", str(rate), "--output", str(raw),
            "--", sys.executable, str(HERE / "profile_hot.py"), kind, "-n", str(n), "--bare",
            "--dir", work,
        ]  # fmt: skip
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        return raw.read_text().splitlines()


def _is(file: str, marker: str) -> bool:
    if marker.startswith("<"):
        return file.startswith(marker)
    return file.startswith(marker) or f"/{marker}" in file


def _resolve(file: str) -> str:
    path = Path(file)
    if path.is_absolute():
        return file
    for base in (ROOT, HERE):
        if (base / path).exists():
            return str(base / path)
    return file


def main() -> int:
    """Sample each workload (or read the files given) and print the layer table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("kinds", nargs="*", default=["journey", "batch"])
    parser.add_argument("-n", type=int, default=3000, help="operations per workload")
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--from", dest="files", nargs="+", type=Path, help="py-spy raw files")
    args = parser.parse_args()
    columns: dict[str, collections.Counter[str]] = {}
    if args.files:
        for file in args.files:
            try:
                text = file.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                print(f"cannot read the samples in {file}: {type(exc).__name__}", file=sys.stderr)
                return 2
            columns[file.stem] = tally(text.splitlines())
    else:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(py_spy).exists():
            print("layers.py needs py-spy: pip install py-spy", file=sys.stderr)
            return 2
        for kind in args.kinds:
            columns[kind] = tally(sample(kind, args.n, args.rate, py_spy))
    if not any(sum(counts.values()) for counts in columns.values()):
        print("no sample passed through profile_hot.measured", file=sys.stderr)
        return 1
    print(table(columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
