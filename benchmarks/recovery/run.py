"""Recovery study: do the study's mixed models recover the generator's planted arm differences?

    python benchmarks/recovery/run.py                       # 200 default-size registries (66 AZA / 44 MMF)
    python benchmarks/recovery/run.py --reps 200 --patients 400 --seed 1 --jobs 2

Each replicate draws an independent *sampled* synthetic registry with known truth
(``generate_registry(N, default_rng(seed + rep), protocol, balanced=False)``: random effects and
residuals drawn afresh; the default registry size unless ``--patients`` is given), types and validates
it in memory exactly as ``load_registry`` types and validates files, and runs the real pipeline
(``run_study``: cohort -> mixed models -> emmeans-style contrasts). For each outcome and contrast month
it compares the AZA - MMF arm difference (estimate, SE, Satterthwaite df, 95% CI) with the truth the
generator planted (``truth.arm_differences``).

Reported per outcome and month: mean estimate, true value, bias (and its Monte-Carlo SE), empirical SE
(SD of the estimates), mean model SE, model/empirical SE ratio, 95% CI coverage with its Monte-Carlo
SE, mean Satterthwaite df, and the share of fits that converged / were singular / failed.

Outputs (``benchmarks/recovery/out/``, git-ignored), with ``LABEL`` = ``n<N|default>_seed<S>_reps<R>``:
  LABEL_reps.csv      one row per replicate x outcome x month (estimate, se, df, CI, covered, fit status,
                      variance components)
  LABEL_fixed.csv     one row per replicate x outcome x fixed-effect term (estimate, se, df, truth)
  LABEL_summary.csv   the summary table, every month
  LABEL_summary.md    the markdown tables printed at the end
  LABEL_meta.json     command, date, machine, git commit, run time

At most two worker processes (``--jobs``, capped at 2), each at ``os.nice(10)``; BLAS threads are
limited to one per worker. ``--jobs 1`` runs in this process (no pool).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import concurrent.futures as cf  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing as mp  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = HERE / "out"
OUTCOMES = ("fvc_pct_pred", "dlco_pct_pred", "prednisone_mg")
PRIMARY_MONTH = 36.0
MAX_JOBS = 2
NICE = 10
DEFAULT_SEED = 20190


# -- one replicate ------------------------------------------------------------------------------------

def registry_in_memory(tables: dict[str, pd.DataFrame]):
    """Type and validate generated tables exactly as :func:`ildstudy.data.load_registry` does for files.

    ``generate_registry`` returns the cells as they would be written (mixed spellings such as
    ``Female``); the loader's typing step (:func:`~ildstudy.data.coerce.coerce_table`) normalises them,
    and :func:`~ildstudy.data.validate.validate_registry` checks the result. Raises ``DataError`` on any
    error, as ``load_registry`` does.
    """
    from ildstudy.data.load import registry_from_frames

    return registry_from_frames(tables)


def one_rep(rep: int, seed: int, n_patients: int | None, protocol_name: str = "huapaya2019") -> dict:
    """Generate one sampled registry, run the study, compare with the truth.

    Returns ``{"rows": [...], "fixed": [...], "error": str | None, "seconds": float}``; an exception in
    the pipeline is caught and reported (the replicate counts as failed), never raised.
    """
    from ildstudy.analysis.study import run_study
    from ildstudy.protocol import load_protocol
    from ildstudy.synth import generate_registry

    t0 = time.perf_counter()
    base = {"rep": rep, "seed": seed}
    try:
        protocol = load_protocol(protocol_name)
        tables, truth = generate_registry(n_patients, np.random.default_rng(seed), protocol, balanced=False)
        registry = registry_in_memory(tables)
        result = run_study(protocol, registry)
    except Exception as exc:  # noqa: BLE001 - a failed replicate is a result, not a crash
        return {"rows": [], "fixed": [], "seconds": time.perf_counter() - t0,
                "error": f"{type(exc).__name__}: {exc}"[:2000], "traceback": traceback.format_exc(), **base}

    rows, fixed = [], []
    arms = dict(result.arms)
    for name in OUTCOMES:
        out = result.outcomes[name]
        model = out.model
        re = model.get("random_effects") or {}
        sd = list(re.get("sd") or [np.nan, np.nan]) + [np.nan, np.nan]
        corr = re.get("corr")
        fit = {
            "converged": bool(model.get("converged")), "singular": bool(model.get("singular")),
            "n_obs": model.get("n_obs"), "n_model_patients": model.get("n_patients"),
            "residual_sd": model.get("residual_sd"), "re_sd_intercept": sd[0], "re_sd_slope": sd[1],
            "re_corr": corr[0][1] if corr is not None and len(corr) > 1 else np.nan,
        }
        true_diff = truth.arm_differences[name]
        for r in out.arm_differences.itertuples(index=False):
            key = str(int(r.month)) if float(r.month).is_integer() else repr(float(r.month))
            t = float(true_diff[key])
            rows.append({
                **base, "registry_patients": truth.n_patients, "n_AZA": arms.get("AZA"), "n_MMF": arms.get("MMF"),
                "outcome": name, "month": float(r.month), "contrast": r.contrast, "truth": t,
                "estimate": r.estimate, "se": r.se, "df": r.df, "ci_low": r.ci_low, "ci_high": r.ci_high,
                "p": r.p, "covered": bool(r.ci_low <= t <= r.ci_high), **fit,
            })
        true_fixed = truth.model[name]["fixed_effects"]
        for f in out.fixed_effects.itertuples(index=False):
            fixed.append({**base, "outcome": name, "term": f.term, "truth": true_fixed.get(f.term, np.nan),
                          "estimate": f.estimate, "se": f.se, "df": f.df})
    return {"rows": rows, "fixed": fixed, "error": None, "seconds": time.perf_counter() - t0, **base}


def _init_worker(nice: int) -> None:
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass


# -- many replicates -----------------------------------------------------------------------------------

def run_reps(reps: int, seed: int, n_patients: int | None, jobs: int = MAX_JOBS, nice: int = NICE,
             progress=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Run ``reps`` replicates with seeds ``seed, seed + 1, ...``.

    Returns (rows, fixed effects, one status row per replicate: rep, seed, seconds, error).
    """
    jobs = max(1, min(int(jobs), MAX_JOBS))
    results = []
    tasks = [(rep, seed + rep) for rep in range(reps)]
    if jobs == 1:
        for rep, s in tasks:
            results.append(one_rep(rep, s, n_patients))
            if progress:
                progress(len(results), reps, results[-1])
    else:
        ctx = mp.get_context("spawn")   # fresh interpreters: no forked DuckDB / BLAS thread state
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                    initargs=(nice,)) as pool:
            futures = [pool.submit(one_rep, rep, s, n_patients) for rep, s in tasks]
            for fut in cf.as_completed(futures):
                results.append(fut.result())
                if progress:
                    progress(len(results), reps, results[-1])
    results.sort(key=lambda r: r["rep"])
    rows = pd.DataFrame([row for r in results for row in r["rows"]])
    fixed = pd.DataFrame([row for r in results for row in r["fixed"]])
    status = pd.DataFrame([{"rep": r["rep"], "seed": r["seed"], "seconds": r["seconds"], "error": r["error"]}
                           for r in results])
    return rows, fixed, status


