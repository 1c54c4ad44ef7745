"""``Store.verify(workers=N)``: verify in several processes.

The store is cut into ``N`` shares of nearly equal size (runs by id, deliveries by id:
:func:`chimeway_lite.engine.audit.shares`). Each share is checked by a worker process of
its own, which opens the store itself and reads its share in one read unit, while this
process runs the store-wide checks (the database's own, evidence and tenancy, rows,
definitions). The problems come back in the order one process lists them: the store-wide
ones, then every share's traces, then every share's deliveries. Each run with its trace,
and each delivery with its history, is read whole in one snapshot; the shares' snapshots
may differ by what other processes committed in between.

A worker is ``python -m chimeway_lite.verify_processes``, not :mod:`multiprocessing`:
nothing of the host's ``__main__`` is imported again in it. Its request, the store's
location included (a PostgreSQL URL may hold a password), goes in on stdin, never on the
command line; its answer is JSON on stdout. A worker that fails (it cannot open the store,
it is killed) fails the call with :class:`~chimeway_lite.errors.ChimewayError` naming its
share: that is no finding about the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .core.errors import ChimewayError
from .core.timestamps import from_text, to_text

if TYPE_CHECKING:
    from .store import Store

#: The most worker processes one call starts.
MOST_WORKERS = 64


def command() -> list[str]:
    """The command line of one worker process."""
    return [sys.executable, "-m", "chimeway_lite.verify_processes"]


def verify(
    store: Store,
    *,
    tenant_id: str | None,
    since: datetime | None,
    quick: bool,
    workers: int,
) -> list[str]:
    """What ``store.verify(tenant_id=, since=, quick=)`` returns, with the per-run checks in
    ``workers`` processes (the arguments are checked by the caller)."""
    shares = store._verify_shares(workers)
    request = {
        "location": store.path,
        "busy_timeout": store.busy_timeout,
        "tenant_id": tenant_id,
        "since": None if since is None else to_text(since),
    }
    started: list[subprocess.Popen[bytes]] = []
    try:
        for share in shares:
            started.append(_start({**request, "share": share}))
        found = store._verify_store(quick)
        answers = [_answer(process, i, len(started)) for i, process in enumerate(started)]
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()
    return (
        found
        + [problem for traces, _ in answers for problem in traces]
        + [problem for _, deliveries in answers for problem in deliveries]
    )


def _start(request: dict[str, Any]) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    # The worker imports the very package this process runs, wherever it was imported from.
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        command(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    stdin, process.stdin = process.stdin, None  # communicate() then only reads
    assert stdin is not None
    try:
        stdin.write(json.dumps(request).encode("utf-8"))
    except OSError:
        pass  # it ended already: its exit status says why
    finally:
        stdin.close()
    return process


def _answer(process: subprocess.Popen[bytes], index: int, count: int) -> tuple[list[str], ...]:
    out, err = process.communicate()
    where = f"verify: the worker process of share {index + 1} of {count}"
    if process.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        why = lines[-1][:300] if lines else f"exit status {process.returncode}"
        raise ChimewayError(f"{where} failed: {why}")
    try:
        answer = json.loads(out)
        traces, deliveries = answer["traces"], answer["deliveries"]
    except (ValueError, TypeError, KeyError):
        raise ChimewayError(f"{where} answered something that is not its report") from None
    if not (isinstance(traces, list) and isinstance(deliveries, list)) or not all(
        isinstance(p, str) for p in [*traces, *deliveries]
    ):
        raise ChimewayError(f"{where} answered something that is not its report")
    return traces, deliveries


def main() -> int:
    """One worker: read the request on stdin, check its share, write the report on stdout.
    A failure is one line on stderr (the error's own text, which never quotes a payload)."""
    from .store import Store

    try:
        request = json.loads(sys.stdin.buffer.read())
        (runs_after, runs_upto), (after, upto) = request["share"]
        since = request["since"]
        with Store(request["location"], busy_timeout=request["busy_timeout"]) as store:
            traces, deliveries = store._verify_share(
                request["tenant_id"],
                None if since is None else from_text(since),
                ((runs_after, runs_upto), (after, upto)),
            )
    except ChimewayError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, KeyError) as exc:
        print(f"the request cannot be read ({type(exc).__name__})", file=sys.stderr)
        return 2
    json.dump({"traces": traces, "deliveries": deliveries}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
