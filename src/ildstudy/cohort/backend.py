"""Open the database where the registry tables live, by lookup; temporary tables inside it.

Accepted sources: a :class:`~ildstudy.data.Registry` (copied into a new in-memory DuckDB), an Ibis backend
(DuckDB, PostgreSQL, PySpark), a ``duckdb`` connection, a ``SparkSession``, or a ``--db`` string -- a
DuckDB file path (``study.duckdb``, ``duckdb:///abs/path``), a ``postgresql://`` URL or libpq key=value
string, or a ``spark://`` / ``sc://`` URL (:mod:`ildstudy.cohort.spark`). Queries run inside that database;
only results come back.

The engines are classes (:mod:`ildstudy.cohort.backends`, :mod:`ildstudy.cohort.spark`) found through two
tables: :data:`SCHEMES` (URL scheme -> class; a string without a scheme is a key=value string for
PostgreSQL or a DuckDB path) and :data:`ENGINES` (Ibis backend name -> class).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ildstudy.cohort.backends import Backend, DuckDB, PostgreSQL
from ildstudy.cohort.spark import Spark
from ildstudy.data.database import is_keyvalue_dsn, mask_dsn
from ildstudy.data.registry import Registry
from ildstudy.errors import IldStudyError

#: URL scheme -> engine class.
SCHEMES: dict[str, type[Backend]] = {
    "duckdb": DuckDB, "postgresql": PostgreSQL, "postgres": PostgreSQL, "spark": Spark, "sc": Spark,
}
#: Ibis backend name -> engine class (for connections given by the caller).
ENGINES: dict[str, type[Backend]] = {cls.name: cls for cls in (DuckDB, PostgreSQL, Spark)}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")


def engine_for_url(text: str) -> type[Backend]:
    """The engine class of a ``--db`` string: by its scheme; without one, key=value (PostgreSQL) or a DuckDB file.

    Raises :class:`IldStudyError` for a scheme no engine handles.
    """
    m = _SCHEME.match(text.strip())
    if m is None:
        return PostgreSQL if is_keyvalue_dsn(text) else DuckDB
    cls = SCHEMES.get(m.group(1).lower())
    if cls is None:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise IldStudyError(f"--db {mask_dsn(text)}: unknown kind of database URL (known: {known}, "
                            "or a DuckDB file path)")
    return cls


def open_backend(source) -> Backend:
    """The :class:`Backend` for ``source`` (see the module docstring); opened here if a URL or Registry."""
    if isinstance(source, Backend):
        return source
    if isinstance(source, Registry):
        return DuckDB.from_registry(source)
    if isinstance(source, (str, Path)):
        text = str(source)
        return engine_for_url(text).open(text)
    cls = ENGINES.get(getattr(source, "name", None))
    candidates = [cls] if cls is not None else list(ENGINES.values())  # driver objects: duckdb, SparkSession
    for cls in candidates:
        if cls.matches(source):
            return cls.wrap(source)
    raise IldStudyError(f"cannot read registry tables from a {type(source).__name__}")


@dataclass(frozen=True)
class Connection:
    """An Ibis backend (``backend``), whether ildstudy opened it (and so must close it), its display name,
    and the engine (:class:`~ildstudy.cohort.backends.Backend`) that runs its temporary tables."""

    backend: object
    owned: bool
    name: str
    engine: Backend | None = None
    #: results a run computes once per connection and reuses across the cohorts it builds on it (the
    #: :class:`RunTables` of :meth:`run_tables`); cleared by :meth:`close`. It assumes the registry tables do not
    #: change while the connection is open (true of a run).
    memo: dict = field(default_factory=dict, compare=False, repr=False)

    def run_tables(self) -> "RunTables":
        """The temporary tables shared by every cohort built on this connection (dropped by :meth:`close`)."""
        tables = self.memo.get(RunTables)
        if tables is None:
            tables = self.memo[RunTables] = RunTables(self)
        return tables

    def close(self) -> None:
        if self.engine is not None or self.owned:  # a borrowed view of a caller's connection keeps its memo
            tables = self.memo.get(RunTables)
            if tables is not None:
                tables.drop_all()
            self.memo.clear()
        if self.engine is not None:
            self.engine.close()
        elif self.owned:
            self.backend.disconnect()


def connect(source) -> Connection:
    """Open ``source`` as an Ibis backend.

    Parameters
    ----------
    source : Registry, Connection, Backend, Ibis backend, duckdb connection, SparkSession, str or Path
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
    if isinstance(source, Connection):
        # the caller's: left open (no engine to close), sharing its memo
        return Connection(source.backend, False, source.name, memo=source.memo)
    engine = open_backend(source)
    return Connection(engine.ibis, engine.owned, engine.label, engine)


