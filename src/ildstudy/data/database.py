"""Where registry tables live: an embedded DuckDB file or a PostgreSQL server; how a database is named.

A database is named (``--db``) by

- a DuckDB file: a path ending in ``.duckdb`` or ``.db``, a ``duckdb:///abs/path`` URL, or an existing
  DuckDB file under any name;
- a PostgreSQL URL, ``postgresql://user:password@host:port/dbname`` (``postgres://`` too), with libpq
  query parameters (``?sslmode=require``, ``?password=...``); a password may hold a raw ``@`` or ``/``
  (the last ``@`` before the host ends it);
- a libpq key=value connection string, ``host=db.example port=5432 dbname=registry user=me password=...``
  (values with spaces quoted: ``password='a b'``), turned into the equivalent URL.

Passwords are never shown: every URL or connection string that can appear in a message goes through
:func:`mask_dsn`, and driver error texts through :func:`mask_secrets`, so neither the ``user:password@``
part, nor ``password=`` / ``sslpassword=`` values, nor the password's own text reach the user's screen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, unquote_plus

from ildstudy.data.registry import Registry
from ildstudy.errors import EnvironmentFailure, IldStudyError, OutputError

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
DUCKDB_SUFFIXES = (".duckdb", ".db")
MASK = "***"
_SECRET_KEYS = r"(?:\w*pass\w*|pwd)"  # password, sslpassword, and misspellings of them
_QUERY_SECRET = re.compile(rf"([?&;]{_SECRET_KEYS}=)([^&#\s]*)", re.IGNORECASE)
_KV_SECRET = re.compile(rf"(\b{_SECRET_KEYS}\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s']\S*|(?=\s|$))", re.IGNORECASE)
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)[^\s\"']*@")
_KEYVALUE = re.compile(r"^\s*[A-Za-z_]+\s*=")
_DUCKDB_MAGIC = b"DUCK"
_MIN_SECRET = 3  # shorter passwords are masked in DSNs but not searched for in free text


# -- masking --------------------------------------------------------------------------------------

def _split_url(url: str) -> tuple[str, str | None, str] | None:
    """``(scheme://, userinfo or None, rest after the '@')`` of a URL; ``None`` if ``url`` is not one.

    The userinfo ends at the last ``@`` before the query, so ``user:pa@ss@host`` has the password
    ``pa@ss``; a password holding ``?`` is found too (then the last ``@`` of the whole URL is used).
    """
    m = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*://", url)
    if m is None:
        return None
    scheme, rest = m.group(0), url[m.end():]
    head = rest.split("?", 1)[0].split("#", 1)[0]
    at = head.rfind("@") if "@" in head else rest.rfind("@")
    if at < 0:
        return scheme, None, rest
    return scheme, rest[:at], rest[at + 1:]


def is_keyvalue_dsn(text: str) -> bool:
    """Whether ``text`` looks like a libpq ``key=value`` connection string (``host=x dbname=y``)."""
    text = str(text)
    return "://" not in text and bool(_KEYVALUE.match(text)) and not text.lower().endswith(DUCKDB_SUFFIXES)


def mask_dsn(url: str) -> str:
    """A database URL or connection string with every password replaced by ``***``, for messages.

    Parameters
    ----------
    url : str
        A URL (``postgresql://user:secret@host/db``, also with a raw ``@`` in the password and with
        ``?password=`` or ``?sslpassword=`` query parameters), a libpq key=value string
        (``host=x password=secret``, ``password='a b'``) or a file path (returned as it is).

    Returns
    -------
    str

    Examples
    --------
    >>> mask_dsn("postgresql://me:pa@ss@db.example:5432/registry")
    'postgresql://me:***@db.example:5432/registry'
    >>> mask_dsn("postgresql://me@db.example/registry?sslmode=require&password=secret")
    'postgresql://me@db.example/registry?sslmode=require&password=***'
    >>> mask_dsn("host=db.example user=me password='a b' dbname=registry")
    'host=db.example user=me password=*** dbname=registry'
    """
    text = str(url)
    parts = _split_url(text)
    if parts is not None:
        scheme, userinfo, rest = parts
        if userinfo is not None:
            user, colon, _ = userinfo.partition(":")
            text = f"{scheme}{user}{':' + MASK if colon else ''}@{rest}"
        return _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
    return _KV_SECRET.sub(lambda m: m.group(1) + MASK, text)


def dsn_secrets(url: str) -> list[str]:
    """The passwords written in ``url`` (as written and decoded), longest first; for :func:`mask_secrets`."""
    text = str(url)
    found: list[str] = []
    parts = _split_url(text)
    if parts is not None:
        _, userinfo, _ = parts
        if userinfo is not None and ":" in userinfo:
            raw = userinfo.split(":", 1)[1]
            found += [raw, unquote(raw), unquote_plus(raw)]
        for m in _QUERY_SECRET.finditer(text):
            found += [m.group(2), unquote(m.group(2)), unquote_plus(m.group(2))]
    else:
        for m in _KV_SECRET.finditer(text):
            value = m.group(2)
            found += [value, _unquote_kv(value)]
    unique = {s for s in found if len(s) >= _MIN_SECRET}
    return sorted(unique, key=len, reverse=True)


def mask_secrets(text: str, *urls: str) -> str:
    """``text`` (e.g. a driver's error message) with each of ``urls`` and each of their passwords masked.

    Also masks, anywhere in ``text``, the password of any ``scheme://user:password@`` URL and any
    ``password=`` / ``sslpassword=`` value.
    """
    text = str(text)
    for url in urls:
        url = str(url)
        if url:
            text = text.replace(url, mask_dsn(url))
    for url in urls:
        for secret in dsn_secrets(url):
            text = text.replace(secret, MASK)
    text = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _QUERY_SECRET.sub(lambda m: m.group(1) + MASK, text)
    return _KV_SECRET.sub(lambda m: m.group(1) + MASK, text)


def driver_error(exc: BaseException, *urls: str) -> str:
    """The first line of a driver's exception, with every password of ``urls`` masked."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return mask_secrets(first, *urls)


# -- PostgreSQL URLs --------------------------------------------------------------------------------

def _unquote_kv(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1]
    return re.sub(r"\\(.)", r"\1", value)


def postgres_url(text: str) -> str | None:
    """The ``postgresql://`` URL to give the drivers for ``text``, or ``None`` if it names no PostgreSQL database.

    A URL gets its user and password percent-encoded (so a raw ``@``, ``/`` or ``+`` in the password
    reaches the server as written); a libpq key=value string becomes the equivalent URL.

    Raises
    ------
    IldStudyError
        ``text`` looks like a key=value string but is not a valid one (the message masks passwords).
    """
    text = str(text).strip()
    if text.startswith(POSTGRES_SCHEMES):
        _, userinfo, rest = _split_url(text)
        if userinfo is None:
            return "postgresql://" + rest
        user, colon, password = userinfo.partition(":")
        auth = quote(unquote(user), safe="") + (":" + quote(unquote(password), safe="") if colon else "")
        return f"postgresql://{auth}@{rest}"
    if not is_keyvalue_dsn(text):
        return None
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = {k: str(v) for k, v in conninfo_to_dict(text).items()}
    except Exception:  # noqa: BLE001 - psycopg's message may quote the password; give our own
        raise IldStudyError(f"--db {mask_dsn(text)}: not a valid key=value connection string "
                            "(write it as host=HOST port=PORT dbname=NAME user=USER, or as a postgresql:// URL)"
                            ) from None
    user, password = params.pop("user", None), params.pop("password", None)
    host, port = params.pop("host", ""), params.pop("port", None)
    dbname = params.pop("dbname", "")
    auth = ""
    if user is not None or password is not None:
        auth = quote(user or "", safe="") + (":" + quote(password, safe="") if password is not None else "") + "@"
    netloc = (f"[{host}]" if ":" in host else quote(host, safe=",")) + (f":{port}" if port else "")
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params.items())
    return f"postgresql://{auth}{netloc}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")


