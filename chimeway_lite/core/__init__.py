"""The vocabulary every layer shares, with no I/O: records and enums, errors, clocks,
timestamps, ids, argument checks, and the text rules (Unicode, canonical JSON)."""
