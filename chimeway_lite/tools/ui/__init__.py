"""``chimeway-lite ui``: a local, read-only web inspector of a store (CONTRACT §17).

Pages: ``/`` (runs, filtered by tenant, recipient, state and workflow, in pages),
``/runs/<tenant>/<run_id>`` (the explanation, the timeline, the deliveries and their
attempts, the trace), ``/deliveries/<tenant>/<delivery_id>``, ``/outbox`` and ``/due`` (what
the due sweep and the outbox will have in the next hour); each also as JSON with
``?format=json``. Served by the standard library; no script in any page; never a payload or
the trigger's data.

    with open_read_only("chimeway.db") as store:
        server = make_server(store, "127.0.0.1", 8765)
        server.serve_forever()

The modules: :mod:`.queries` (the parameters of each page), :mod:`.documents` (what each
page shows, as JSON values), :mod:`.pages` and :mod:`.markup` (its HTML), :mod:`.server`
(routing, answers, HTTP).
"""

from .documents import Page
from .server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    Inspector,
    InspectorServer,
    Response,
    is_loopback,
    make_server,
    open_read_only,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Inspector",
    "InspectorServer",
    "Page",
    "Response",
    "is_loopback",
    "make_server",
    "open_read_only",
]
