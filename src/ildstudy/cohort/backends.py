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

    def fetch(self, expr, categorical: tuple[str, ...] = ()):
        """The result of ``expr`` as a pandas DataFrame (Ibis's ``execute``). Text columns named in ``categorical``
        may come back as pandas categoricals (engines that can encode them cheaply do)."""
        return self.ibis.execute(expr)

    def fetch_blocks(self, expr, rows: int):
        """The result of ``expr`` as pandas DataFrames of at most ``rows`` rows each, in the order ``fetch`` gives.
        Here one block; engines that can hand out smaller ones override it."""
        yield self.fetch(expr)

    def create_temp_from_frames(self, frames, schema, name: str):
        """Store pandas DataFrames (an iterable, each with ``schema``'s columns) as the temporary table ``name``.
        Here they are put together and stored as one in-memory table; engines that can append override it."""
        import ibis
        import pandas as pd

        blocks = list(frames)
        frame = blocks[0] if len(blocks) == 1 else pd.concat(blocks, ignore_index=True)
        return self.create_temp(ibis.memtable(frame, schema=ibis.schema(schema)), name)

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

    def fetch(self, expr, categorical: tuple[str, ...] = ()):
        # Arrow to pandas directly: Ibis's execute turns every column with a NULL into a Python list first
        # (``to_pylist``), which for the 13.8 million pft rows of 1,000,000 patients costs gigabytes and a minute.
        # ``categorical`` columns are dictionary-encoded in Arrow: pandas then gets codes and the distinct strings,
        # not a Python string per row (34 million outcome rows at 1,000,000 patients).
        table = self.ibis.to_pyarrow(expr)
        for name in categorical:
            i = table.schema.get_field_index(name)
            table = table.set_column(i, name, table.column(i).dictionary_encode())
        return _frame(table)

    def fetch_blocks(self, expr, rows: int):
        # The result is read whole as Arrow (compact: ~1 GB for 13.8 million pft rows) and given out in slices;
        # a streaming reader would end at the first block, as storing it runs another query on this connection.
        table = self.ibis.to_pyarrow(expr)
        for start in range(0, max(table.num_rows, 1), rows):
            yield _frame(table.slice(start, rows))

    def create_temp_from_frames(self, frames, schema, name: str):
        """Each frame appended to the table as it comes, so only one block is in memory at a time (and nothing
        stays registered: an in-memory Ibis table would keep the whole frame, and its Arrow copy, alive)."""
        import ibis
        import pyarrow as pa

        arrow_schema = ibis.schema(schema).to_pyarrow()
        con, view = self.ibis.con, f"{name}_block"
        for i, frame in enumerate(frames):
            con.register(view, pa.Table.from_pandas(frame, schema=arrow_schema, preserve_index=False))
            try:
                con.execute(f'CREATE TEMPORARY TABLE "{name}" AS SELECT * FROM "{view}"' if i == 0
                            else f'INSERT INTO "{name}" SELECT * FROM "{view}"')
            finally:
                con.unregister(view)
        return self.ibis.table(name)

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


def _frame(table):
    """An Arrow table as pandas: dates as ``datetime64`` (as Ibis gives them), missing numbers as NaN."""
    return table.to_pandas(date_as_object=False)
