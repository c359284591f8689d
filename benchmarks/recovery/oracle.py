"""Oracle check of the generator's PFT outcomes: do they vary as the data-generating model says?

    python benchmarks/recovery/oracle.py --reps 2000             # default registry size
    python benchmarks/recovery/oracle.py --reps 2000 --patients 400
    python benchmarks/recovery/oracle.py --compare-with n400_seed40000_reps800   # the same registries as run.py

A diagnostic for docs/validation.md, not part of the pipeline. It bypasses the cohort builder and the
REML fit: for each replicate it draws a sampled registry with the generator (``Generator(N, rng,
protocol, balanced=False)``), takes the generator's own FVC % / DLCO % rows of the eligible patients that
the protocol analyses (the baseline PFT closest to index inside the baseline window at month 0, then the
follow-up PFTs after the window up to the planned end of follow-up), and computes the generalised
least-squares estimate of the 36-month AZA - MMF difference at the **true** variance parameters, with its
exact conditional SE ``sqrt(c' (sum X'V^-1 X)^-1 c)``. If the generated data follow the model, the GLS
estimate is unbiased and z = (estimate - truth) / SE has SD 1 whatever the design.

With ``--compare-with LABEL`` it uses the seeds and registry size of a ``run.py`` output and compares the
oracle with the pipeline replicate by replicate (same registries).

With ``--model-data`` the outcome values are replaced by draws from the model itself (normal random
effects, normal residuals, no rounding or clipping) on the same visits and covariates: a check of this
script (z must then have SD 1) and a reference for the generator's non-normal random effects.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np
import pandas as pd

from ildstudy.protocol import load_protocol
from ildstudy.synth.calibration import MODELS
from ildstudy.synth import generate as _generate
from ildstudy.synth.windows import DAYS_PER_MONTH

#: the generator's planned-registry class (renamed from ``Generator`` to ``PlannedRegistry``)
Generator = getattr(_generate, "PlannedRegistry", None) or getattr(_generate, "Generator")
OUTCOMES = ("fvc_pct_pred", "dlco_pct_pred")
MONTH = 36.0


def analysed_rows(gen: Generator, protocol) -> pd.DataFrame:
    """The generator's PFT rows that the protocol analyses, with the plan's covariates."""
    plan = gen.plan
    pft = next(iter(gen.blocks()))["pft"]          # one block up to 50,000 patients
    pid = np.asarray(pft["patient_id"].numbers, np.int64) - 1 - plan.first_id
    day = np.asarray(pft["test_date"].days, np.int64) - plan.index[pid]
    frame = pd.DataFrame({"pid": pid, "day": day, "fvc_pct_pred": pft["fvc_pct_pred"],
                          "dlco_pct_pred": pft["dlco_pct_pred"]})
    frame = frame[plan.eligible[frame["pid"]]]
    lo, hi = protocol.baseline.from_days, protocol.baseline.to_days
    base = frame[frame["fvc_pct_pred"].notna() & (frame["day"] >= lo) & (frame["day"] <= hi)]
    base = base.assign(ad=base["day"].abs()).sort_values(["pid", "ad", "day"]).drop_duplicates("pid")
    base = base.assign(months=0.0)
    follow = frame[(frame["day"] > hi) & (frame["day"] <= plan.eof[frame["pid"]])]
    follow = follow.assign(months=follow["day"] / DAYS_PER_MONTH)
    rows = pd.concat([base.drop(columns="ad"), follow], ignore_index=True)
    p = rows["pid"].to_numpy()
    rows["arm"] = (plan.arm[p] == 0).astype(float)
    rows["female"] = plan.female[p].astype(float)
    rows["age"] = plan.age[p]
    rows["antisynthetase"] = plan.antisynthetase[p].astype(float)
    rows["ever_smoker"] = (plan.smoking[p] > 0).astype(float)
    return rows


def design(rows: pd.DataFrame) -> np.ndarray:
    t, a = rows["months"].to_numpy(), rows["arm"].to_numpy()
    return np.column_stack([np.ones(len(rows)), t, a, rows["female"], rows["age"], rows["antisynthetase"],
                            rows["ever_smoker"], t * a])


def gls(rows: pd.DataFrame, y: np.ndarray, name: str) -> tuple[float, float]:
    """GLS estimate and exact SE of arm + 36 x months:arm at the true variance parameters."""
    m = MODELS[name]
    g = np.array([[m.sd_intercept ** 2, m.corr * m.sd_intercept * m.sd_slope],
                  [m.corr * m.sd_intercept * m.sd_slope, m.sd_slope ** 2]])
    x = design(rows)
    p = x.shape[1]
    xtvx, xtvy = np.zeros((p, p)), np.zeros(p)
    pid = rows["pid"].to_numpy()
    order = np.argsort(pid, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(pid[order]) != 0, True])
    t_all = rows["months"].to_numpy()
    for s, e in zip(bounds[:-1], bounds[1:]):
        i = order[s:e]
        z = np.column_stack([np.ones(len(i)), t_all[i]])
        v = z @ g @ z.T + m.residual_sd ** 2 * np.eye(len(i))
        vi_x = np.linalg.solve(v, x[i])
        xtvx += x[i].T @ vi_x
        xtvy += vi_x.T @ y[i]
    cov = np.linalg.inv(xtvx)
    beta = cov @ xtvy
    c = np.zeros(p)
    c[2], c[7] = 1.0, MONTH
    return float(c @ beta), float(math.sqrt(c @ cov @ c))


def model_values(rows: pd.DataFrame, name: str, rng: np.random.Generator) -> np.ndarray:
    """Outcome values drawn from the model itself (normal random effects and residuals)."""
    m = MODELS[name]
    g = np.array([[m.sd_intercept ** 2, m.corr * m.sd_intercept * m.sd_slope],
                  [m.corr * m.sd_intercept * m.sd_slope, m.sd_slope ** 2]])
    pid = rows["pid"].to_numpy()
    n = int(pid.max()) + 1
    b = rng.standard_normal((n, 2)) @ np.linalg.cholesky(g).T
    t = rows["months"].to_numpy()
    mean = m.fixed_mean(t, rows["arm"].to_numpy(), rows["female"].to_numpy(), rows["age"].to_numpy(),
                        rows["antisynthetase"].to_numpy(), rows["ever_smoker"].to_numpy())
    return mean + b[pid, 0] + b[pid, 1] * t + m.residual_sd * rng.standard_normal(len(rows))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--patients", type=int, default=None)
    ap.add_argument("--seed", type=int, default=7_000_000)
    ap.add_argument("--model-data", action="store_true", help="replace the values by draws from the model")
    ap.add_argument("--compare-with", metavar="LABEL",
                    help="use the seeds and N of the run.py output LABEL (e.g. n400_seed40000_reps800) and compare "
                         "the oracle's estimate with the pipeline's, replicate by replicate")
    args = ap.parse_args(argv)
    pipeline = None
    if args.compare_with:
        import json
        from pathlib import Path

        out_dir = Path(__file__).resolve().parent / "out"
        meta = json.loads((out_dir / f"{args.compare_with}_meta.json").read_text())
        pipeline = pd.read_csv(out_dir / f"{args.compare_with}_reps.csv")
        pipeline = pipeline[pipeline["month"] == MONTH]
        args.patients, args.seed = meta["patients"], meta["seed"]
        args.reps = int(pipeline["rep"].max()) + 1
    protocol = load_protocol("huapaya2019")
    truth = {o: MODELS[o].arm_difference(MONTH) for o in OUTCOMES}
    out = []
    t0 = time.perf_counter()
    for rep in range(args.reps):
        rng = np.random.default_rng(args.seed + rep)
        gen = Generator(args.patients, rng, protocol, balanced=False)
        rows = analysed_rows(gen, protocol)
        for name in OUTCOMES:
            r = rows[rows[name].notna()]
            y = model_values(r, name, rng) if args.model_data else r[name].to_numpy(float)
            est, se = gls(r, y, name)
            out.append({"rep": rep, "outcome": name, "estimate": est, "se": se, "truth": truth[name],
                        "n_obs": len(r), "n_patients": r["pid"].nunique()})
    res = pd.DataFrame(out)
    res["z"] = (res["estimate"] - res["truth"]) / res["se"]
    print(f"oracle GLS at true variance parameters, {args.reps} replicates, "
          f"{'default registry' if args.patients is None else f'N = {args.patients}'}, "
          f"{'values drawn from the model' if args.model_data else 'generator values'}; "
          f"{time.perf_counter() - t0:.0f} s\n")
    print("| outcome | reps | bias (MCSE) | emp. SE | exact SE (mean) | SD(z) (MCSE) | coverage ±1.96 SE (MCSE) |")
    print("|---|---|---|---|---|---|---|")
    for name, g in res.groupby("outcome", sort=False):
        r = len(g)
        emp = g["estimate"].std(ddof=1)
        cov = float((g["z"].abs() <= 1.959964).mean())
        print(f"| {name} | {r} | {g['estimate'].mean() - g['truth'].iloc[0]:+.3f} ({emp / math.sqrt(r):.3f}) | "
              f"{emp:.3f} | {g['se'].mean():.3f} | {g['z'].std(ddof=1):.3f} ({1 / math.sqrt(2 * (r - 1)):.3f}) | "
              f"{100 * cov:.1f}% ({100 * math.sqrt(cov * (1 - cov) / r):.1f}%) |")
    if pipeline is not None:
        m = res.merge(pipeline[["rep", "outcome", "estimate", "se", "covered"]], on=["rep", "outcome"],
                      suffixes=("", "_pipeline"))
        print(f"\nsame registries through the pipeline ({args.compare_with}):\n")
        print("| outcome | reps | SD oracle GLS | SD pipeline | corr | mean exact SE | mean pipeline SE | "
              "coverage oracle | coverage pipeline |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, g in m.groupby("outcome", sort=False):
            print(f"| {name} | {len(g)} | {g['estimate'].std(ddof=1):.3f} | {g['estimate_pipeline'].std(ddof=1):.3f} | "
                  f"{np.corrcoef(g['estimate'], g['estimate_pipeline'])[0, 1]:.4f} | {g['se'].mean():.3f} | "
                  f"{g['se_pipeline'].mean():.3f} | {100 * (g['z'].abs() <= 1.959964).mean():.1f}% | "
                  f"{100 * g['covered'].mean():.1f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
