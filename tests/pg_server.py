"""A PostgreSQL server for the tests: the caller's, or a throwaway cluster started here.

``postgres_dsn()`` answers the DSN of a server the tests may use, or ``None``; then
``last_error()`` says why in one line, for a conftest to print::

    dsn = pg_server.postgres_dsn()
    if dsn is None:
        print(f"PostgreSQL tests: no server found ({pg_server.last_error()})")

* With ``CHIMEWAY_TEST_POSTGRES`` set, that DSN as-is: the caller's server.
* Else a new cluster of the newest PostgreSQL found (``/usr/lib/postgresql/*/bin``, then
  ``PATH``) in a new folder of ``/dev/shm`` (else of the temporary folder), listening on
  127.0.0.1 at a free port and on a unix socket in that folder, trust authentication, no
  durability (fsync, synchronous_commit and full_page_writes off); about 0.7 s. One per
  process, started on the first call, stopped and removed at exit. A cluster left behind by a
  process that was killed is stopped and removed by the next start. ``PostgresServer`` is the
  same as a context manager, for a cluster of one's own.

PostgreSQL refuses to run as root. As root the cluster runs as the user ``postgres`` (Debian's
server packages create it), else ``nobody``; ``CHIMEWAY_TEST_POSTGRES_OS_USER`` names another,
such as one made with ``useradd --system --no-create-home chimeway-pg``. The commands run with
``subprocess``'s ``user=``/``group=``, so neither ``su`` nor ``runuser`` is needed.

``fresh_database(dsn)`` makes an empty schema and answers a DSN whose ``search_path`` is that
schema, about 5 ms; ``kind="database"`` makes a whole database instead, about 30 ms.
SQL runs through psycopg (3) when it is installed, else through ``psql``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path
from types import TracebackType
from typing import Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

ENV_DSN = "CHIMEWAY_TEST_POSTGRES"
ENV_OS_USER = "CHIMEWAY_TEST_POSTGRES_OS_USER"
DATABASE = "chimeway_test"
SUPERUSER = "postgres"
_PREFIX = "chimeway-pg-"
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "100",
}


class PostgresError(RuntimeError):
    """A cluster could not be made, started or used; the message is one line."""


def find_bindir() -> Path | None:
    """The folder of the newest PostgreSQL's ``initdb`` and ``pg_ctl``, or ``None``."""

    def version(folder: str) -> tuple[int, ...]:
        name = Path(folder).parent.name
        return tuple(int(part) for part in name.split(".") if part.isdigit())

    folders = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        folders.append(str(Path(initdb).parent))
    for folder in folders:
        if all(os.access(Path(folder, tool), os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    return None


def _os_user() -> pwd.struct_passwd | None:
    """The unprivileged user the cluster runs as, or ``None`` to run as ourselves."""
    if os.geteuid() != 0:
        return None
    wanted = os.environ.get(ENV_OS_USER)
    for name in [wanted] if wanted else ["postgres", "nobody"]:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            if entry.pw_uid != 0:
                return entry
    raise PostgresError(
        f"running as root and no unprivileged user {wanted or 'postgres or nobody'} exists"
    )


def _base_dirs() -> list[Path]:
    """Where clusters go, best first: ``/dev/shm`` (a tmpfs: initdb takes 0.4 s there and
    1.4 s on this disk), then the temporary folder, if the cluster's user can enter it."""
    bases = []
    shm = Path("/dev/shm")
    with contextlib.suppress(OSError):
        free = os.statvfs(shm)
        if os.access(shm, os.W_OK) and free.f_bavail * free.f_frsize > 1 << 30:
            bases.append(shm)
    tmp = Path(tempfile.gettempdir()).resolve()
    if os.geteuid() == 0 and any(p.stat().st_mode & 0o001 == 0 for p in (tmp, *tmp.parents)):
        tmp = Path("/tmp")  # TMPDIR is private to root
    return [*bases, tmp]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _clean_env(home: Path) -> dict[str, str]:
    """Our environment without libpq's ``PG*`` variables, which would redirect the tools."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["HOME"] = str(home)
    return env


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _one_line(text: str) -> str:
    """The line of a tool's output that says what went wrong (the first error, else the first)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if any(w in line for w in ("FATAL", "error", "failed"))]
    return (errors or lines or ["no output"])[0]


def _run(*args: str | Path, cwd: Path, uid: int | None = None) -> None:
    """Run a PostgreSQL tool in ``cwd``, as ``uid`` if given; raise what failed, in one line."""
    gid = pwd.getpwuid(uid).pw_gid if uid is not None else None
    done = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=_clean_env(cwd),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        user=uid,
        group=gid,
        extra_groups=None if uid is None else [],
    )
    if done.returncode != 0:
        name, line = Path(args[0]).name, _one_line(done.stderr + done.stdout)
        raise PostgresError(line if line.startswith(name) else f"{name}: {line}")


class PostgresServer:
    """A throwaway cluster: ``start()`` answers its DSN, ``stop()`` stops and removes it.

    ``root`` is its folder, which holds the unix socket too (``host=ROOT port=PORT``).
    """

    def __init__(self, bindir: Path | None = None, database: str = DATABASE) -> None:
        self.bindir = bindir
        self.database = database
        self.root: Path | None = None
        self.port: int | None = None
        self.dsn: str | None = None
        self._user: pwd.struct_passwd | None = None
        self._owner_pid = 0

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def _uid(self) -> int | None:
        return self._user.pw_uid if self._user is not None else None

    def start(self) -> str:
        """Make and start the cluster and its database; answer the DSN (TCP, 127.0.0.1)."""
        if self.dsn is not None:
            return self.dsn
        bindir = self.bindir or find_bindir()
        if bindir is None:
            raise PostgresError("no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH")
        self.bindir, self._user, self._owner_pid = bindir, _os_user(), os.getpid()
        reap_stale_clusters()
        self.root = root = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=_base_dirs()[0]))
        (root / "owner.pid").write_text(str(os.getpid()))
        atexit.register(self.stop)
        if self._user is not None:
            os.chown(root, self._user.pw_uid, self._user.pw_gid)
        data, log = root / "data", root / "log"
        try:
            _run(
                bindir / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust",
                "--encoding=UTF8", "--locale=C", "--no-sync", cwd=root, uid=self._uid,
            )  # fmt: skip
            sockets = str(root) if len(str(root)) < 80 else ""  # a socket path has ~100 bytes
            settings = {**_SETTINGS, "unix_socket_directories": f"'{sockets}'"}
            with open(data / "postgresql.conf", "a") as conf:
                conf.write("".join(f"{key} = {value}\n" for key, value in settings.items()))
            for attempt in range(3):  # another process may take the free port before we do
                self.port = _free_port()
                try:
                    _run(
                        bindir / "pg_ctl", "-D", data, "-l", log, "-o", f"-p {self.port}",
                        "-w", "-t", "30", "start", cwd=root, uid=self._uid,
                    )  # fmt: skip
                    break
                except PostgresError as error:
                    text = log.read_text(errors="replace") if log.exists() else ""
                    if attempt == 2 or "already in use" not in text:
                        raise PostgresError(f"{error}: {_one_line(text)}") from None
            _run(
                bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
                self.database, cwd=root,
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise
        self.dsn = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{self.database}"
        return self.dsn

    def stop(self) -> None:
        """Stop the cluster (immediate shutdown: its data is thrown away) and remove it.

        Only in the process that started it: a forked child leaving a ``with`` block or
        running the ``atexit`` handlers does nothing.
        """
        if os.getpid() != self._owner_pid:
            return
        root, self.root, self.dsn = self.root, None, None
        if root is None:
            return
        data = root / "data"
        if self.bindir is not None and (data / "postmaster.pid").exists():
            with contextlib.suppress(PostgresError, OSError, subprocess.SubprocessError):
                _run(self.bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop",
                     cwd=root, uid=self._uid)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def reap_stale_clusters() -> None:
    """Stop and remove the clusters whose owning process is gone (it was killed hard)."""
    bindir = find_bindir()
    for root in [found for base in _base_dirs() for found in base.glob(f"{_PREFIX}*")]:
        try:
            owner = int((root / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(owner):
            continue
        pidfile = root / "data" / "postmaster.pid"
        if bindir is not None and pidfile.exists():
            uid = pidfile.stat().st_uid
            with contextlib.suppress(PostgresError, OSError, subprocess.SubprocessError):
                _run(bindir / "pg_ctl", "-D", root / "data", "-m", "immediate", "-w", "stop",
                     cwd=root, uid=uid if os.geteuid() == 0 and uid != 0 else None)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


_lock = threading.Lock()
_server: PostgresServer | None = None
_error: str | None = None
_tried = False


def postgres_dsn() -> str | None:
    """The DSN of a server for the tests, starting a cluster on the first call; or ``None``."""
    global _server, _error, _tried
    if os.environ.get(ENV_DSN):
        return os.environ[ENV_DSN]
    with _lock:
        if not _tried:
            _tried = True
            server = PostgresServer()
            try:
                server.start()
                _server = server
            except (PostgresError, OSError, subprocess.SubprocessError) as error:
                _error = _one_line(str(error))
        return _server.dsn if _server is not None else None


def last_error() -> str | None:
    """Why ``postgres_dsn()`` answered ``None``, in one line; ``None`` if it did not."""
    return _error


def stop() -> None:
    """Stop and remove the cluster that ``postgres_dsn()`` started, if any."""
    global _server, _tried
    with _lock:
        if _server is not None:
            _server.stop()
        _server, _tried = None, False


def execute(dsn: str, sql: str) -> None:
    """Run SQL statements in autocommit mode, through psycopg or else ``psql``."""
    try:
        import psycopg
    except ImportError:
        bindir = find_bindir()
        psql = str(bindir / "psql") if bindir else shutil.which("psql")
        if psql is None:
            raise PostgresError("neither psycopg nor psql is installed") from None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        cmd = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-c", sql]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PostgresError(_one_line(done.stderr)) from None
        return
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql.encode())


def _with_params(dsn: str, **params: str) -> str:
    """``dsn`` with libpq parameters set (``options`` is appended to), URI or key=value."""
    if "://" not in dsn:
        return " ".join([dsn, *(f"{k}='{v}'" for k, v in params.items())])
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    path = parts.path
    for key, value in params.items():
        if key == "dbname":
            path = "/" + quote(value)
        elif key == "options" and query.get("options"):
            query["options"] += " " + value
        else:
            query[key] = value
    return urlunsplit(parts._replace(path=path, query=urlencode(query, quote_via=quote)))


_fresh: dict[str, tuple[str, str, str]] = {}


def fresh_database(dsn: str, kind: Literal["schema", "database"] = "schema") -> str:
    """Make an empty namespace on ``dsn``'s server; answer a DSN that uses it.

    ``"schema"`` (the default, ~5 ms): a new schema, made the DSN's only ``search_path``
    entry (``options=-csearch_path=NAME``); unqualified names go there, but ``public``,
    roles and extensions are shared with the rest of the database. ``"database"`` (~30 ms
    on tmpfs, 70-110 ms on disk): a new database from ``template0``, shared only its roles.
    """
    name = f"t_{uuid.uuid4().hex[:16]}"
    if kind == "schema":
        execute(dsn, f'CREATE SCHEMA "{name}"')
        fresh = _with_params(dsn, options=f"-csearch_path={name}")
    else:
        execute(dsn, f'CREATE DATABASE "{name}" TEMPLATE template0')
        fresh = _with_params(dsn, dbname=name)
    _fresh[fresh] = (dsn, kind, name)
    return fresh


def drop_fresh_database(fresh_dsn: str) -> None:
    """Drop what ``fresh_database`` made for ``fresh_dsn`` (close its connections first)."""
    dsn, kind, name = _fresh.pop(fresh_dsn)
    if kind == "schema":
        execute(dsn, f'DROP SCHEMA "{name}" CASCADE')
    else:
        execute(dsn, f'DROP DATABASE "{name}" WITH (FORCE)')
