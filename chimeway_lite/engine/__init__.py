"""The engine: validate -> gather facts -> ask the pure machine -> carry out its decision,
through the storage contract of :mod:`chimeway_lite.backends.base` only (it knows no
database). :mod:`.operations` is its surface; :mod:`.work` holds one unit of work."""
