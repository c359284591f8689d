"""The databases the cohort runs in: one :class:`Backend` class per engine, found by lookup.

Each class knows how to open its kind of ``--db`` URL, which in-process objects it wraps, and its own SQL
for temporary tables (the only place where the engines differ; every cohort query is the same Ibis
expression on all of them):

============  =======================================================  ==================================
engine        ``--db``                                                 temporary tables
============  =======================================================  ==================================
DuckDB        ``study.duckdb``, ``duckdb:///abs/path`` (read-only)     ``CREATE TEMPORARY TABLE``
PostgreSQL    ``postgresql://...``, ``postgres://...``, key=value      ``CREATE TEMPORARY TABLE`` + ``ANALYZE``
Spark         ``spark://local[2]?tables=FOLDER``, ``spark://host:7077``,  a checkpointed temporary view
              ``sc://host:15002`` (Spark Connect)
============  =======================================================  ==================================

:class:`Spark` is in :mod:`ildstudy.cohort.spark`. :mod:`ildstudy.cohort.backend` holds the lookup tables
(URL scheme -> class, Ibis backend name -> class); adding an engine is one class and one entry in each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from ildstudy.data.database import driver_error, duckdb_path, mask_dsn, postgres_url
from ildstudy.data.registry import Registry
from ildstudy.errors import IldStudyError


class Backend(ABC):
    """One open database: the Ibis backend the cohort queries, and the engine's own SQL.

    Parameters
    ----------
    ibis_backend : ibis.backends.BaseBackend
        The connection the cohort's expressions run on.
    owned : bool
        Whether ildstudy opened it (and so :meth:`close` disconnects it); a caller's connection stays open.
    label : str
        How messages and ``Cohort.backend`` name the database (passwords masked).
    """

    #: Ibis's name for the engine (``ibis_backend.name``).
    name: ClassVar[str]

    def __init__(self, ibis_backend, *, owned: bool, label: str) -> None:
        self.ibis = ibis_backend
        self.owned = owned
        self.label = label

    @classmethod
    @abstractmethod
    def open(cls, url: str) -> "Backend":
        """Open the database named by ``url`` (raise :class:`IldStudyError` with a masked message)."""

    @classmethod
    def matches(cls, source) -> bool:
        """Whether ``source`` (an in-process object, not a URL) is a connection of this engine."""
        return getattr(source, "name", None) == cls.name and hasattr(source, "compile")

    @classmethod
    def wrap(cls, source) -> "Backend":
        """A :class:`Backend` around a caller's connection (left open by :meth:`close`)."""
        return cls(source, owned=False, label=cls.name)

    @abstractmethod
    def create_temp(self, expr, name: str):
        """Run ``expr`` into the session-scoped temporary table ``name`` and return it as an Ibis table."""

    @abstractmethod
    def drop(self, name: str) -> None:
        """Drop the temporary table ``name`` if it exists."""

    def analyze(self, name: str) -> None:
        """Collect planner statistics on the temporary table ``name`` (where the engine needs it)."""

    def close(self) -> None:
        """Disconnect, when ildstudy opened the connection."""
        if self.owned:
            self.ibis.disconnect()


class _SqlTempTables(Backend):
    """Engines with ``CREATE TEMPORARY TABLE name AS query`` and double-quoted identifiers."""

    def create_temp(self, expr, name: str):
        self.ibis._run_pre_execute_hooks(expr)  # registers in-memory tables (the derived pft table)
        self._run(f'CREATE TEMPORARY TABLE "{name}" AS {self.ibis.compile(expr)}')
        return self.ibis.table(name)

    def drop(self, name: str) -> None:
        self._run(f'DROP TABLE IF EXISTS "{name}"')

    def _run(self, sql: str) -> None:
        self.ibis.raw_sql(sql)


class DuckDB(_SqlTempTables):
    """An embedded DuckDB: a file opened read-only, a caller's connection, or a :class:`Registry` copied in."""

    name = "duckdb"

    @classmethod
    def open(cls, url: str) -> "DuckDB":
        import ibis

        path = duckdb_path(url)
        if path is None:
            raise IldStudyError(f"--db {mask_dsn(url)}: not a DuckDB file path or database URL")
        if not path.exists():
            raise IldStudyError(f"--db {path}: no such DuckDB file (create it with `ildstudy load DATA --db {path}`)")
        try:
            return cls(ibis.duckdb.connect(str(path), read_only=True), owned=True, label=str(path))
        except Exception as exc:
            raise IldStudyError(f"--db {path}: cannot open the DuckDB file: {exc}") from None

    @classmethod
    def matches(cls, source) -> bool:
        import duckdb

        return isinstance(source, duckdb.DuckDBPyConnection) or super().matches(source)

    @classmethod
    def wrap(cls, source) -> "DuckDB":
        import duckdb
        import ibis

        if isinstance(source, duckdb.DuckDBPyConnection):
            source = ibis.duckdb.from_connection(source)
        return cls(source, owned=False, label="duckdb")

    @classmethod
    def from_registry(cls, registry: Registry) -> "DuckDB":
        """A new in-memory DuckDB holding ``registry``'s tables (closed by :meth:`close`)."""
        import ibis

        return cls(ibis.duckdb.from_connection(registry.to_duckdb()), owned=True, label="duckdb (in memory)")


class PostgreSQL(_SqlTempTables):
    """A PostgreSQL server."""

    name = "postgres"

    @classmethod
    def open(cls, url: str) -> "PostgreSQL":
        import ibis

        pg = postgres_url(url)  # also a key=value string; raises a masked error if malformed
        try:
            return cls(ibis.connect(pg), owned=True, label=mask_dsn(pg))
        except Exception as exc:  # connection refused, bad password, unknown database, ...
            raise IldStudyError(f"--db {mask_dsn(url)}: cannot connect: {driver_error(exc, url, pg)}") from None

    def analyze(self, name: str) -> None:
        # PostgreSQL never auto-analyses temporary tables; without statistics its plans can be poor.
        self._run(f'ANALYZE "{name}"')

    def _run(self, sql: str) -> None:
        self.ibis.raw_sql(sql).close()  # a DB-API cursor
