"""Diagnostics of a recovery run (reads the CSVs that run.py wrote; fits nothing).

    python benchmarks/recovery/diagnose.py                         # every run in benchmarks/recovery/out
    python benchmarks/recovery/diagnose.py ndefault_seed20190_reps1000

For each run and outcome: the 36-month coverage with an exact (Clopper-Pearson) 95% interval and a
two-sided exact binomial test against 95%; coverage recomputed with normal instead of Satterthwaite-t
quantiles and with the empirical instead of the model SE (separates a df problem, an SE problem and a
bias problem); the distribution of z = (estimate - truth) / SE; bias and SE ratio of every fixed effect;
the mean estimated variance components against the generator's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
MONTH = 36.0


def true_vc(name: str) -> tuple[float, float, float, float]:
    """The generator's residual SD, random intercept SD, random slope SD and their correlation."""
    from ildstudy.synth.calibration import MODELS

    m = MODELS[name]
    return (m.residual_sd, m.sd_intercept, m.sd_slope, m.corr)


def coverage_block(rows: pd.DataFrame) -> pd.DataFrame:
    out = []
    for name, g in rows[rows["month"] == MONTH].groupby("outcome", sort=False):
        r, k = len(g), int(g["covered"].sum())
        lo = stats.beta.ppf(0.025, k, r - k + 1) if k else 0.0           # Clopper-Pearson
        hi = stats.beta.ppf(0.975, k + 1, r - k) if k < r else 1.0
        err = g["estimate"] - g["truth"]
        z = err / g["se"]
        emp = err.std(ddof=1)
        t_q = stats.t.ppf(0.975, g["df"])
        out.append({
            "outcome": name, "reps": r, "coverage": k / r, "exact_95ci": f"[{lo:.3f}, {hi:.3f}]",
            "binom_p_vs_95": stats.binomtest(k, r, 0.95).pvalue,
            "cov_normal_q": float((z.abs() <= 1.959964).mean()),
            "cov_empirical_se": float((err.abs() <= t_q * emp).mean()),
            "cov_unbiased": float(((err - err.mean()).abs() <= t_q * g["se"]).mean()),
            "z_sd": float(z.std(ddof=1)), "z_mean": float(z.mean()), "z_skew": float(stats.skew(z)),
            "z_exkurt": float(stats.kurtosis(z)), "shapiro_p": float(stats.shapiro(z).pvalue) if r >= 3 else np.nan,
            "miss_low": float((g["ci_high"] < g["truth"]).mean()),
            "miss_high": float((g["ci_low"] > g["truth"]).mean()),
            "t_quantile_mean": float(t_q.mean()),
        })
    return pd.DataFrame(out)


def fixed_block(fixed: pd.DataFrame) -> pd.DataFrame:
    f = fixed.assign(err=fixed["estimate"] - fixed["truth"])
    g = f.groupby(["outcome", "term"], sort=False)
    t = g.agg(truth=("truth", "first"), mean=("estimate", "mean"), emp_se=("estimate", "std"),
              model_se=("se", lambda s: float(np.sqrt(np.mean(s ** 2)))), reps=("estimate", "size"))
    t["bias"] = t["mean"] - t["truth"]
    t["bias_z"] = t["bias"] / (t["emp_se"] / np.sqrt(t["reps"]))
    t["se_ratio"] = t["model_se"] / t["emp_se"]
    t["coverage"] = g.apply(lambda d: float((d["err"].abs() <= stats.t.ppf(0.975, d["df"]) * d["se"]).mean()),
                            include_groups=False)
    return t.reset_index()


def vc_block(rows: pd.DataFrame) -> pd.DataFrame:
    one = rows[rows["month"] == MONTH]
    out = []
    for name, g in one.groupby("outcome", sort=False):
        true = true_vc(name)
        for col, tv in zip(("residual_sd", "re_sd_intercept", "re_sd_slope", "re_corr"), true):
            out.append({"outcome": name, "component": col, "truth": tv, "mean_estimate": float(g[col].mean()),
                        "sd_estimate": float(g[col].std(ddof=1))})
    out_df = pd.DataFrame(out)
    extra = one.groupby("outcome", sort=False)[["n_obs", "n_model_patients", "df"]].mean().reset_index()
    return out_df, extra


def to_markdown(frame: pd.DataFrame, digits: int = 4) -> str:
    """A DataFrame as a markdown table (no dependency on ``tabulate``)."""
    def cell(v) -> str:
        if isinstance(v, (float, np.floating)):
            if np.isnan(v):
                return ""
            if v != 0 and abs(v) < 1e-3:
                return f"{v:.2e}"
            return f"{v:.{digits}f}"
        return str(v)
    cols = list(frame.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    labels = argv if argv else sorted(p.name[: -len("_reps.csv")] for p in OUT.glob("*_reps.csv"))
    for label in labels:
        rows = pd.read_csv(OUT / f"{label}_reps.csv")
        fixed = pd.read_csv(OUT / f"{label}_fixed.csv")
        print(f"## {label}\n")
        print("### 36-month coverage\n")
        print(to_markdown(coverage_block(rows)), "\n")
        print("### Fixed effects\n")
        print(to_markdown(fixed_block(fixed)), "\n")
        vc, extra = vc_block(rows)
        print("### Variance components (mean of REML estimates)\n")
        print(to_markdown(vc), "\n")
        print(to_markdown(extra, 1), "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
