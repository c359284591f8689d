"""Write a synthetic registry to files: CSV, Parquet, XLSX or one DuckDB database, plus ``truth.json``.

The folder is written atomically and only where ``--out`` rules allow (:mod:`ildstudy.report.outdir`).
Same seed, same bytes: CSV and Parquet are written from Arrow (no timestamps in Parquet metadata);
XLSX workbooks get fixed document properties and fixed ZIP entry times. CSV and Parquet are streamed
block by block, so a million patients never sit in memory as one table.
"""

from __future__ import annotations

import datetime as dt
import errno
import io
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ildstudy.data.schema import TABLES_BY_NAME
from ildstudy._xlsx import deterministic_xlsx
from ildstudy.errors import EnvironmentFailure, IldStudyError
from ildstudy.synth.columns import concat_tables, to_arrow, to_pandas
from ildstudy.synth.generate import BLOCK, TABLE_NAMES, PlannedRegistry
from ildstudy.synth.truth import Truth

Format = Literal["csv", "parquet", "xlsx", "duckdb", "omop", "omop-csv"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "xlsx", "duckdb", "omop", "omop-csv")
Design = Literal["balanced", "sampled"]
DESIGNS: tuple[str, ...] = ("balanced", "sampled")
SUFFIX = {"csv": ".csv", "parquet": ".parquet", "xlsx": ".xlsx"}
EXCEL_MAX_ROWS = 1_048_575
#: the fixed time written into XLSX files (document properties and ZIP entries)
FIXED_TIME = dt.datetime(2019, 1, 1, 0, 0, 0)


def write_registry(out_dir: str | Path, *, n_patients: int | None = None, seed: int = 2019,
                   fmt: Format = "csv", protocol=None, design: Design | None = None,
                   confounding: float = 0.0) -> Truth:
    """Write a synthetic registry and its ``truth.json`` into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Output folder: new, empty, or an earlier ildstudy output (then replaced). It is written
        atomically (a partial sibling folder, renamed when complete; nothing is left behind on
        failure), and refused like any ``--out`` when it is a file or a user's non-empty folder
        (see :mod:`ildstudy.report.outdir`).
    n_patients : int or None
        ``None``: the default registry calibrated to the published study (see
        :func:`~ildstudy.synth.generate_registry`); otherwise the number of patients.
    seed : int
        Seed of ``numpy.random.default_rng``; the same seed writes the same bytes.
    fmt : {"csv", "parquet", "xlsx", "duckdb", "omop", "omop-csv"}
        One file per table (``patients.csv`` ...), one ``registry.duckdb`` with typed tables, or (omop) an OMOP CDM
        v5.4 in ``cdm.duckdb``, (omop-csv) the same CDM as one CSV file per table (:mod:`ildstudy.synth.omop_export`).
    protocol : Protocol, optional
        Default: the built-in ``huapaya2019_published``, the published reading the registry is calibrated to
        (its planted ineligible patients fail exactly the published steps; under the default ``huapaya2019``
        the planted later add-ons and follow-up failures stay in the cohort).
    design : {"balanced", "sampled"}, optional
        ``"balanced"``: the outcome data are built so that the study's mixed models recover the planted
        fixed effects up to rounding (:mod:`ildstudy.synth.balance`; at most 50,000 patients);
        ``"sampled"``: random effects and residuals drawn independently, as a recovery or power study
        needs. Default: balanced for the default registry (``n_patients`` None), sampled otherwise.
        ``truth.json`` records it as ``design``.
    confounding : float, optional
        Strength of planted confounding by indication (:mod:`ildstudy.synth.confounding`; 0: none). Needs a
        sampled design (the default with ``n_patients``); ``truth.json`` gains a ``confounding`` block.

    Returns
    -------
    Truth
        Also written to ``out_dir/truth.json``.

    Raises
    ------
    OutputError
        ``out_dir`` must not be used (nothing is written).
    EnvironmentFailure
        The operating system refused a write (disk full, read-only, ...); ``out_dir`` is left as it was.

    Examples
    --------
    >>> import tempfile
    >>> truth = write_registry(tempfile.mkdtemp(), seed=2019, fmt="csv")
    >>> truth.arms
    {'AZA': 66, 'MMF': 44}
    """
    if fmt not in FORMATS:
        raise IldStudyError(f"--format {fmt}: unknown format; choose one of {', '.join(FORMATS)}")
    if design not in (None, *DESIGNS):
        raise IldStudyError(f"--design {design}: unknown design; choose one of {', '.join(DESIGNS)}")
    if design == "balanced" and n_patients is not None and n_patients > BLOCK:
        raise IldStudyError(f"--design balanced: a balanced registry has at most {BLOCK:,} patients "
                            f"(asked for {n_patients:,}); use --design sampled")
    if confounding and (design == "balanced" or (design is None and n_patients is None)):
        raise IldStudyError("--confounding needs a sampled registry: give --patients N or --design sampled")
    if protocol is None:
        from ildstudy.protocol import load_protocol

        protocol = load_protocol("huapaya2019_published")
    from ildstudy.report.outdir import atomic_output_dir

    with atomic_output_dir(out_dir, kind="registry") as out:
        balanced = None if design is None else design == "balanced"
        gen = PlannedRegistry(n_patients, np.random.default_rng(seed), protocol, balanced=balanced,
                              confounding=confounding)
        if fmt == "csv":
            _write_streamed(gen, out, _CsvSink)
        elif fmt == "parquet":
            _write_streamed(gen, out, _ParquetSink)
        elif fmt == "xlsx":
            _write_xlsx(gen, out)
        elif fmt in ("omop", "omop-csv"):
            _write_omop(gen, out, protocol, csv=fmt == "omop-csv")
        else:
            _write_duckdb(gen, out / "registry.duckdb")
        truth = gen.truth
        truth = Truth(**{**truth.__dict__, "seed": seed})
        (out / "truth.json").write_text(truth.to_json(), encoding="utf-8")
    return truth


