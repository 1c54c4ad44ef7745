"""The command line: ``chimeway-lite [--db PATH] [--json] COMMAND`` — the group, the options
every command shares, and the helpers commands print with. The commands live beside this
module by concern: :mod:`.inspection`, :mod:`.sweep`, :mod:`.work`, :mod:`.check`,
:mod:`.demo`, :mod:`.ui`.

Every command takes ``--db`` (default ``./chimeway.db``, or ``$CHIMEWAY_DB``) and ``--json``,
before the command name or after it. Only ``demo`` creates a store file: the other commands
refuse a path where no file exists, so a mistyped path is an error, not a new empty store.

Exit codes: 0 done; 1 an error (no such store, run not found, invalid input, store busy …),
printed as one line on stderr — with ``--json``, as ``{"error": KIND, "message": TEXT}`` —
and never as a traceback; 2 a usage error (click's own); 3 ``verify`` found problems.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

import attrs
import click

from ...backends.locations import is_postgres
from ...core.clock import Clock
from ...core.errors import ChimewayError, InvalidArgument
from ...core.text import shown
from ...core.timestamps import require_utc
from ...store import Store
from .. import listing

DEFAULT_DB = "chimeway.db"
ENV_DB = "CHIMEWAY_DB"
EXIT_ERROR = 1
EXIT_PROBLEMS = 3


@attrs.frozen
class Settings:
    """The options every command shares."""

    db: str
    as_json: bool


class CliError(click.ClickException):
    """An expected failure: one line on stderr (JSON with ``--json``), exit code 1."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str, *, as_json: bool, kind: str = "error") -> None:
        super().__init__(message)
        self.as_json = as_json
        self.kind = kind

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the message on stderr."""
        if self.as_json:
            text = json.dumps({"error": self.kind, "message": self.message}, ensure_ascii=False)
        else:
            text = f"error: {self.message}"
        echo(text, err=True)


# -- the group and the options every command shares ------------------------------------------

_DB_HELP = f"The store file (default ./{DEFAULT_DB}, or ${ENV_DB})."
_JSON_HELP = "Print JSON instead of text."


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "db", metavar="PATH", envvar=ENV_DB, default=DEFAULT_DB, help=_DB_HELP)
@click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)
@click.version_option(package_name="chimeway-lite", prog_name="chimeway-lite")
@click.pass_context
def cli(ctx: click.Context, db: str, as_json: bool) -> None:
    """chimeway-lite: durable, explainable notification journeys in one SQLite file.

    Start with `chimeway-lite demo`, then look at its runs with `runs`, `explain`,
    `traces` and `timeline`.
    """
    ctx.obj = Settings(db, as_json)


class _WarningLines(logging.Handler):
    """The store's and the worker's warnings and errors (a run the sweep skipped, a WAL that
    could not be emptied, a sender that raised) as one line each on stderr: ``warning: …``
    (``error: …``), or a JSON object with ``--json``."""

    def __init__(self, as_json: bool) -> None:
        super().__init__(logging.WARNING)
        self.as_json = as_json

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        level = "error" if record.levelno >= logging.ERROR else "warning"
        if self.as_json:
            echo(json.dumps({level: message}, ensure_ascii=False), err=True)
        else:
            echo(f"{level}: {message}", err=True)


def command(*args: Any, **kwargs: Any) -> Callable[[Callable[..., None]], click.Command]:
    """A command of :func:`cli` that also takes ``--db`` and ``--json``, receives the
    resolved :class:`Settings` first, and turns ChimewayError into :class:`CliError`."""

    def decorate(function: Callable[..., None]) -> click.Command:
        @functools.wraps(function)
        def run(*positional: Any, db: str | None, as_json: bool, **named: Any) -> None:
            group = click.get_current_context().find_object(Settings)
            outer = group if group is not None else Settings(DEFAULT_DB, False)
            settings = Settings(db if db is not None else outer.db, as_json or outer.as_json)
            handler = _WarningLines(settings.as_json)
            logger = logging.getLogger("chimeway_lite")
            logger.addHandler(handler)
            try:
                function(settings, *positional, **named)
            except ChimewayError as exc:
                raise CliError(
                    str(exc), as_json=settings.as_json, kind=type(exc).__name__
                ) from None
            finally:
                logger.removeHandler(handler)

        run = click.option("--json", "as_json", is_flag=True, help=_JSON_HELP)(run)
        run = click.option("--db", "db", metavar="PATH", default=None, help=_DB_HELP)(run)
        made: click.Command = cli.command(*args, **kwargs)(run)
        return made

    return decorate


@contextmanager
def open_store(
    settings: Settings, *, create: bool = False, clock: Clock | None = None
) -> Iterator[Store]:
    """The store of ``--db``; a path with no file is an error unless ``create``."""
    if not create:
        require_store_file(settings)
    with Store(settings.db, clock=clock) as store:
        yield store


def require_store_file(settings: Settings) -> None:
    """Refuse a ``--db`` path where no file exists (a typo must not create a new store). A
    ``postgresql://`` URL names a database the server has already (its schema is made on
    first open)."""
    if is_postgres(settings.db):
        return
    if not os.path.isfile(settings.db):
        what = "is a directory" if os.path.isdir(settings.db) else "does not exist"
        raise CliError(
            f"no store at {settings.db!r}: the path {what} (pass --db PATH or set "
            f"${ENV_DB}; `chimeway-lite demo` creates a store with example runs)",
            as_json=settings.as_json,
            kind="StoreNotFound",
        )


def parse_instant(value: str | None, option: str) -> datetime | None:
    """An option's ISO-8601 time (one without an offset is UTC), or None when not given; a
    usage error naming the option for anything else."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{shown(value)} is not an ISO-8601 time such as 2026-01-05T11:30:00+00:00",
            param_hint=option,
        ) from None
    try:
        return require_utc(
            parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed, option.lstrip("-")
        )
    except InvalidArgument as exc:
        raise click.BadParameter(f"{shown(value)} {exc.problem}", param_hint=option) from None


def echo(message: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Print one message (stdout, or stderr with ``err``) with every character a terminal
    would act on shown as an escape (:func:`~chimeway_lite.tools.listing.showable`): the
    one way the commands print, so no stored text reaches a terminal raw."""
    click.echo(listing.showable(message), err=err, nl=nl)


def emit_json(value: Any) -> None:
    """Print ``value`` as pretty JSON (records, enums and times made plain)."""
    echo(listing.to_json(value))


def time_text(value: datetime | None) -> str:
    """An instant as ISO-8601, or ``-``."""
    return "-" if value is None else value.isoformat()


def context_text(context: Mapping[str, Any]) -> str:
    """A trace context as ``key=value, …`` (sorted), or ``-``; a damaged one as it is."""
    if not isinstance(context, Mapping):
        return str(context)
    return ", ".join(f"{k}={v}" for k, v in sorted(context.items())) or "-"


def main() -> None:
    """The console script ``chimeway-lite``."""
    cli(prog_name="chimeway-lite")


if __name__ == "__main__":
    main()
