"""Time the whole `ildstudy lmm` process against lme4 (Rscript) and statsmodels, in the same run (issue 4).

    python benchmarks/lmm/run.py                          # all sizes, all tools available
    python benchmarks/lmm/run.py --sizes 2k 20k --tools lme4 statsmodels

Model: fvc ~ months*arm + female + age + antisynth + smoker + (1 + months | id), REML.
Each fit is a separate process run under /usr/bin/time -v (wall time, peak RSS). Data sets come from
make_data.py (generated if missing). Prints a markdown table; writes the raw results as JSON
(default benchmarks/lmm/out/results.json).

Tools:
  ildstudy     .venv/bin/ildstudy lmm DATA.csv --formula F --json   (whole process: start-up, CSV read, fit,
               Satterthwaite df)
  lme4         Rscript lme4_fit.R DATA.csv             (lme4::lmer; fread; REML criterion, no df)
  lmertest     Rscript lme4_fit.R DATA.csv --lmertest  (lmerTest::lmer + summary(): Satterthwaite df, which is
               what ildstudy reports)
  lme4-bobyqa  Rscript lme4_fit.R DATA.csv --bobyqa   (lme4 with the bobyqa optimiser: a tighter optimum than
               lme4's default nloptwrap, to check REML criteria; up to --bobyqa-max patients)
  statsmodels  python statsmodels_fit.py DATA.csv      (MixedLM, default optimiser; small sizes only)

"Δ crit vs lme4" is the tool's REML criterion minus lme4's (default settings); negative = better optimum.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = HERE / "data"
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = VENV_BIN / "python" if (VENV_BIN / "python").exists() else Path(sys.executable)
FORMULA = "fvc ~ months*arm + female + age + antisynth + smoker + (1 + months | id)"
SIZES = {"2k": 2_000, "20k": 20_000, "100k": 100_000, "1M": 1_000_000}
TOOLS = ("ildstudy", "lme4", "lmertest", "lme4-bobyqa", "statsmodels")

sys.path.insert(0, str(HERE))
from make_data import label  # noqa: E402


def ildstudy_cmd() -> list[str]:
    """The console script of this checkout's venv; without one (a git worktree), what the script runs:
    ``python -c "from ildstudy.cli import main; main()"`` with the checkout's ``src`` on PYTHONPATH."""
    exe = VENV_BIN / "ildstudy"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from ildstudy.cli import main; main()"]


def ildstudy_exe() -> list[str] | None:
    try:
        r = subprocess.run([*ildstudy_cmd(), "lmm", "--help"], capture_output=True, timeout=60)
    except (subprocess.TimeoutExpired, OSError):
        return None
    return ildstudy_cmd() if r.returncode == 0 else None


def command(tool: str, data: Path) -> list[str]:
    if tool == "ildstudy":
        return [*ildstudy_cmd(), "lmm", str(data), "--formula", FORMULA, "--json"]
    if tool == "lme4":
        return ["Rscript", str(HERE / "lme4_fit.R"), str(data)]
    if tool == "lmertest":
        return ["Rscript", str(HERE / "lme4_fit.R"), str(data), "--lmertest"]
    if tool == "lme4-bobyqa":
        return ["Rscript", str(HERE / "lme4_fit.R"), str(data), "--bobyqa"]
    if tool == "statsmodels":
        return [str(PYTHON), str(HERE / "statsmodels_fit.py"), str(data)]
    raise ValueError(tool)


def parse_time_v(text: str) -> dict:
    out: dict = {}
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        secs = 0.0
        for part in m.group(1).split(":"):
            secs = secs * 60 + float(part)
        out["wall_s"] = secs
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["peak_rss_mb"] = int(m.group(1)) / 1024
    cpu = 0.0
    for key in ("User time (seconds)", "System time (seconds)"):
        m = re.search(re.escape(key) + r": ([\d.]+)", text)
        if m:
            cpu += float(m.group(1))
    out["cpu_s"] = cpu
    m = re.search(r"Exit status: (\d+)", text)
    if m:
        out["exit_status"] = int(m.group(1))
    return out


def run_one(tool: str, data: Path, timeout: float) -> dict:
    cmd = command(tool, data)
    rec: dict = {"tool": tool, "data": str(data.relative_to(ROOT)), "command": cmd,
                 "loadavg_before": os.getloadavg()[0]}
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = ["/usr/bin/time", "-v", "-o", tf.name, *cmd]
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, cwd=ROOT)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            rec.update(status="timeout", wall_s=time.perf_counter() - t0, timeout_s=timeout)
            return rec
        rec["wall_s_outer"] = time.perf_counter() - t0
        rec["loadavg_after"] = os.getloadavg()[0]
        rec.update(parse_time_v(open(tf.name).read()))
    rec["returncode"] = proc.returncode
    rec["stderr_tail"] = stderr[-2000:]
    if proc.returncode != 0:
        rec["status"] = "error"
        return rec
    try:
        start = stdout.index("{")
        rec["result"] = json.loads(stdout[start:])
        rec["status"] = "ok"
    except ValueError as exc:
        rec["status"] = "bad-output"
        rec["stdout_tail"] = stdout[-2000:]
        rec["error"] = str(exc)
    return rec


def machine() -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    free = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout
    return {"nproc": os.cpu_count(), "cpu": cpu, "free_g": free, "platform": platform.platform(),
            "python": platform.python_version()}