def summarise(rows: pd.DataFrame, status: pd.DataFrame) -> pd.DataFrame:
    """Per outcome and month: bias, empirical and model SE, coverage, each with Monte-Carlo SEs."""
    reps = len(status)
    failed = int(status["error"].notna().sum()) if len(status) else 0
    out = []
    if rows.empty:
        return pd.DataFrame()
    for (name, month), g in rows.groupby(["outcome", "month"], sort=False):
        r = len(g)
        est = g["estimate"].to_numpy(float)
        if g["truth"].nunique() != 1:   # e.g. the calibration was edited while workers started
            raise ValueError(f"{name} month {month:g}: the truth differs between replicates "
                             f"({sorted(g['truth'].unique())}); rerun on one version of the generator")
        truth = float(g["truth"].iloc[0])
        emp_se = float(np.std(est, ddof=1)) if r > 1 else np.nan
        cov = float(g["covered"].mean())
        out.append({
            "outcome": name, "month": month, "reps": r, "failed": failed, "truth": truth,
            "mean_estimate": float(est.mean()), "bias": float(est.mean() - truth),
            "bias_mcse": emp_se / math.sqrt(r) if r > 1 else np.nan,
            "empirical_se": emp_se,
            "empirical_se_mcse": emp_se / math.sqrt(2 * (r - 1)) if r > 1 else np.nan,
            "mean_model_se": float(g["se"].mean()),
            "rms_model_se": float(np.sqrt(np.mean(g["se"].to_numpy(float) ** 2))),
            "se_ratio": float(np.sqrt(np.mean(g["se"].to_numpy(float) ** 2)) / emp_se) if r > 1 else np.nan,
            "coverage": cov, "coverage_mcse": math.sqrt(cov * (1 - cov) / r),
            "mean_df": float(g["df"].mean()),
            "converged": float(g["converged"].mean()), "singular": float(g["singular"].mean()),
            "rejects_truth_low": float((g["ci_high"] < truth).mean()),
            "rejects_truth_high": float((g["ci_low"] > truth).mean()),
        })
    summary = pd.DataFrame(out)
    summary["failed_share"] = failed / reps if reps else np.nan
    order = {o: i for i, o in enumerate(OUTCOMES)}
    return summary.sort_values(["outcome", "month"], key=lambda s: s.map(order) if s.name == "outcome" else s,
                               kind="stable").reset_index(drop=True)


