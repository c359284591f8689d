"""The recovery study script (benchmarks/recovery/run.py) keeps working: 2 small replicates end to end.

No coverage assertion here (2 replicates say nothing about coverage); docs/validation.md has the real run.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "recovery" / "run.py"
OUTCOMES = {"fvc_pct_pred", "dlco_pct_pred", "prednisone_mg"}


def _load():
    spec = importlib.util.spec_from_file_location("recovery_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_recovery_two_small_replicates(tmp_path, capsys):
    run = _load()
    code = run.main(["--reps", "2", "--patients", "60", "--seed", "7", "--jobs", "1", "--quiet",
                     "--out", str(tmp_path)])
    assert code == 0
    label = run.label_for(60, 7, 2)
    reps = pd.read_csv(tmp_path / f"{label}_reps.csv")
    meta = json.loads((tmp_path / f"{label}_meta.json").read_text())
    assert meta["failed"] == []
    assert set(reps["outcome"]) == OUTCOMES
    assert sorted(reps["seed"].unique()) == [7, 8]
    at36 = reps[reps["month"] == 36]
    assert len(at36) == 2 * len(OUTCOMES)
    # the truth is the generator's planted AZA - MMF difference, the estimate the pipeline's
    truth = at36.groupby("outcome")["truth"].first().to_dict()
    assert truth == {"fvc_pct_pred": 1.9, "dlco_pct_pred": -8.2, "prednisone_mg": -6.6}
    assert (at36["se"] > 0).all() and (at36["ci_low"] < at36["estimate"]).all()
    assert (at36["estimate"] < at36["ci_high"]).all()
    assert at36["covered"].isin([True, False]).all()

    summary = pd.read_csv(tmp_path / f"{label}_summary.csv")
    row = summary[(summary["outcome"] == "prednisone_mg") & (summary["month"] == 36)].iloc[0]
    assert row["reps"] == 2 and 0.0 <= row["coverage"] <= 1.0
    assert abs(row["bias"] - (row["mean_estimate"] - row["truth"])) < 1e-9
    printed = capsys.readouterr().out
    assert "| prednisone_mg | 36 | 2 |" in printed
    assert (tmp_path / f"{label}_summary.md").read_text().strip() == printed.strip()


def test_in_memory_registry_matches_the_loader(tmp_path):
    """The in-memory path (generate + type + validate) gives the same registry as writing CSV and loading it."""
    import numpy as np

    from ildstudy.data import load_registry
    from ildstudy.protocol import load_protocol
    from ildstudy.synth import generate_registry, write_registry

    run = _load()
    protocol = load_protocol("huapaya2019")
    tables, _ = generate_registry(40, np.random.default_rng(3), protocol, balanced=False)
    in_memory = run.registry_in_memory(tables)
    write_registry(tmp_path, n_patients=40, seed=3, protocol=protocol)
    from_files = load_registry(tmp_path)
    assert in_memory.sha256() == from_files.sha256()
