"""Time every stage of `ildstudy run` on a large synthetic registry, with peak memory (issue 13 item 3).

    python benchmarks/study/run.py --sizes 100k 1M             # synth once per size (cached), then one run each
    python benchmarks/study/run.py --sizes 100k --profile      # also write a cProfile of the run (out/*.prof)
    python benchmarks/study/run.py --sizes 100k --lme4         # and, in the same run, `ildstudy lmm` vs lme4
    python benchmarks/study/run.py --sizes 1M --max-rss-gb 20  # kill the run if its RSS passes 20 GB

With ``--lme4`` each size is followed, in the same invocation, by the LMM start-up comparison of
``benchmarks/lmm/run.py`` (its ``run_one``: the whole ``ildstudy lmm DATA.csv`` process against ``Rscript
lme4_fit.R DATA.csv``, each under ``/usr/bin/time -v``, on ``benchmarks/lmm/make_data.py``'s data of that size),
so the stage table and the lme4 ratio come from one run (issue 13's acceptance).

For each size the registry is written once by `ildstudy synth --patients N --format parquet` into
``--cache`` (default /tmp/ildstudy-study-bench; reused when its truth.json says N patients). The study then
runs in a fresh child process (so that its peak RSS is its own): the child imports ildstudy, calls
``run_study("huapaya2019", folder, on_step=...)`` and ``write_study_outputs`` exactly as `ildstudy run` does,
and the stage times come from the ``on_step`` callback (a stage lasts from its step call to the next one; the
last one, "Writing the report", ends when ``write_study_outputs`` returns). No timing code lives in the
library. Each stage also records the process's peak RSS so far (``resource.getrusage``: monotone, so the
stage where it jumps is the one that needed the memory). The load average before and after each run is kept
because the machine is shared. Prints a markdown table for docs/benchmarks.md; raw JSON in --json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent / "synth"))
from run import machine  # noqa: E402  (benchmarks/synth/run.py: nproc, CPU, RAM, platform)

SIZES = {"10k": 10_000, "100k": 100_000, "300k": 300_000, "1M": 1_000_000}
GOALS = {100_000: 10.0, 1_000_000: 60.0}  # seconds, issue 13 item 3; memory goal 8 GB at every size
GOAL_GB = 8.0


def synth(n: int, cache: Path) -> Path:
    """The cached Parquet registry of n patients (seed 2019), written by `ildstudy synth` when missing."""
    folder = cache / f"registry_{n}"
    truth = folder / "truth.json"
    if truth.exists() and json.loads(truth.read_text()).get("n_patients") == n:
        return folder
    cmd = [sys.executable, "-c", "from ildstudy.cli import main; main()", "synth", "--out", str(folder),
           "--patients", str(n), "--format", "parquet", "--seed", "2019", "--quiet"]
    subprocess.run(cmd, check=True, env=_env())
    return folder


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def child(folder: Path, out_dir: Path, profile: Path | None) -> dict:
    """In the child process: the study as `ildstudy run` does it, one record per stage."""
    import resource

    import ildstudy.cli  # noqa: F401  (as `ildstudy run`: its BLAS thread setting applies before numpy loads)

    t_start = time.perf_counter()
    from ildstudy.analysis.study import run_study
    from ildstudy.report.outputs import write_study_outputs

    stages: list[dict] = [{"stage": "import ildstudy", "start": t_start}]

    def rss_gb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # kB on Linux

    def on_step(name: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        stages[-1].update(end=now, cpu_end=cpu, peak_rss_gb=rss_gb())
        stages.append({"stage": name, "start": now, "cpu_start": cpu})
        print(f"[{now - t_start:8.2f} s, {rss_gb():.2f} GB] {name}", file=sys.stderr, flush=True)

    stages[0]["cpu_start"] = 0.0
    prof = None
    if profile is not None:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    result = run_study("huapaya2019", folder, on_step=on_step)
    on_step("Writing the report")
    write_study_outputs(result, out_dir, inputs=[folder])
    on_step("(end)")
    if prof is not None:
        prof.disable()
        prof.dump_stats(str(profile))
    stages.pop()
    rows = [{"stage": s["stage"], "seconds": round(s["end"] - s["start"], 3),
             "cpu_seconds": round(s["cpu_end"] - s["cpu_start"], 3), "peak_rss_gb": round(s["peak_rss_gb"], 3)}
            for s in stages]
    return {"stages": rows, "total_s": round(time.perf_counter() - t_start, 3), "peak_rss_gb": round(rss_gb(), 3),
            "cohort": result.arms}


def _rss_gb(pid: int) -> float:
    """The current resident set size of process ``pid`` (Linux ``/proc``), 0 when it has ended."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return 0.0


