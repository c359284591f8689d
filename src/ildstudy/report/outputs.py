"""Write everything a study run produces into its output folder, atomically.

Layout: ``report.html`` · ``results.json`` (byte-identical on rerun) · ``run.json`` (time, host,
versions, input hashes) · ``attrition.csv`` · ``tables/*.csv|xlsx`` · ``figures/*.svg|png`` ·
``share/`` (tables meant to leave the centre, counts below ``min_cell`` shown as ``"<min_cell"``).
"""

from __future__ import annotations

import datetime as dt
import platform
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ildstudy.analysis.result import StudyResult
from ildstudy.analysis.serialize import results_document, study_tables
from ildstudy.report.html import write_report
from ildstudy.report.exports import atomic_output_dir, write_json, write_table, write_tables
from ildstudy.report.share import write_share

PEERS = ("numpy", "scipy", "pandas", "duckdb", "ibis-framework", "formulaic", "matplotlib")


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in ("ildstudy", *PEERS):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_study_outputs(result: StudyResult, out_dir: Path, *, min_cell: int = 5,
                        started: dt.datetime | None = None, include: dict[str, Path] | None = None,
                        inputs=(), kind: str = "study") -> Path:
    """Write all outputs of ``result`` into ``out_dir`` (replacing it only when complete).

    ``include`` maps sub-folder names to folders copied in as they are (the demo's registry).
    ``inputs`` are the paths the run read; ``out_dir`` must not be or contain one of them, and
    must be new, empty or an earlier ildstudy output (see :mod:`ildstudy.report.outdir`).
    """
    started = started or dt.datetime.now(dt.timezone.utc)
    with atomic_output_dir(Path(out_dir), inputs=inputs, kind=kind) as tmp:
        for name, folder in (include or {}).items():
            shutil.copytree(folder, tmp / name)
        document, tables = results_document(result), study_tables(result)  # the one serializer
        write_json(tmp / "results.json", document)
        write_table(result.attrition, tmp / "attrition", xlsx=False)
        write_tables(tables, tmp / "tables")

        write_share({"attrition": result.attrition, **tables}, document, tmp / "share", min_cell)
        write_report(result, tmp)
        finished = dt.datetime.now(dt.timezone.utc)
        write_json(tmp / "run.json", {
            "started": started.isoformat(timespec="seconds"),
            "finished": finished.isoformat(timespec="seconds"),
            "seconds": round((finished - started).total_seconds(), 3),
            "host": platform.node(),
            "platform": platform.platform(),
            "versions": _versions(),
            **result.provenance,
            "min_cell": min_cell,
        })
    return Path(out_dir)


def write_stopped_outputs(attrition, reason: str, out_dir: Path, *, inputs=(), kind: str = "study") -> Path:
    """A study that stopped at the cohort (empty or too-small arm): ``attrition.csv`` and a README only.

    Written with the same rules and atomic replace as :func:`write_study_outputs`, so that the user
    sees which step emptied the cohort; no report, tables or share/ are written.
    """
    import pandas as pd

    with atomic_output_dir(Path(out_dir), inputs=inputs, kind=kind) as tmp:
        if attrition is not None:
            write_table(pd.DataFrame(attrition), tmp / "attrition", xlsx=False)
        note = "attrition.csv shows how many patients each step removed." if attrition is not None else ""
        (tmp / "README.txt").write_text(f"The study stopped before the analyses: {reason}\n{note}\n".rstrip() + "\n",
                                        encoding="utf-8")
    return Path(out_dir)