def versions() -> dict:
    v: dict = {}
    r = subprocess.run(["Rscript", "-e", 'cat(R.version.string, "|", as.character(packageVersion("lme4")), "|",'
                        ' as.character(packageVersion("lmerTest")), "|", as.character(packageVersion("data.table")))'],
                       capture_output=True, text=True)
    if r.returncode == 0:
        parts = [p.strip() for p in r.stdout.split("|")]
        v.update(R=parts[0], lme4=parts[1], lmerTest=parts[2], data_table=parts[3])
    r = subprocess.run([str(PYTHON), "-c", "import statsmodels, numpy, scipy, pandas; print(statsmodels.__version__,"
                        " numpy.__version__, scipy.__version__, pandas.__version__)"], capture_output=True, text=True)
    if r.returncode == 0:
        v.update(zip(("statsmodels", "numpy", "scipy", "pandas"), r.stdout.split()))
    r = subprocess.run([str(PYTHON), "-c", "import ildstudy; print(ildstudy.__version__)"], capture_output=True, text=True)
    if r.returncode == 0:
        v["ildstudy"] = r.stdout.strip()
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    if r.returncode == 0:
        v["git"] = r.stdout.strip()
    return v


def crit(rec: dict) -> float | None:
    res = rec.get("result") or {}
    return res.get("reml_criterion")


def fmt(x, nd=1) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def table(records: list[dict]) -> str:
    lines = [
        "| patients | rows | tool | status | wall s | CPU s | read s | fit s | peak RSS MB | REML criterion | Δ crit vs lme4 | logLik | converged | lme4 wall / tool wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_size: dict[str, dict[str, dict]] = {}
    for rec in records:
        by_size.setdefault(rec["size"], {})[rec["tool"]] = rec
    for size, recs in by_size.items():
        ref = recs.get("lme4")
        ref_crit = crit(ref) if ref else None
        ref_wall = ref.get("wall_s") if ref and ref.get("status") == "ok" else None
        for tool in TOOLS:
            rec = recs.get(tool)
            if rec is None:
                continue
            res = rec.get("result") or {}
            c = crit(rec)
            delta = None if (c is None or ref_crit is None) else c - ref_crit
            fit_s = res.get("fit_s")
            if tool == "lmertest" and fit_s is not None:
                fit_s += res.get("summary_s") or 0.0
            speed = (ref_wall / rec["wall_s"]) if (ref_wall and rec.get("status") == "ok" and rec.get("wall_s")) else None
            status = rec["status"] if rec["status"] != "timeout" else f"timeout ({rec['timeout_s']:.0f} s)"
            lines.append(
                f"| {size} | {res.get('n_obs', '–')} | {tool} | {status} | {fmt(rec.get('wall_s'))} | {fmt(rec.get('cpu_s'))} | "
                f"{fmt(res.get('read_s'), 2)} | {fmt(fit_s, 2)} | {fmt(rec.get('peak_rss_mb'), 0)} | "
                f"{fmt(c, 4)} | {'–' if delta is None else f'{delta:+.2e}'} | {fmt(res.get('loglik'), 4)} | "
                f"{res.get('converged', '–')} | {fmt(speed, 2)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), help="2k 20k 100k 1M or numbers of patients")
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    ap.add_argument("--timeout", type=float, default=900, help="per-run timeout, seconds")
    ap.add_argument("--sm-max", type=int, default=20_000, help="largest size statsmodels is run on")
    ap.add_argument("--sm-timeout", type=float, default=300)
    ap.add_argument("--lmertest-max", type=int, default=100_000, help="largest size lmerTest is run on")
    ap.add_argument("--bobyqa-max", type=int, default=100_000, help="largest size lme4-bobyqa is run on")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "results.json")
    args = ap.parse_args()

    if shutil.which("/usr/bin/time") is None:
        sys.exit("needs /usr/bin/time (Debian package 'time')")
    tools = list(args.tools)
    if "ildstudy" in tools and ildstudy_exe() is None:
        print("note: `ildstudy lmm` not available; skipping the ildstudy column", file=sys.stderr)
        tools.remove("ildstudy")

    sizes = [SIZES.get(s) or int(s) for s in args.sizes]
    for n in sizes:
        path = DATA / f"ild_{label(n)}.csv"
        if not path.exists():
            subprocess.run([str(PYTHON), str(HERE / "make_data.py"), "--sizes", str(n)], check=True)

    started = dt.datetime.now().astimezone()
    meta = {"started": started.isoformat(timespec="seconds"), "formula": FORMULA, "method": "REML",
            "machine": machine(), "versions": versions(), "timeout_s": args.timeout,
            "statsmodels_timeout_s": args.sm_timeout}
    records: list[dict] = []
    for n in sizes:
        path = DATA / f"ild_{label(n)}.csv"
        for tool in tools:
            if tool == "statsmodels" and n > args.sm_max:
                continue
            if tool == "lmertest" and n > args.lmertest_max:
                continue
            if tool == "lme4-bobyqa" and n > args.bobyqa_max:
                continue
            timeout = args.sm_timeout if tool == "statsmodels" else args.timeout
            print(f"[{dt.datetime.now():%H:%M:%S}] {label(n)} {tool} ...", file=sys.stderr, flush=True)
            rec = run_one(tool, path, timeout)
            rec.update(size=label(n), patients=n)
            records.append(rec)
            res = rec.get("result") or {}
            print(f"    {rec['status']} wall={fmt(rec.get('wall_s'))}s rss={fmt(rec.get('peak_rss_mb'), 0)}MB "
                  f"crit={fmt(crit(rec), 4)} converged={res.get('converged')}", file=sys.stderr, flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({**meta, "records": records}, indent=1))
    meta["finished"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    args.out.write_text(json.dumps({**meta, "records": records}, indent=1))
    print(table(records))
    print(f"\nraw results: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