# -- reporting ------------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def markdown_table(summary: pd.DataFrame, month: float | None = PRIMARY_MONTH) -> str:
    """The summary as a markdown table (one month, or every month when ``month`` is None)."""
    s = summary if month is None else summary[summary["month"] == month]
    head = ("| outcome | month | reps | true | mean est. | bias (MCSE) | emp. SE | mean model SE | "
            "model/emp. SE | coverage (MCSE) | mean df | converged | singular | failed |")
    lines = [head, "|" + "---|" * 14]
    for r in s.itertuples(index=False):
        lines.append(
            f"| {r.outcome} | {r.month:g} | {r.reps} | {r.truth:.3f} | {r.mean_estimate:.3f} | "
            f"{r.bias:+.3f} ({r.bias_mcse:.3f}) | {r.empirical_se:.3f} | {r.mean_model_se:.3f} | "
            f"{r.se_ratio:.3f} | {_pct(r.coverage)} ({_pct(r.coverage_mcse)}) | {r.mean_df:.1f} | "
            f"{_pct(r.converged)} | {_pct(r.singular)} | {r.failed} |")
    return "\n".join(lines)


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory_gb"] = round(int(mem) / 1024 ** 2, 1)
    except (OSError, IndexError, ValueError):
        pass
    return info


def source_digest() -> dict:
    """SHA-256 (first 12 hex digits) of the source of each pipeline package, as imported by this run:
    the working tree may hold other engineers' uncommitted changes."""
    import hashlib

    out = {}
    for pkg in ("synth", "data", "cohort", "lmm", "analysis"):
        h = hashlib.sha256()
        for f in sorted((ROOT / "src" / "ildstudy" / pkg).rglob("*.py")):
            h.update(f.relative_to(ROOT).as_posix().encode())
            h.update(f.read_bytes())
        out[pkg] = h.hexdigest()[:12]
    return out


def label_for(n_patients: int | None, seed: int, reps: int) -> str:
    return f"n{'default' if n_patients is None else n_patients}_seed{seed}_reps{reps}"


