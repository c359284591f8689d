"""A CDM to read from: a DuckDB file, a PostgreSQL database (one schema, ``--cdm-schema``), or a folder of CSV
files, one per table (``person.csv``, ``PERSON.csv``, ...; the form OHDSI's Eunomia data sets and many CDM
exports take), read as text into an in-memory DuckDB and cast to the CDM v5.4 column types.

>>> cdm = open_cdm("cdm.duckdb")                      # doctest: +SKIP
>>> cdm.read("person", ("person_id", "gender_concept_id"))   # doctest: +SKIP
"""

from __future__ import annotations

import pandas as pd

from ildstudy.data.database import driver_error, duckdb_path, mask_dsn, postgres_url, sql_path_literal
from ildstudy.data.omop.ddl import column_types
from ildstudy.errors import IldStudyError, Problem


class Cdm:
    """The tables of one CDM schema; :meth:`read` returns a DataFrame of the asked columns."""

    def __init__(self, url: str, schema: str, con, kind: str, problems: list[Problem] | None = None):
        self.url, self.schema, self.con, self.kind = url, schema, con, kind
        #: problems found while opening (a CSV cell that is not of its column's CDM type)
        self.problems: list[Problem] = list(problems or [])
        self.columns: dict[str, set[str]] = {}
        for table, column in self._query(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
                + ("?" if kind == "duckdb" else "%s"), (schema,)):
            self.columns.setdefault(str(table).lower(), set()).add(str(column).lower())
        if not self.columns:
            raise IldStudyError(f"--omop {mask_dsn(url)}: schema {schema!r} has no tables (give --cdm-schema)")

    def _query(self, sql: str, params=()):
        try:
            if self.kind == "duckdb":
                return self.con.execute(sql, params).fetchall()
            with self.con.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        except Exception as exc:  # noqa: BLE001 - the driver's own error classes, password masked
            raise IldStudyError(f"--omop {mask_dsn(self.url)}: {driver_error(exc, self.url)}") from None

    def has(self, table: str) -> bool:
        return table in self.columns

    def read(self, table: str, columns: tuple[str, ...], optional: tuple[str, ...] = (),
             where: tuple[str, list] | None = None) -> pd.DataFrame:
        """``columns`` (each must exist: else an error naming table and column) and the ``optional`` ones
        present, as a DataFrame (absent optional columns are all-missing); ``where = (column, values)`` keeps the
        rows whose column is one of ``values`` (so a full vocabulary is never read whole)."""
        have = self.columns.get(table)
        if have is None:
            raise IldStudyError(f"--omop {mask_dsn(self.url)}: the CDM has no table {self.schema}.{table}")
        missing = [c for c in columns if c not in have]
        if missing:
            raise IldStudyError(f"{table}: column {', '.join(missing)} is missing (an OMOP CDM v5.4 {table} table "
                                f"has it)")
        present = [c for c in (*columns, *optional) if c in have]
        quoted = ", ".join(f'"{c}"' for c in present)
        sql, params = f'SELECT {quoted} FROM "{self.schema}"."{table}"', ()
        if where is not None:
            if not where[1]:
                return pd.DataFrame(columns=present + [c for c in optional if c not in present])
            mark = "?" if self.kind == "duckdb" else "%s"
            sql += f' WHERE "{where[0]}" IN ({", ".join([mark] * len(where[1]))})'
            params = tuple(where[1])
        rows = self._query(sql, params)
        frame = pd.DataFrame(rows, columns=present)
        for c in optional:
            if c not in frame.columns:
                frame[c] = None
        return frame

    def close(self) -> None:
        self.con.close()


def open_cdm(url: str, schema: str | None = None) -> Cdm:
    """Open ``url`` read-only: a DuckDB file (schema default ``main``) or PostgreSQL (default ``public``)."""
    url = str(url)
    pg = postgres_url(url)
    if pg is not None:
        import psycopg

        try:
            con = psycopg.connect(pg, connect_timeout=10)
        except psycopg.Error as exc:
            raise IldStudyError(f"--omop {mask_dsn(url)}: cannot connect: {driver_error(exc, url, pg)}") from None
        return Cdm(url, schema or "public", con, "postgres")
    path = duckdb_path(url)
    if path is None or not path.exists():
        raise IldStudyError(f"--omop {mask_dsn(url)}: no such DuckDB file or folder (give a .duckdb path, a folder "
                            "of CDM CSV files or a postgresql:// URL)")
    import duckdb

    if path.is_dir():
        return _csv_folder(url, path)
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise IldStudyError(f"--omop {path}: cannot open as DuckDB: {exc}") from None
    return Cdm(url, schema or "main", con, "duckdb")


def _csv_folder(url: str, folder) -> Cdm:
    """Each ``<table>.csv`` of ``folder`` as a table of an in-memory DuckDB (names lower-cased), read as text and
    cast to the CDM v5.4 type of each known column (:mod:`.ddl`); a cell that does not cast is a problem naming
    file, line and column, and is read as missing."""
    import duckdb

    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if not files:
        raise IldStudyError(f"--omop {folder}: the folder has no CSV files (expected one per CDM table: person.csv, "
                            "observation_period.csv, ...)")
    names = [p.stem.lower() for p in files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise IldStudyError(f"--omop {folder}: more than one file for table {', '.join(twice)}")
    con = duckdb.connect(":memory:")
    problems: list[Problem] = []
    for path, name in zip(files, names):
        literal = sql_path_literal(path)
        try:
            con.execute(f'CREATE TEMP TABLE raw AS SELECT row_number() OVER () + 1 AS "_line", * FROM '
                        f"read_csv({literal}, header = true, all_varchar = true)")
        except duckdb.Error as exc:
            con.close()
            raise IldStudyError(f"{path}: cannot be read as a CDM table in CSV: {str(exc).splitlines()[0]}") from None
        header = [r[0] for r in con.execute("DESCRIBE raw").fetchall()][1:]
        types = column_types(name)
        select = []
        for column in header:
            kind = types.get(column.lower())
            cell = f'NULLIF(TRIM("{column}"), \'\')'
            if kind is None or kind == "VARCHAR":
                select.append(f'{cell} AS "{column.lower()}"')
                continue
            for line, value in con.execute(f'SELECT "_line", "{column}" FROM raw WHERE {cell} IS NOT NULL AND '
                                           f'TRY_CAST({cell} AS {kind}) IS NULL ORDER BY 1 LIMIT 20').fetchall():
                problems.append(Problem(file=path.name, row=int(line), column=column.lower(), value=value,
                                        problem=f"is not {_KIND_WORDS.get(kind, kind)} (CDM v5.4 {name}.{column.lower()} "
                                                f"is {kind})"))
            select.append(f'TRY_CAST({cell} AS {kind}) AS "{column.lower()}"')
        con.execute(f'CREATE TABLE "{name}" AS SELECT {", ".join(select)} FROM raw ORDER BY "_line"')
        con.execute("DROP TABLE raw")
    return Cdm(url, "main", con, "duckdb", problems)


_KIND_WORDS = {"BIGINT": "a whole number", "INTEGER": "a whole number", "DATE": "a date (YYYY-MM-DD)",
               "TIMESTAMP": "a date-time", "FLOAT": "a number", "DOUBLE": "a number"}