class _CsvSink:
    """CSV: a header line, then unquoted rows (no generated value holds a comma, quote or line break;
    Arrow refuses to write one that does), ISO dates, empty cells for missing values."""

    def __init__(self, path: Path, name: str):
        self.fh = open(path.with_suffix(".csv"), "wb")
        self.fh.write((",".join(TABLES_BY_NAME[name].column_names) + "\n").encode())
        self.options = pacsv.WriteOptions(include_header=False, quoting_style="none")

    def write(self, table: pa.Table) -> None:
        pacsv.write_csv(table, self.fh, self.options)

    def close(self) -> None:
        self.fh.close()


class _ParquetSink:
    """Parquet: one row group per block of patients, no creation time in the metadata."""

    def __init__(self, path: Path, name: str):
        self.path = path.with_suffix(".parquet")
        self.writer = None

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _write_streamed(gen: PlannedRegistry, out: Path, sink_type) -> None:
    """Write block after block; one background thread converts and writes a block while the next one is
    generated (blocks are written in order, so the bytes do not depend on timing)."""
    sinks = {name: sink_type(out / name, name) for name in TABLE_NAMES}

    def write(block: dict) -> None:
        for name in TABLE_NAMES:
            sinks[name].write(to_arrow(name, block[name]))

    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            for block in gen.blocks():
                if pending is not None:
                    pending.result()
                pending = pool.submit(write, block)
            if pending is not None:
                pending.result()
    finally:
        for s in sinks.values():
            s.close()


def _whole_tables(gen: PlannedRegistry) -> dict[str, dict]:
    blocks = list(gen.blocks())
    return {name: concat_tables([b[name] for b in blocks]) for name in TABLE_NAMES}


def _write_xlsx(gen: PlannedRegistry, out: Path) -> None:
    """One workbook per table, one sheet named after the table; dates as Excel dates (yyyy-mm-dd)."""
    import pandas as pd

    for name, table in _whole_tables(gen).items():
        frame = to_pandas(name, table)
        if len(frame) > EXCEL_MAX_ROWS:
            raise IldStudyError(f"{name}: {len(frame)} rows do not fit in one Excel sheet "
                                f"({EXCEL_MAX_ROWS} at most); use --format csv or parquet")
        for col in frame.columns:                       # nullable booleans -> True/False/empty cells
            if str(frame[col].dtype) == "boolean":
                frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
        buffer = io.BytesIO()
        with pd.ExcelWriter(buffer, engine="openpyxl", date_format="yyyy-mm-dd",
                            datetime_format="yyyy-mm-dd") as writer:
            frame.to_excel(writer, sheet_name=name, index=False)
        (out / f"{name}.xlsx").write_bytes(deterministic_xlsx(buffer.getvalue(), FIXED_TIME.timetuple()[:6]))


def _write_omop(gen: PlannedRegistry, out: Path, protocol, csv: bool = False) -> None:
    """An OMOP CDM v5.4 in ``cdm.duckdb``, or (``csv``) as ``person.csv``, ``measurement.csv``, ... in ``out``
    (:mod:`ildstudy.synth.omop_export`): the canonical tables are written and loaded as usual (so the CDM holds
    what the loader reads), then converted."""
    import tempfile

    from ildstudy.data.load import load_registry
    from ildstudy.synth.omop_export import write_cdm, write_cdm_csv

    with tempfile.TemporaryDirectory(prefix="ildstudy-omop-") as tmp:
        _write_streamed(gen, Path(tmp), _CsvSink)
        if csv:
            write_cdm_csv(load_registry(tmp), out, protocol)
        else:
            write_cdm(load_registry(tmp), out / "cdm.duckdb", protocol)


_OS_REFUSALS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)


def _write_duckdb(gen: PlannedRegistry, path: Path) -> None:
    """Typed tables, as ``ildstudy load`` writes them: each block typed by the loader and appended."""
    import duckdb

    from ildstudy.data.coerce import coerce_table
    from ildstudy.data.readers import RawTable
    from ildstudy.data.registry import Registry

    if path.exists():
        path.unlink()
    con = duckdb.connect(str(path))
    try:
        for i, block in enumerate(gen.blocks()):
            typed = {}
            for name in TABLE_NAMES:
                raw = RawTable(TABLES_BY_NAME[name], path, to_pandas(name, block[name]), 2)
                typed[name], _ = coerce_table(raw)
            if i == 0:
                Registry(typed).to_duckdb(con)
                continue
            con.execute("CREATE SCHEMA IF NOT EXISTS ildstudy_block")
            con.execute("SET schema = 'ildstudy_block'")
            Registry(typed).to_duckdb(con)
            con.execute("SET schema = 'main'")
            for name in TABLE_NAMES:
                con.execute(f'INSERT INTO main."{name}" SELECT * FROM ildstudy_block."{name}"')
        con.execute("DROP SCHEMA IF EXISTS ildstudy_block CASCADE")
    except duckdb.Error as exc:  # DuckDB reports a full disk or read-only file system in its own exceptions
        reason = next((os.strerror(code) for code in _OS_REFUSALS if os.strerror(code) in str(exc)), None)
        if reason is None:
            raise
        raise EnvironmentFailure(f"cannot write {path.name}: {reason} ({exc})") from exc
    finally:
        con.close()