def parse_patients(text: str) -> int | None:
    if text.lower() in ("default", "none", ""):
        return None
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("--patients must be a positive integer or 'default'")
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200, help="replicates (default 200)")
    ap.add_argument("--patients", type=parse_patients, default=None,
                    help="registry size N, or 'default' for the calibrated registry (66 AZA / 44 MMF eligible)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"first seed; rep i uses seed + i "
                                                                   f"(default {DEFAULT_SEED})")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes, at most 2 (1: run in this process)")
    ap.add_argument("--out", type=Path, default=OUT, help="output folder (default benchmarks/recovery/out)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be at least 1")

    started = dt.datetime.now().astimezone()
    t0 = time.perf_counter()
    digest = source_digest()

    def progress(done: int, total: int, last: dict) -> None:
        if args.quiet:
            return
        if last.get("error"):
            print(f"  rep {last['rep']} (seed {last['seed']}) FAILED: {last['error']}", file=sys.stderr)
        if done == total or done % 10 == 0:
            el = time.perf_counter() - t0
            print(f"  {done}/{total} replicates, {el:.0f} s elapsed", file=sys.stderr, flush=True)

    rows, fixed, status = run_reps(args.reps, args.seed, args.patients, args.jobs, progress=progress)
    seconds = time.perf_counter() - t0
    summary = summarise(rows, status)

    args.out.mkdir(parents=True, exist_ok=True)
    label = label_for(args.patients, args.seed, args.reps)
    rows.to_csv(args.out / f"{label}_reps.csv", index=False)
    fixed.to_csv(args.out / f"{label}_fixed.csv", index=False)
    summary.to_csv(args.out / f"{label}_summary.csv", index=False)
    failed = status[status["error"].notna()]

    n_text = "default registry (66 AZA / 44 MMF eligible)" if args.patients is None else f"N = {args.patients} patients"
    if not rows.empty:
        n_text += (f"; eligible AZA/MMF per replicate: {int(rows['n_AZA'].median())}/"
                   f"{int(rows['n_MMF'].median())} (median)")
    legend = ("bias = mean estimate - true; MCSE = Monte-Carlo SE (bias: emp. SE / sqrt(reps); coverage: "
              "sqrt(c(1 - c) / reps)); emp. SE = SD of the estimates; model/emp. SE = root mean square of the "
              "model SEs / emp. SE; coverage of the 95% CI (Satterthwaite t); converged / singular: share of "
              "fits; failed: replicates whose pipeline raised.")
    parts = [f"Recovery study: {args.reps} replicates, {n_text}, seeds {args.seed}..{args.seed + args.reps - 1}, "
             f"{seconds:.0f} s with {max(1, min(args.jobs, MAX_JOBS))} worker(s); {len(failed)} failed.", ""]
    if not summary.empty:
        parts += [f"### Arm difference AZA - MMF at month {PRIMARY_MONTH:g}", "", markdown_table(summary), "",
                  "### Every contrast month", "", markdown_table(summary, None), "", legend, ""]
    text = "\n".join(parts)
    (args.out / f"{label}_summary.md").write_text(text + "\n")
    meta = {
        "command": " ".join([Path(sys.executable).name, "benchmarks/recovery/run.py", *(argv or sys.argv[1:])]),
        "started": started.isoformat(timespec="seconds"), "seconds": round(seconds, 1),
        "reps": args.reps, "patients": args.patients, "seed": args.seed, "jobs": args.jobs,
        "failed": failed[["rep", "seed", "error"]].to_dict("records"),
        "mean_seconds_per_rep": round(float(status["seconds"].mean()), 2) if len(status) else None,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty_paths": _git("status", "--porcelain", "--", "src").splitlines(),
        "source_sha256_12": digest,
        "source_changed_during_run": source_digest() != digest,
        "machine": machine(),
    }
    (args.out / f"{label}_meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(text)
    return 0 if len(failed) < args.reps else 1


if __name__ == "__main__":
    sys.exit(main())
