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
from ildstudy.report.html import write_report
from ildstudy.report.exports import atomic_output_dir, suppress_small_counts, write_json, write_table, write_tables

PEERS = ("numpy", "scipy", "pandas", "duckdb", "ibis-framework", "formulaic", "lifelines", "matplotlib")


def _versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in ("ildstudy", *PEERS):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def write_study_outputs(result: StudyResult, out_dir: Path, *, min_cell: int = 5,
                        started: dt.datetime | None = None, include: dict[str, Path] | None = None) -> Path:
    """Write all outputs of ``result`` into ``out_dir`` (replacing it only when complete).

    ``include`` maps sub-folder names to folders copied in as they are (the demo's registry).
    """
    started = started or dt.datetime.now(dt.timezone.utc)
    with atomic_output_dir(Path(out_dir)) as tmp:
        for name, folder in (include or {}).items():
            shutil.copytree(folder, tmp / name)
        write_json(tmp / "results.json", result.results)
        write_table(result.attrition, tmp / "attrition", xlsx=False)
        write_tables(result.tables, tmp / "tables")

        def shareable(name, frame):
            return suppress_small_counts(frame, result.count_columns.get(name, []), min_cell,
                                         result.linked_columns.get(name))

        share = {"attrition": result.attrition, **result.tables}
        write_tables(share, tmp / "share", transform=shareable)
        (tmp / "share" / "README.txt").write_text(
            f"Tables meant to leave the centre: counts between 1 and {min_cell - 1} are shown as "
            f"'<{min_cell}'. No patient identifiers or dates.\n", encoding="utf-8")
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
