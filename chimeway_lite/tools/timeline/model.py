"""What a timeline shows, read from the store in one snapshot, and how each trace row reads.

:func:`collect` gathers a :class:`Timeline`: the run's explanation (which carries its
recipient, notification key, ``why``, ``next_move`` and path), the steps of its definition,
its trace, and every delivery with its attempts (:meth:`Store.explain_delivery`: the
delivery without data, each attempt, and the sentences for people). Nothing of the host's
data is read: a timeline holds no trigger data and no signal payload.

:func:`describe` gives the label and detail line of one trace row from its move's variant
in the machine's table (:data:`~chimeway_lite.machine.table.MOVES`); a host's own reason is
shown as it is.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import PurePath

import attrs

from ...core.errors import InvalidArgument
from ...core.records import (
    Delivery,
    DeliveryAttempt,
    DeliveryExplanation,
    RunExplanation,
    RunState,
    WorkflowStep,
    WorkflowTransition,
)
from ...machine.table import MOVES
from ...machine.vocabulary import SIGNAL_RECEIVED, render
from ...store import Store

#: The formats a timeline is written in, by name: what ``--format`` and :func:`format_for`
#: accept. Anything else (a PNG, a PDF) needs a browser to draw; the picture is SVG.
FORMATS = ("svg", "html")
_SUFFIXES = {".svg": "svg", ".html": "html", ".htm": "html"}

# Characters XML 1.0 does not allow, even escaped (C0 controls other than tab/newline/CR,
# lone surrogates, U+FFFE/U+FFFF): replaced so that the document stays well-formed.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

STATE_COLOURS = {
    RunState.ACTIVE: "#1f6feb",
    RunState.WAITING: "#9a6700",
    RunState.COMPLETED: "#1a7f37",
    RunState.STOPPED: "#cf222e",
}
SIGNAL_COLOUR = "#8250df"
HOST_COLOUR = "#6e7781"


def _explanations(value: Mapping[str, DeliveryExplanation]) -> dict[str, DeliveryExplanation]:
    return dict(value)


@attrs.frozen
class Timeline:
    """Everything the picture shows, read in one snapshot of the store.

    ``deliveries`` are the run's deliveries, oldest first, without data or config;
    ``explained`` maps each delivery id to its :class:`DeliveryExplanation` (its attempts,
    ``why`` and ``next_move``). A Timeline built without it draws no attempts.
    """

    explanation: RunExplanation
    steps: tuple[WorkflowStep, ...]
    transitions: tuple[WorkflowTransition, ...]
    deliveries: tuple[Delivery, ...]
    explained: dict[str, DeliveryExplanation] = attrs.field(factory=dict, converter=_explanations)

    def attempts_of(self, delivery_id: str) -> tuple[DeliveryAttempt, ...]:
        """The attempts of one delivery of the run, oldest first (none when not known)."""
        found = self.explained.get(delivery_id)
        return () if found is None else found.attempts


def collect(store: Store, tenant_id: str, run_id: str) -> Timeline:
    """Read what :func:`~chimeway_lite.tools.timeline.render_svg` needs for one run of
    ``tenant_id`` (RunNotFound when the run is missing or another tenant's), inside one read
    transaction."""
    with store.snapshot() as view:
        explanation = view.explain(tenant_id, run_id)
        definition = view.fetch_definition(explanation.workflow_key, explanation.workflow_version)
        steps = () if definition is None else definition.steps
        explained = {
            d.id: view.explain_delivery(tenant_id, d.id)
            for d in view.list_deliveries(tenant_id, run_id)
        }
        return Timeline(
            explanation=explanation,
            steps=tuple(sorted(steps, key=lambda s: s.step_order)),
            transitions=tuple(view.list_traces(tenant_id, run_id)),
            # The explanation's copy of each delivery carries no data and no config.
            deliveries=tuple(e.delivery for e in explained.values()),
            explained=explained,
        )


def esc(value: object) -> str:
    """``value`` as text that is safe inside XML/HTML text and attribute values."""
    return html.escape(_NOT_XML.sub("\ufffd", str(value)), quote=True)


def describe(row: WorkflowTransition, steps: Mapping[str, WorkflowStep]) -> tuple[str, str, str]:
    """The label, detail line and colour of one trace row, from its move's variant in the
    machine's table (a host's own reason is shown as it is). ``steps`` maps step ids to
    steps, for the channel of the row's step."""
    colour = STATE_COLOURS.get(row.to_state, HOST_COLOUR)
    move = MOVES.get(row.reason)
    if move is None:
        return row.reason, f"-> {row.to_state.value}", colour
    if row.reason == SIGNAL_RECEIVED:
        colour = SIGNAL_COLOUR
    variant = move.variant(row.context)
    step = steps.get(row.workflow_step_id or "")
    channel = f" ({step.channel})" if step is not None else ""
    return (
        render(variant.label, row.context, channel=channel),
        render(variant.detail, row.context),
        colour,
    )


def format_for(path: str, wanted: str | None = None) -> str:
    """The format to write ``path`` in (``"svg"`` or ``"html"``): ``wanted`` when given,
    else the file name's suffix; ``-`` (stdout) is SVG unless told otherwise.

    A suffix the timeline cannot write (``.png``, ``.pdf`` …), a name with no suffix and no
    ``wanted`` format, or a ``wanted`` format the suffix contradicts raise
    :class:`InvalidArgument`: a file is never written in a format its name does not say.
    """
    if wanted is not None and wanted not in FORMATS:
        raise InvalidArgument("format", f"must be one of {', '.join(FORMATS)}, not {wanted!r}")
    if path == "-":
        return wanted or "svg"
    suffix = PurePath(path).suffix.lower()
    named = _SUFFIXES.get(suffix)
    if suffix and named is None:
        raise InvalidArgument(
            "out",
            f"cannot write {suffix!r} files: a timeline is an SVG picture or an HTML page "
            "(name the file .svg or .html; to get a PNG, open the SVG in a browser and "
            "take a screenshot)",
        )
    if named is None and wanted is None:
        raise InvalidArgument(
            "out", f"{path!r} has no suffix: name it .svg or .html, or pass --format"
        )
    if named is not None and wanted is not None and named != wanted:
        raise InvalidArgument("out", f"the name {path!r} says {named}, but --format says {wanted}")
    return named or str(wanted)
