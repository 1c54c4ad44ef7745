"""The ids the engine issues: canonical, lower-case, 36-character UUID text."""

from __future__ import annotations

import os


def new_id() -> str:
    """A fresh random id (UUID version 4)."""
    # Built from 16 random bytes without a uuid.UUID (twice as fast): the version (4) and
    # variant (10xx) bits set as uuid.uuid4() sets them.
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
