"""Where a store is: which backend a location names, and how to show it without secrets."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

#: The URL schemes that open the PostgreSQL backend.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(location: str) -> bool:
    """Whether ``location`` names a PostgreSQL database (a ``postgresql://`` URL)."""
    return location.lower().startswith(POSTGRES_SCHEMES)


def redacted(location: str) -> str:
    """``location`` without a password, for messages: a URL's ``user:secret@`` and a
    ``password=`` parameter (of a URL's query or a key=value DSN) become ``***``."""
    if "://" in location:
        try:
            parts = urlsplit(location)
            password = parts.password
        except ValueError:
            return re.sub(r"//[^@/]*@", "//***@", location)
        if password is not None:
            host = parts.netloc.rsplit("@", 1)[1]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
        return urlunsplit(parts._replace(query=query))
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", location)
