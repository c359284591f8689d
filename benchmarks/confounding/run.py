"""Recovery under planted confounding by indication: is the naive contrast biased, and do weighting and matching
recover the truth?

    python benchmarks/confounding/run.py                    # 200 replicates, 400 patients, strength 1.0
    python benchmarks/confounding/run.py --reps 20 --patients 300 --strength 1.5

Each replicate: ``generate_registry(N, default_rng(seed + rep), huapaya2019, balanced=False, confounding=s)``
(:mod:`ildstudy.synth.confounding`: lower latent FVC/DLCO raises the odds of AZA; the true AZA - MMF difference
is ``months_arm x month``, ``truth.json``'s ``arm_differences``), loaded and validated like files, the cohort of
``huapaya2019``, then

* ``lmm``: the study's primary mixed model (covariates sex, age, antisynthetase, smoking; no baseline lung
  function) -- the naive analysis;
* ``none``, ``overlap``, ``iptw_ate``, ``iptw_att``, ``matching``: the fixed-effects model with the same covariates,
  unweighted or under each design (:func:`ildstudy.analysis.confounding.study.study_confounding`; propensity score
  on the model covariates + baseline FVC, DLCO and diagnosis, complete cases), cluster-robust HC1 SEs.

Writes ``benchmarks/confounding/out/<label>/{rows.csv,summary.csv,summary.md}``: per outcome and analysis at 36
months, bias, empirical SD, mean SE, RMSE and the coverage of the 95% intervals (exact Clopper–Pearson interval of
the coverage). Runs on one core (about 2 s per replicate).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
MONTH = 36.0
OUTCOMES = ("fvc_pct_pred", "dlco_pct_pred")
DESIGNS = ("overlap", "iptw_ate", "iptw_att", "matching")


def one_rep(rep: int, seed: int, n_patients: int, strength: float) -> list[dict]:
    from ildstudy.analysis.confounding.study import study_confounding
    from ildstudy.analysis.trajectories import fit_outcome, model_frame
    from ildstudy.cohort import build_cohort
    from ildstudy.data.load import registry_from_frames
    from ildstudy.protocol import Confounding, load_protocol
    from ildstudy.synth import generate_registry

    protocol = load_protocol("huapaya2019")
    protocol = protocol.model_copy(update={
        "outcomes": tuple(o for o in protocol.outcomes if o.name in OUTCOMES), "sensitivity": (),
        "confounding": Confounding(design="overlap", also=DESIGNS[1:], caliper=0.2, ratio=1, replace=True)})
    tables, truth = generate_registry(n_patients, np.random.default_rng(seed + rep), protocol, balanced=False,
                                      confounding=strength)
    cohort = build_cohort(registry_from_frames(tables), protocol)
    rows = []
    base = {"rep": rep, "seed": seed + rep, "n_AZA": int((cohort.patients["arm"] == "AZA").sum()),
            "n_MMF": int((cohort.patients["arm"] == "MMF").sum()),
            "severity_difference": truth.confounding["severity_difference"]}
    for o in protocol.outcomes:
        t = float(truth.arm_differences[o.name]["36"])
        fit = fit_outcome(o, model_frame(cohort.patients, cohort.outcomes, o.name), protocol)
        r = fit.arm_differences.set_index("month").loc[MONTH]
        rows.append({**base, "outcome": o.name, "analysis": "lmm", "truth": t, "estimate": r["estimate"],
                     "se": r["se"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]})
    cf = study_confounding(cohort.patients, cohort.outcomes, cohort.adverse_events, protocol)
    for r in cf.outcomes[cf.outcomes["month"] == MONTH].itertuples():
        t = float(truth.arm_differences[r.outcome]["36"])
        rows.append({**base, "outcome": r.outcome, "analysis": r.design, "truth": t, "estimate": r.estimate,
                     "se": r.se, "ci_low": r.ci_low, "ci_high": r.ci_high})
    return rows


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    order = {a: i for i, a in enumerate(("lmm", "none", *DESIGNS))}
    for (outcome, analysis), g in rows.groupby(["outcome", "analysis"], sort=False):
        err = g["estimate"] - g["truth"]
        covered = (g["ci_low"] <= g["truth"]) & (g["truth"] <= g["ci_high"])
        k, n = int(covered.sum()), len(g)
        lo = stats.beta.ppf(0.025, k, n - k + 1) if k else 0.0
        hi = stats.beta.ppf(0.975, k + 1, n - k) if k < n else 1.0
        out.append({"outcome": outcome, "analysis": analysis, "reps": n, "truth": g["truth"].mean(),
                    "mean_estimate": g["estimate"].mean(), "bias": err.mean(), "empirical_sd": err.std(ddof=1),
                    "mean_se": g["se"].mean(), "rmse": float(np.sqrt((err ** 2).mean())), "coverage": k / n,
                    "coverage_95ci": f"[{lo:.3f}, {hi:.3f}]", "_o": order.get(analysis, 99)})
    return pd.DataFrame(out).sort_values(["outcome", "_o"], kind="stable").drop(columns="_o")


def markdown(summary: pd.DataFrame) -> str:
    lines = ["| outcome | analysis | truth | mean estimate | bias | empirical SD | mean SE | coverage (95% CI) |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in summary.itertuples():
        lines.append(f"| {r.outcome} | {r.analysis} | {r.truth:.2f} | {r.mean_estimate:.2f} | {r.bias:+.2f} | "
                     f"{r.empirical_sd:.2f} | {r.mean_se:.2f} | {100 * r.coverage:.1f}% {r.coverage_95ci} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--patients", type=int, default=400)
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=20190)
    args = ap.parse_args(argv)
    label = f"n{args.patients}_s{args.strength:g}_seed{args.seed}_reps{args.reps}"
    out = HERE / "out" / label
    out.mkdir(parents=True, exist_ok=True)
    rows, failed, t0 = [], 0, time.perf_counter()
    for rep in range(args.reps):
        try:
            rows += one_rep(rep, args.seed, args.patients, args.strength)
        except Exception as exc:  # noqa: BLE001 - a failed replicate is reported, not fatal
            failed += 1
            print(f"rep {rep}: {type(exc).__name__}: {exc}", file=sys.stderr)
        if (rep + 1) % 20 == 0:
            print(f"{rep + 1}/{args.reps} replicates, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "rows.csv", index=False)
    summary = summarise(frame)
    summary.to_csv(out / "summary.csv", index=False)
    text = (f"{args.reps} replicates ({failed} failed), {args.patients} registry patients, strength "
            f"{args.strength:g}, seed {args.seed}; {time.perf_counter() - t0:.0f} s\n\n" + markdown(summary))
    (out / "summary.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
