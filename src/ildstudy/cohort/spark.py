"""Apache Spark as a cohort engine, through Ibis's PySpark backend (``pip install 'ildstudy[spark]'``, Java 17).

``--db`` forms (see ``docs/data-format.md``, "Database URLs"):

- ``spark://local[2]`` (``spark://local`` = all cores): a Spark session inside this process;
- ``spark://host:7077``: a standalone Spark cluster's master (Spark's own master URL);
- ``sc://host:15002``: a Spark Connect server (``pip install 'pyspark[connect]'``).

Query parameters: ``tables=FOLDER`` reads the five canonical tables from Parquet in a folder the Spark
driver can read (``FOLDER/patients.parquet`` -- a file or a folder of part files -- or ``FOLDER/patients/``,
as ``ildstudy synth --format parquet`` or a lakehouse export writes them); without it the tables are those
of the session's catalog (``database=NAME`` selects the database). Other ``spark.*`` parameters are passed
to the session's configuration (``spark.driver.memory=8g``).

When a Spark session is already active in the process (a notebook), a new session sharing its Spark
context is used and the context is left running; otherwise ildstudy starts one and stops it afterwards.
Intermediate results are materialised with ``localCheckpoint`` as temporary views (Spark has no
``CREATE TEMPORARY TABLE ... AS``); they and the Parquet views are dropped when the cohort is built.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from ildstudy.cohort.backends import Backend
from ildstudy.data.schema import TABLES
from ildstudy.errors import DataError, EnvironmentFailure, IldStudyError, Problem

_TOKEN = re.compile(r"((?:^|;)\s*token\s*=)[^;?]*", re.IGNORECASE)
INSTALL_HINT = "install it with: pip install 'ildstudy[spark]' (and Java 17: apt-get install openjdk-17-jre-headless)"


def parse_spark_url(url: str) -> tuple[str, bool, dict[str, str]]:
    """``(master or Spark Connect URL, is_connect, parameters)`` of a ``spark://`` or ``sc://`` URL.

    >>> parse_spark_url("spark://local[2]?tables=/data/registry")
    ('local[2]', False, {'tables': '/data/registry'})
    >>> parse_spark_url("spark://local")[0], parse_spark_url("spark://db.example:7077")[0]
    ('local[*]', 'spark://db.example:7077')
    >>> parse_spark_url("sc://db.example:15002/;token=abc")[:2]
    ('sc://db.example:15002/;token=abc', True)
    """
    text = str(url).strip()
    scheme, _, rest = text.partition("://")
    where, _, query = rest.partition("?")
    params = {k: unquote(v) for k, v in parse_qsl(query, keep_blank_values=True)}
    if scheme.lower() == "sc":
        return f"sc://{where}", True, params
    if not where:
        raise IldStudyError(f"--db {mask_spark(text)}: give a master: spark://local[2] or spark://host:7077")
    if where == "local":
        return "local[*]", False, params
    if where.startswith("local"):
        return where, False, params
    return f"spark://{where}", False, params


def mask_spark(url: str) -> str:
    """``url`` with a Spark Connect ``token=`` (and any password) masked."""
    from ildstudy.data.database import mask_dsn

    return mask_dsn(_TOKEN.sub(lambda m: m.group(1) + "***", str(url)))


def parquet_tables(folder: Path) -> dict[str, Path]:
    """The Parquet file or folder of each canonical table in ``folder``; :class:`DataError` naming the missing."""
    if not folder.is_dir():
        raise IldStudyError(f"--db ...?tables={folder}: no such folder")
    found, problems = {}, []
    for spec in TABLES:
        for candidate in (folder / f"{spec.name}.parquet", folder / spec.name):
            if candidate.exists():
                found[spec.name] = candidate
                break
        else:
            problems.append(Problem(spec.name, None, None, None,
                                    f"table '{spec.name}' is missing: no {spec.name}.parquet in {folder}"))
    if problems:
        raise DataError(problems)
    return found


def _is_session(obj) -> bool:
    return type(obj).__name__ == "SparkSession" and type(obj).__module__.startswith("pyspark.")


class Spark(Backend):
    """A Spark session (local, a cluster, or Spark Connect) through Ibis's PySpark backend."""

    name = "pyspark"

    def __init__(self, ibis_backend, *, owned: bool, label: str, views: tuple[str, ...] = ()) -> None:
        super().__init__(ibis_backend, owned=owned, label=label)
        self.session = ibis_backend._session
        self._views = list(views)   # Parquet tables registered by open(), dropped by close()
        self._frames: dict[str, object] = {}

    @classmethod
    def open(cls, url: str) -> "Spark":
        master, is_connect, params = parse_spark_url(url)
        label = mask_spark(url)
        tables = params.pop("tables", None)
        database = params.pop("database", None)
        unknown = sorted(k for k in params if not k.startswith("spark."))
        if unknown:
            raise IldStudyError(f"--db {label}: unknown parameter(s) {', '.join(unknown)} "
                                "(known: tables, database, spark.*)")
        files = parquet_tables(Path(tables).expanduser()) if tables is not None else None
        session, owned = _session(master, is_connect, params, label)
        try:
            import ibis

            backend = ibis.pyspark.connect(session)
            if database:
                session.catalog.setCurrentDatabase(database)
            views = []
            for name, path in (files or {}).items():
                session.read.parquet(str(path)).createOrReplaceTempView(name)
                views.append(name)
        except IldStudyError:
            if owned:
                session.stop()
            raise
        except Exception as exc:  # noqa: BLE001 - unreadable Parquet, unknown database, ...
            if owned:
                session.stop()
            raise IldStudyError(f"--db {label}: {_first_line(exc)}") from None
        return cls(backend, owned=owned, label=label, views=tuple(views))

    @classmethod
    def matches(cls, source) -> bool:
        return _is_session(source) or super().matches(source)

    @classmethod
    def wrap(cls, source) -> "Spark":
        if _is_session(source):
            import ibis

            source = ibis.pyspark.connect(source)
        return cls(source, owned=False, label="spark")

    def create_temp(self, expr, name: str):
        # Materialise once and cut the lineage, so later queries neither recompute nor re-plan it.
        self.ibis._run_pre_execute_hooks(expr)
        frame = self.session.sql(self.ibis.compile(expr)).localCheckpoint(eager=True)
        frame.createOrReplaceTempView(name)
        self._frames[name] = frame
        self._release_memtables(expr)
        return self.ibis.table(name)

    def _release_memtables(self, expr) -> None:
        """Drop the views Ibis registered for the in-memory tables of ``expr`` (the derived pft table): the
        checkpoint holds the data now, and a caller's session must not keep ``ibis_pandas_memtable_*`` views.
        Ibis's own finalizer for PySpark does nothing, so they would stay until the session ends."""
        import ibis.expr.operations as ops

        for op in expr.op().find(ops.InMemoryTable):
            self.session.catalog.dropTempView(op.name)
            self.ibis._memtables.discard(op)  # so that a later use registers it again

    def drop(self, name: str) -> None:
        self.session.catalog.dropTempView(name)
        frame = self._frames.pop(name, None)
        if frame is not None:
            frame.unpersist()

    def close(self) -> None:
        if self.owned:
            self.session.stop()
            return
        for name in self._views:
            self.session.catalog.dropTempView(name)
        self._views.clear()


def _session(master: str, is_connect: bool, conf: dict[str, str], label: str):
    """``(session, owned)``: a new session on the active Spark context, or a new Spark application."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EnvironmentFailure(f"--db {label}: Spark needs the pyspark package; {INSTALL_HINT}") from None
    if not is_connect:
        active = SparkSession.getActiveSession()
        if active is not None:
            session = active.newSession()
            for key, value in conf.items():
                session.conf.set(key, value)
            return session, False
    builder = SparkSession.builder.remote(master) if is_connect else SparkSession.builder.master(master)
    builder = builder.appName("ildstudy")
    if not is_connect:
        builder = (builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                   .config("spark.sql.shuffle.partitions", "2"))
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - no Java, unreachable master or server
        hint = "" if is_connect else f" (is Java 17 installed? {INSTALL_HINT})"
        raise EnvironmentFailure(f"--db {label}: cannot start Spark: {_first_line(exc)}{hint}") from None
    if not is_connect:
        session.sparkContext.setLogLevel("ERROR")
    return session, True


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
