"""Open an Ibis connection to where the registry tables live.

Accepted sources: a :class:`~ildstudy.data.Registry` (copied into a new in-memory DuckDB), an Ibis backend,
a ``duckdb`` connection, a DuckDB file path (``study.duckdb`` or ``duckdb:///abs/path``) or a
``postgresql://user:password@host:port/dbname`` URL. Queries run inside that database; only results come
back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ildstudy.data.database import driver_error, duckdb_path, mask_dsn, postgres_url
from ildstudy.data.registry import Registry
from ildstudy.errors import IldStudyError


@dataclass(frozen=True)
class Connection:
    """An Ibis backend and whether ildstudy opened it (and so must close it)."""

    backend: object
    owned: bool
    name: str

    def close(self) -> None:
        if self.owned:
            self.backend.disconnect()


def connect(source) -> Connection:
    """Open ``source`` as an Ibis backend.

    Parameters
    ----------
    source : Registry, Connection, Ibis backend, duckdb connection, str or Path
        See the module docstring. A Registry, path or URL is opened here (and closed by
        :meth:`Connection.close`); a backend or connection given by the caller is left open.

    Returns
    -------
    Connection

    Raises
    ------
    IldStudyError
        The database cannot be reached or opened, or the source is not understood.
    """
    import ibis
    from ibis.backends import BaseBackend

    if isinstance(source, Connection):
        return Connection(source.backend, False, source.name)
    if isinstance(source, Registry):
        return Connection(ibis.duckdb.from_connection(source.to_duckdb()), True, "duckdb (in memory)")
    if isinstance(source, BaseBackend):
        return Connection(source, False, source.name)
    try:
        import duckdb
    except ImportError:  # pragma: no cover - duckdb is a dependency
        duckdb = None
    if duckdb is not None and isinstance(source, duckdb.DuckDBPyConnection):
        return Connection(ibis.duckdb.from_connection(source), False, "duckdb")
    if not isinstance(source, (str, Path)):
        raise IldStudyError(f"cannot read registry tables from a {type(source).__name__}")
    text = str(source)
    url = postgres_url(text)  # also a key=value connection string; raises a masked error if malformed
    if url is not None:
        try:
            return Connection(ibis.connect(url), True, mask_dsn(url))
        except Exception as exc:  # connection refused, bad password, unknown database, ...
            raise IldStudyError(f"--db {mask_dsn(text)}: cannot connect: {driver_error(exc, text, url)}") from None
    path = duckdb_path(text)
    if path is None:
        raise IldStudyError(f"--db {mask_dsn(text)}: not a DuckDB file path or postgresql:// URL")
    if not path.exists():
        raise IldStudyError(f"--db {path}: no such DuckDB file (create it with `ildstudy load DATA --db {path}`)")
    try:
        return Connection(ibis.duckdb.connect(str(path), read_only=True), True, str(path))
    except Exception as exc:
        raise IldStudyError(f"--db {path}: cannot open the DuckDB file: {exc}") from None


class TempTables:
    """Intermediate results stored as temporary tables inside the database, dropped by :meth:`drop_all`.

    Storing the normalised medications and the per-patient status once keeps every later query small
    (Ibis compiles small expressions quickly) and lets the database compute each intermediate result once.
    Temporary tables live in the session only; they work on read-only DuckDB files too.
    """

    def __init__(self, backend) -> None:
        import uuid

        self.backend = backend
        self.names: list[str] = []
        self._tag = uuid.uuid4().hex[:10]

    def store(self, expr, stem: str):
        """Run ``expr`` into a new temporary table and return that table as an Ibis expression."""
        name = f"_ildstudy_{stem}_{self._tag}"
        sql = self.backend.compile(expr)
        self._run(f'CREATE TEMPORARY TABLE "{name}" AS {sql}')
        self.names.append(name)
        self._analyze(name)
        stored = self.backend.table(name)
        # The database may have typed a column differently (a literal 0.0 is DECIMAL(3,1) in DuckDB):
        # cast back to the expression's types.
        wanted, got = expr.schema(), stored.schema()
        fixes = {c: stored[c].cast(t) for c, t in wanted.items() if got[c] != t}
        return stored.mutate(**fixes) if fixes else stored

    def _analyze(self, name: str) -> None:
        # PostgreSQL never auto-analyses temporary tables; without statistics its plans can be poor.
        if self.backend.name == "postgres":
            self._run(f'ANALYZE "{name}"')

    def drop_all(self) -> None:
        while self.names:
            self._run(f'DROP TABLE IF EXISTS "{self.names.pop()}"')

    def _run(self, sql: str) -> None:
        result = self.backend.raw_sql(sql)
        close = getattr(result, "close", None)
        if close is not None and self.backend.name != "duckdb":  # a DB-API cursor (PostgreSQL)
            close()