class TempTables:
    """Intermediate results stored as temporary tables inside the database, dropped by :meth:`drop_all`.

    Storing the normalised medications and the per-patient status once keeps every later query small
    (Ibis compiles small expressions quickly) and lets the database compute each intermediate result once.
    Temporary tables live in the session only; they work on read-only DuckDB files too. The SQL is the
    engine's (:meth:`~ildstudy.cohort.backends.Backend.create_temp`).
    """

    def __init__(self, backend) -> None:
        import uuid

        self.engine = backend.engine if isinstance(backend, Connection) and backend.engine else open_backend(backend)
        self.backend = self.engine.ibis
        self.names: list[str] = []
        self._tag = uuid.uuid4().hex[:10]

    def store(self, expr, stem: str):
        """Run ``expr`` into a new temporary table and return that table as an Ibis expression."""
        name = f"_ildstudy_{stem}_{self._tag}"
        stored = self.engine.create_temp(expr, name)
        self.names.append(name)
        self.engine.analyze(name)
        # The database may have typed a column differently (a literal 0.0 is DECIMAL(3,1) in DuckDB):
        # cast back to the expression's types.
        wanted, got = expr.schema(), stored.schema()
        fixes = {c: stored[c].cast(t) for c, t in wanted.items() if got[c] != t}
        return stored.mutate(**fixes) if fixes else stored

    def store_frames(self, frames, schema: dict, stem: str):
        """Store pandas DataFrames (an iterable of blocks with ``schema``'s columns) as one new temporary table,
        appended block by block where the engine can (:meth:`~ildstudy.cohort.backends.Backend.create_temp_from_frames`)."""
        name = f"_ildstudy_{stem}_{self._tag}"
        self.names.append(name)  # before the first block: dropped with the others if a block fails
        stored = self.engine.create_temp_from_frames(frames, schema, name)
        self.engine.analyze(name)
        return stored

    def drop_all(self) -> None:
        while self.names:
            self.engine.drop(self.names.pop())


class RunTables:
    """Temporary tables that outlive one cohort: the steps a run's cohorts share (the normalised medications,
    the derived pft table), computed and stored once per connection instead of once per sensitivity analysis.

    One entry per ``slot``: :meth:`get` returns the stored value when its ``key`` (everything the value depends
    on) is the same, and otherwise drops the slot's tables and computes it again, so that at most one version of
    each shared table is held. Dropped by :meth:`Connection.close`.
    """

    def __init__(self, conn: Connection) -> None:
        self._engine = conn.engine if conn.engine is not None else open_backend(conn.backend)
        self._slots: dict[str, tuple[object, object, list[str]]] = {}

    def get(self, slot: str, key, make):
        """``make(temp)`` once per ``(slot, key)``; the tables it stores in ``temp`` (a :class:`TempTables`) live
        with the entry."""
        hit = self._slots.get(slot)
        if hit is not None and hit[0] == key:
            return hit[1]
        if hit is not None:
            self._drop(slot)
        temp = TempTables(self._engine)
        value = make(temp)
        self._slots[slot] = (key, value, temp.names)
        return value

    def _drop(self, slot: str) -> None:
        _, _, names = self._slots.pop(slot)
        for name in names:
            self._engine.drop(name)

    def drop_all(self) -> None:
        for slot in list(self._slots):
            self._drop(slot)
