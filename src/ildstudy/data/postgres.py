"""Write a registry's typed tables into PostgreSQL.

``ildstudy load DATA --db postgresql://user:password@host:port/dbname`` calls
:func:`write_registry_postgres`: every canonical table is (re)created with real SQL types (TEXT, DATE,
BOOLEAN, DOUBLE PRECISION) and filled with ``COPY``, all in one transaction -- a failed load leaves the
database as it was. The cohort then runs inside the server (:func:`ildstudy.cohort.build_cohort` with the same
URL). Tables go into the connection's current schema (``public`` unless the URL sets ``search_path``, e.g.
``?options=-csearch_path%3Dstudy``).
"""

from __future__ import annotations

import csv
import io

import pandas as pd

from ildstudy.data.database import driver_error, mask_dsn, postgres_url
from ildstudy.data.registry import Registry
from ildstudy.data.schema import TABLES_BY_NAME
from ildstudy.errors import IldStudyError

PG_TYPES = {"id": "TEXT", "text": "TEXT", "category": "TEXT", "date": "DATE", "bool": "BOOLEAN",
            "number": "DOUBLE PRECISION"}
_CHUNK_ROWS = 200_000


def _connect(url: str):
    """Connect to ``url`` (a URL or key=value string); errors never show its password."""
    import psycopg

    conninfo = postgres_url(url) or url
    try:
        return psycopg.connect(conninfo, connect_timeout=10)
    except psycopg.Error as exc:
        raise IldStudyError(f"--db {mask_dsn(url)}: cannot connect: {driver_error(exc, url, conninfo)}") from None


def _csv_chunks(frame: pd.DataFrame, kinds: list[str]):
    """The frame as CSV text for ``COPY ... (FORMAT csv)``: empty unquoted field = NULL."""
    out = {}
    for (name, s), kind in zip(frame.items(), kinds):
        if kind == "date":
            out[name] = s.dt.strftime("%Y-%m-%d")
        elif kind == "bool":
            out[name] = s.astype("boolean").map({True: "t", False: "f"}, na_action="ignore")
        elif kind == "number":
            out[name] = s.astype("float64").map(repr, na_action="ignore")
        else:
            out[name] = s.astype(object).where(s.notna(), None)
    text = pd.DataFrame(out, index=frame.index)
    for start in range(0, len(text), _CHUNK_ROWS):
        buf = io.StringIO()
        # Missing values are written as unquoted empty fields, which COPY reads as NULL. (Typed registry
        # tables hold no empty strings: an empty cell is missing.)
        text.iloc[start:start + _CHUNK_ROWS].to_csv(buf, header=False, index=False, quoting=csv.QUOTE_MINIMAL,
                                                    na_rep="", lineterminator="\n")
        yield buf.getvalue()


def write_registry_postgres(registry: Registry, url: str) -> str:
    """(Re)create every table of ``registry`` in PostgreSQL; see :func:`load_registry_postgres`.

    Returns the URL with its password masked, for messages.
    """
    return load_registry_postgres(registry, url)[0]


def load_registry_postgres(registry: Registry, url: str) -> tuple[str, dict[str, int]]:
    """(Re)create every table of ``registry`` in the PostgreSQL database at ``url``.

    Parameters
    ----------
    registry : Registry
        Typed, validated tables (:func:`ildstudy.data.load_registry`).
    url : str
        ``postgresql://user:password@host:port/dbname`` (``postgres://`` works too); query parameters such as
        ``?options=-csearch_path%3Dschema`` are passed to libpq.

    Returns
    -------
    tuple of (str, dict of str to int)
        The URL with its password masked, for messages, and the number of rows each table holds
        afterwards, counted by the server.

    Raises
    ------
    IldStudyError
        The server cannot be reached or refuses the load (nothing is changed then).

    Examples
    --------
    >>> from ildstudy.data import load_registry                                           # doctest: +SKIP
    >>> load_registry_postgres(load_registry("registry"), "postgresql://ildstudy:ildstudy@localhost/ildstudy")
    ... # doctest: +SKIP
    ('postgresql://ildstudy:***@localhost/ildstudy', {'patients': 500, ...})
    """
    import psycopg
    from psycopg import sql

    con = _connect(url)
    try:
        with con.transaction():
            for name, frame in registry.tables.items():
                spec = TABLES_BY_NAME[name]
                cols = [c.name for c in spec.columns]
                kinds = [c.kind for c in spec.columns]
                con.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
                con.execute(sql.SQL("CREATE TABLE {} ({})").format(
                    sql.Identifier(name),
                    sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(PG_TYPES[c.kind]))
                                       for c in spec.columns)))
                copy = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                    sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, cols)))
                with con.cursor() as cur, cur.copy(copy) as writer:
                    for chunk in _csv_chunks(frame[cols], kinds):
                        writer.write(chunk)
                con.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
        counts = {}
        for name in registry.tables:
            exists = con.execute("SELECT to_regclass(%s) IS NOT NULL", [sql.Identifier(name).as_string(con)])
            if exists.fetchone()[0]:
                query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(name))
                counts[name] = int(con.execute(query).fetchone()[0])
    except psycopg.Error as exc:
        raise IldStudyError(f"--db {mask_dsn(url)}: loading the registry failed: {driver_error(exc, url)}") from None
    finally:
        con.close()
    return mask_dsn(url), counts
