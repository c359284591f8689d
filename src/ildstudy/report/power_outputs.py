"""The output folder of ``ildstudy power``: ``power.csv``, ``power.json``, ``replicates.csv``,
``power.svg``/``power.png`` and ``run.json``, written atomically with the ``--out`` rules of
:mod:`ildstudy.report.outdir`.

``power.json``, ``power.csv`` and ``replicates.csv`` depend only on the settings and the code (same
seed, same bytes, whatever the number of workers); ``run.json`` holds the time, host and workers.
"""

from __future__ import annotations

from pathlib import Path

from ildstudy.analysis.power import PowerResult
from ildstudy.report.exports import atomic_output_dir, write_json, write_table
from ildstudy.report.figures_power import write_power_figure


def write_power_outputs(result: PowerResult, out_dir: str | Path, *, run: dict, inputs=()) -> Path:
    """Write the power table, the per-replicate rows, the curve and ``run.json`` (``run``) into ``out_dir``."""
    with atomic_output_dir(Path(out_dir), inputs=inputs, kind="power") as tmp:
        write_json(tmp / "power.json", result.to_dict())
        write_table(result.table(), tmp / "power", xlsx=False)
        write_table(result.replicates, tmp / "replicates", xlsx=False)
        write_power_figure(result, tmp)
        write_json(tmp / "run.json", run)
    return Path(out_dir)
