"""Where registry tables live: an embedded DuckDB file or a PostgreSQL server.

A database URL is either a path to a DuckDB file (``study.duckdb`` or ``duckdb:///abs/path``)
or ``postgresql://user:password@host:port/dbname``.
"""

from __future__ import annotations

from pathlib import Path

from ildstudy.data.registry import Registry
from ildstudy.errors import IldStudyError


def duckdb_path(url: str) -> Path | None:
    """The DuckDB file a URL names, or ``None`` when it names another kind of database."""
    if url.startswith("duckdb://"):
        return Path(url[len("duckdb://"):])
    if "://" in url:
        return None
    return Path(url)


def write_registry_to(registry: Registry, url: str) -> str:
    """Write every table of ``registry`` into the database at ``url``; return a display name."""
    path = duckdb_path(url)
    if path is not None:
        import duckdb

        path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path))
        try:
            registry.to_duckdb(con)
        finally:
            con.close()
        return str(path)
    if url.startswith(("postgresql://", "postgres://")):
        from ildstudy.data.postgres import write_registry_postgres

        return write_registry_postgres(registry, url)
    raise IldStudyError(f"--db {url}: not a DuckDB file path or postgresql:// URL")
