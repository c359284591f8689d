"""A registry as a folder of typed Parquet tables: what Spark (``--db spark://...?tables=FOLDER``) reads.

``ildstudy load DATA --db "spark://local[2]?tables=FOLDER"`` checks the registry and writes one Parquet
file per canonical table into ``FOLDER`` with SQL types (``date``, ``double``, ``boolean``, ``string``),
so the cohort on Spark sees exactly the values the loader typed -- the same tables DuckDB and PostgreSQL
get from ``load``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from ildstudy.data.registry import Registry
from ildstudy.data.schema import TABLES_BY_NAME
from ildstudy.errors import EnvironmentFailure, OutputError

SPARK_SCHEMES = ("spark://", "sc://")


def _arrow_type(kind: str):
    import pyarrow as pa

    return {"date": pa.date32(), "bool": pa.bool_(), "number": pa.float64()}.get(kind, pa.string())


def spark_tables_folder(url: str) -> Path | None:
    """The ``tables=`` folder of a ``spark://`` / ``sc://`` URL; ``None`` for other URLs or without one."""
    text = str(url).strip()
    if not text.lower().startswith(SPARK_SCHEMES):
        return None
    query = text.partition("?")[2]
    params = {k: unquote(v) for k, v in parse_qsl(query, keep_blank_values=True)}
    return Path(params["tables"]).expanduser() if params.get("tables") else None


def write_parquet_tables(registry: Registry, folder: str | Path) -> dict[str, int]:
    """Write each table of ``registry`` as ``FOLDER/<table>.parquet`` (replacing it); return rows read back.

    Each file is written under a temporary name and renamed into place, so a reader never sees half a table.

    Raises
    ------
    OutputError
        ``folder`` exists and is not a folder.
    EnvironmentFailure
        The operating system refused to write (permission, disk full).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"tables={folder}: exists and is not a folder")
    counts: dict[str, int] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in registry.tables.items():
            spec = TABLES_BY_NAME[name]
            arrays, fields = [], []
            for col in spec.columns:
                kind = _arrow_type(col.kind)
                values = frame[col.name]
                if col.kind == "date":
                    values = values.dt.date
                arrays.append(pa.array(values.astype(object).where(values.notna(), None).tolist(), type=kind))
                fields.append(pa.field(col.name, kind))
            target = folder / f"{name}.parquet"
            partial = folder / f".{name}.parquet.partial"
            pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), partial)
            os.replace(partial, target)
            counts[name] = pq.read_metadata(target).num_rows
    except OSError as exc:
        raise EnvironmentFailure(f"tables={folder}: cannot write: {exc.strerror or exc}") from None
    return counts
