"""The PostgreSQL backend: ``Store("postgresql://…")``, on psycopg 3 (the extra
``chimeway-lite[postgres]``).

Only this package imports ``psycopg``.
"""

from .backend import PostgresBackend

__all__ = ["PostgresBackend"]