def run_size(n: int, cache: Path, profile: bool, max_rss_gb: float | None = None) -> dict:
    folder = synth(n, cache)
    out_dir = Path(tempfile.mkdtemp(prefix="ildstudy-study-bench-out-")) / "out"
    prof = HERE / "out" / f"study_{n}.prof" if profile else None
    if prof is not None:
        prof.parent.mkdir(parents=True, exist_ok=True)
    rec: dict = {"patients": n, "loadavg_before": [round(x, 2) for x in os.getloadavg()]}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(folder), str(out_dir)]
                            + (["--profile-to", str(prof)] if prof else []), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    log: list[str] = []

    def relay() -> None:  # the child's stage log, shown as it comes and kept for the record
        for line in proc.stderr:
            sys.stderr.write(line)
            log.append(line.rstrip())

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    killed = None
    while proc.poll() is None:  # the memory guard: stop the child before it takes the machine's memory
        rss = _rss_gb(proc.pid)
        if max_rss_gb is not None and rss > max_rss_gb:
            proc.kill()
            killed = rss
        time.sleep(0.25)
    stdout = proc.stdout.read()
    reader.join(timeout=5)
    rec["process_wall_s"] = round(time.perf_counter() - t0, 2)
    rec["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    rec["returncode"] = proc.returncode
    if proc.returncode != 0:
        stages = [line for line in log if line.startswith("[")]
        rec["last_stage"] = stages[-1] if stages else None
        rec["stderr_tail"] = (f"stopped by the memory guard at {killed:.2f} GB RSS (--max-rss-gb {max_rss_gb}); "
                              f"last stage: {rec['last_stage']}" if killed is not None else "\n".join(log[-5:]))
        return rec
    rec.update(json.loads(stdout.strip().splitlines()[-1]))
    import pyarrow.parquet as pq

    rec["registry_rows"] = {p.stem: pq.ParquetFile(p).metadata.num_rows for p in sorted(folder.glob("*.parquet"))}
    shutil.rmtree(out_dir.parent, ignore_errors=True)
    return rec


def lmm_versus_lme4(n: int) -> dict:
    """``ildstudy lmm`` and lme4 on the LMM benchmark's data of ``n`` patients (written when missing)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lmm_benchmark", HERE.parent / "lmm" / "run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    data = bench.DATA / f"ild_{bench.label(n)}.csv"
    if not data.exists():
        subprocess.run([sys.executable, str(HERE.parent / "lmm" / "make_data.py"), "--sizes", str(n)], check=True,
                       env=_env())
    out = {}
    for tool in ("ildstudy", "lme4"):
        rec = bench.run_one(tool, data, timeout=1800)
        res = rec.get("result") or {}
        out[tool] = {"status": rec.get("status"), "wall_s": rec.get("wall_s"), "cpu_s": rec.get("cpu_s"),
                     "peak_rss_mb": rec.get("peak_rss_mb"), "converged": res.get("converged"),
                     "reml_criterion": res.get("reml_criterion", res.get("criterion"))}
        print(f"    lmm {tool}: {out[tool]}", file=sys.stderr, flush=True)
    if out["ildstudy"].get("wall_s") and out["lme4"].get("wall_s"):
        out["lme4_over_ildstudy"] = round(out["lme4"]["wall_s"] / out["ildstudy"]["wall_s"], 2)
    return out


def markdown(records: list[dict], info: dict, commit: str) -> str:
    """The stage table for docs/benchmarks.md: one column per size."""
    ok = [r for r in records if r.get("returncode") == 0]
    names: list[str] = []
    for r in ok:
        names += [s["stage"] for s in r["stages"] if s["stage"] not in names]
    head = " | ".join(f"{r['patients']:,} s (CPU s) | RSS GB" for r in ok)
    lines = [f"Machine: {info['nproc']} cores ({info['cpu']}), {info['memory_gb']} GB RAM, {info['platform']}, "
             f"Python {info['python']}; commit {commit}; {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
             f"| stage | {head} |", "|---|" + "---|---|" * len(ok)]
    for name in names:
        cells = []
        for r in ok:
            s = next((s for s in r["stages"] if s["stage"] == name), None)
            cells.append("– | –" if s is None else f"{s['seconds']:.2f} ({s['cpu_seconds']:.2f}) | {s['peak_rss_gb']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| **whole process** | " + " | ".join(f"**{r['process_wall_s']:.1f}** | **{r['peak_rss_gb']:.2f}**"
                                                   for r in ok) + " |")
    lines.append("")
    for r in records:
        if r.get("returncode") != 0:
            lines.append(f"- {r['patients']:,}: failed (exit {r.get('returncode')}): {r.get('stderr_tail', '')[-300:]}")
            continue
        goal = GOALS.get(r["patients"])
        met = "" if goal is None else (f"goal < {goal:.0f} s {'met' if r['process_wall_s'] < goal else 'NOT met'}; ")
        lines.append(f"- {r['patients']:,} patients (cohort {r['cohort']}): {met}memory < {GOAL_GB:.0f} GB "
                     f"{'met' if r['peak_rss_gb'] < GOAL_GB else 'NOT met'}; load average before "
                     f"{r['loadavg_before']} after {r['loadavg_after']}.")
        lm = r.get("lmm_vs_lme4")
        if lm:
            i, l4 = lm["ildstudy"], lm["lme4"]
            lines.append(f"  - same run, LMM start-up (`ildstudy lmm` vs lme4, whole processes): ildstudy "
                         f"{i.get('wall_s')} s, lme4 {l4.get('wall_s')} s (converged: {l4.get('converged')}); "
                         f"lme4 / ildstudy = {lm.get('lme4_over_ildstudy')} (goal >= 10).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["100k", "1M"], choices=list(SIZES))
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "ildstudy-study-bench")
    ap.add_argument("--profile", action="store_true", help="write a cProfile of each run to benchmarks/study/out/")
    ap.add_argument("--json", type=Path, default=HERE / "out" / "results.json")
    ap.add_argument("--lme4", action="store_true", help="also time `ildstudy lmm` against lme4 at each size")
    ap.add_argument("--max-rss-gb", type=float, default=None,
                    help="kill a run whose resident memory passes this many GB (recorded with its last stage)")
    ap.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.profile_to)))
        return 0
    args.cache.mkdir(parents=True, exist_ok=True)
    info = machine()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    records = []
    for size in args.sizes:
        rec = run_size(SIZES[size], args.cache, args.profile, args.max_rss_gb)
        if args.lme4 and rec.get("returncode") == 0:
            rec["lmm_vs_lme4"] = lmm_versus_lme4(SIZES[size])
        records.append(rec)
        print(f"{size}: exit {rec['returncode']}, {rec['process_wall_s']} s, load {rec['loadavg_before'][0]} -> "
              f"{rec['loadavg_after'][0]}", file=sys.stderr)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": info, "commit": commit, "runs": records}, indent=2) + "\n")
    print(markdown(records, info, commit))
    return 0 if all(r["returncode"] == 0 for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