def duckdb_path(url: str) -> Path | None:
    """The DuckDB file a URL names, or ``None`` when it names another kind of database."""
    url = str(url)
    if url.startswith("duckdb://"):
        return Path(url[len("duckdb://"):])
    if "://" in url or is_keyvalue_dsn(url):
        return None
    return Path(url)


def sql_path_literal(path) -> str:
    """``path`` as a single-quoted SQL string literal (quotes doubled), for DuckDB's ``read_csv`` / ``COPY ... TO``."""
    return "'" + str(path).replace("'", "''") + "'"


def is_duckdb_file(path: Path) -> bool:
    """Whether ``path`` is a DuckDB database file (its header carries DuckDB's magic bytes)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    return head[8:12] == _DUCKDB_MAGIC


def duckdb_target(url: str) -> Path:
    """The DuckDB file ``load --db url`` may write, after checking it is safe to write.

    Raises
    ------
    OutputError
        ``url`` names an existing file that is not a DuckDB database (a CSV, notes, ...), a folder,
        or a new file whose name does not end in ``.duckdb``/``.db`` (and is not a ``duckdb://`` URL).
        Nothing is written then.
    """
    path = duckdb_path(url)
    if path is None:
        raise OutputError(f"--db {mask_dsn(url)}: not a DuckDB file path or postgresql:// URL")
    if path.is_dir():
        raise OutputError(f"--db {path}: is a folder, not a DuckDB database file")
    if path.exists():
        if not is_duckdb_file(path):
            raise OutputError(f"--db {path}: not a DuckDB database file (the file exists and holds something "
                              "else; it was left untouched). Give a new path ending in .duckdb")
        return path
    if not str(url).startswith("duckdb://") and path.suffix.lower() not in DUCKDB_SUFFIXES:
        raise OutputError(f"--db {path}: not a DuckDB database file name: a new database must end in "
                          f"{' or '.join(DUCKDB_SUFFIXES)} (or be given as duckdb:///path)")
    return path


# -- loading ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class LoadedDatabase:
    """What a load wrote, as counted back from the database after the load.

    ``where`` is the database's display name (passwords masked); ``rows`` maps each table written to the
    number of rows the database now holds in it.
    """

    where: str
    rows: dict[str, int]


def load_into(registry: Registry, url: str) -> LoadedDatabase:
    """Write every table of ``registry`` into the database ``url`` and check that they are all there.

    Parameters
    ----------
    registry : Registry
        Typed, validated tables (:func:`ildstudy.data.load_registry`).
    url : str
        A DuckDB file, ``postgresql://`` URL or key=value connection string (see the module docstring).

    Returns
    -------
    LoadedDatabase
        The tables and row counts read back from the database.

    Raises
    ------
    OutputError
        The target is not a DuckDB file name or is an existing non-DuckDB file (left untouched), the write
        failed, or a table is missing or short after the load.
    EnvironmentFailure
        The operating system refused to create the file (permission, disk full); the message gives why.
    """
    from ildstudy.data.parquet import SPARK_SCHEMES, spark_tables_folder, write_parquet_tables

    pg = None if str(url).strip().lower().startswith(SPARK_SCHEMES) else postgres_url(url)
    if pg is not None:
        from ildstudy.data.postgres import load_registry_postgres

        where, counts = load_registry_postgres(registry, url)
    elif str(url).strip().lower().startswith(SPARK_SCHEMES):  # Spark reads typed Parquet: write the folder
        folder = spark_tables_folder(url)
        if folder is None:
            raise OutputError(f"--db {mask_dsn(url)}: for Spark, name the folder to write: ?tables=FOLDER")
        where, counts = str(folder), write_parquet_tables(registry, folder)
    else:
        path = duckdb_target(url)
        where, counts = str(path), _write_duckdb(registry, path)
    expected = {name: len(frame) for name, frame in registry.tables.items()}
    wrong = [f"{name} ({counts.get(name, 'missing')} rows, expected {n})"
             for name, n in expected.items() if counts.get(name) != n]
    if wrong:
        raise OutputError(f"--db {where}: after loading, the database does not hold every table: {', '.join(wrong)}")
    return LoadedDatabase(where, {name: counts[name] for name in expected})


def write_registry_to(registry: Registry, url: str) -> str:
    """Write every table of ``registry`` into the database at ``url`` (checked); return a display name.

    See :func:`load_into`, which also returns the row counts read back.
    """
    return load_into(registry, url).where


def _write_duckdb(registry: Registry, path: Path) -> dict[str, int]:
    """Write the tables in one transaction; a new file is removed again if the load fails."""
    import duckdb

    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentFailure(f"--db {path}: cannot create its folder: {exc.strerror or exc}") from None
    try:
        con = duckdb.connect(str(path))
    except duckdb.Error as exc:
        raise OutputError(f"--db {path}: cannot open the DuckDB file: {_first_line(exc)}") from None
    try:
        con.execute("BEGIN TRANSACTION")
        registry.to_duckdb(con)
        con.execute("COMMIT")
        return {name: int(con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0])
                for (name,) in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema = current_schema()").fetchall()}
    except duckdb.Error as exc:
        con.close()
        con = None
        if not existed:
            for leftover in (path, path.with_name(path.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise OutputError(f"--db {path}: writing the DuckDB file failed: {_first_line(exc)}") from None
    finally:
        if con is not None:
            con.close()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
