"""Time `ildstudy synth` on a large registry: wall time and peak memory of the whole process (issue 2).

    python benchmarks/synth/run.py                                # 1,000,000 patients, Parquet, 3 runs
    python benchmarks/synth/run.py --patients 200000 --format csv --repeat 1
    python benchmarks/synth/run.py --check                        # exit 1 unless < 60 s and < 4 GB

Each run is a separate process, `.venv/bin/ildstudy synth --out TMP --patients N --format F --seed S`, under
`/usr/bin/time -v` (wall clock, maximum resident set size); without GNU time, the wall clock of the child and
its peak RSS from `resource.getrusage(RUSAGE_CHILDREN)`. The load average before and after each run is
recorded because other processes on the machine slow a run down. Prints a markdown section for
docs/benchmarks.md and writes the raw results as JSON (default benchmarks/synth/out/results.json).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXE = ROOT / ".venv" / "bin" / "ildstudy"
LIMIT_SECONDS = 60.0
LIMIT_GB = 4.0


def machine() -> dict:
    """nproc, CPU model, total memory, platform."""
    cpu, mem_kb = "", None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu or platform.processor(),
            "memory_gb": round(mem_kb / 1024**2, 1) if mem_kb else None,
            "platform": platform.platform(), "python": platform.python_version()}


def run_once(n: int, fmt: str, seed: int) -> dict:
    """One `ildstudy synth` process; returns wall seconds, peak RSS (GB), output size and load averages."""
    out = Path(tempfile.mkdtemp(prefix="ildstudy-synth-bench-"))
    cmd = [str(EXE), "synth", "--out", str(out), "--patients", str(n), "--format", fmt, "--seed", str(seed)]
    rec: dict = {"patients": n, "format": fmt, "seed": seed, "loadavg_before": round(os.getloadavg()[0], 2)}
    gnu_time = shutil.which("time") if Path("/usr/bin/time").exists() else None
    try:
        if gnu_time:
            with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
                t0 = time.perf_counter()
                proc = subprocess.run(["/usr/bin/time", "-v", "-o", tf.name, *cmd], capture_output=True, text=True)
                rec["wall_s"] = round(time.perf_counter() - t0, 2)
                m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(tf.name).read())
                rec["peak_rss_gb"] = round(int(m.group(1)) / 1024**2, 3) if m else None
                rec["peak_rss_source"] = "/usr/bin/time -v"
        else:
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            rec["wall_s"] = round(time.perf_counter() - t0, 2)
            rss_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            rec["peak_rss_gb"] = round(rss_kb / 1024**2, 3)
            rec["peak_rss_source"] = "getrusage(RUSAGE_CHILDREN) (largest child so far)"
        rec["returncode"] = proc.returncode
        rec["stderr_tail"] = proc.stderr[-1000:]
        rec["loadavg_after"] = round(os.getloadavg()[0], 2)
        rec["output_mb"] = round(sum(p.stat().st_size for p in out.iterdir()) / 1024**2, 1)
        rec["rows"] = _rows(out, fmt)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return rec


def _rows(out: Path, fmt: str) -> dict[str, int]:
    if fmt != "parquet":
        return {}
    import pyarrow.parquet as pq

    return {p.stem: pq.ParquetFile(p).metadata.num_rows for p in sorted(out.glob("*.parquet"))}


def markdown(results: list[dict], info: dict, commit: str) -> str:
    """The section for docs/benchmarks.md."""
    r0 = results[0]
    lines = [
        "## Synthetic registry (issue 2)",
        "",
        f"`ildstudy synth --patients {r0['patients']:,} --format {r0['format']}` as one process "
        f"(`benchmarks/synth/run.py`), {len(results)} run(s); limits {LIMIT_SECONDS:.0f} s and {LIMIT_GB:.0f} GB.",
        "",
        f"- Date: {dt.date.today().isoformat()}; commit {commit}",
        f"- Machine: {info['nproc']} cores ({info['cpu']}), {info['memory_gb']} GB RAM, {info['platform']}, "
        f"Python {info['python']}",
        "",
        "| run | wall time (s) | peak RSS (GB) | output (MB) | load avg before → after |",
        "|---|---|---|---|---|",
    ]
    for i, r in enumerate(results, 1):
        lines.append(f"| {i} | {r['wall_s']:.1f} | {r['peak_rss_gb']:.2f} | {r['output_mb']:.0f} | "
                     f"{r['loadavg_before']:.1f} → {r['loadavg_after']:.1f} |")
    if r0.get("rows"):
        lines += ["", "Rows written: " + ", ".join(f"{k} {v:,}" for k, v in r0["rows"].items()) + "."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--format", default="parquet", choices=("csv", "parquet", "xlsx", "duckdb"))
    ap.add_argument("--seed", type=int, default=2019)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=HERE / "out" / "results.json")
    ap.add_argument("--check", action="store_true", help=f"exit 1 unless every run < {LIMIT_SECONDS:.0f} s and "
                                                         f"< {LIMIT_GB:.0f} GB")
    args = ap.parse_args(argv)
    if not EXE.exists():
        print(f"missing {EXE}: run `make install` first", file=sys.stderr)
        return 2
    info = machine()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    results = []
    for i in range(args.repeat):
        rec = run_once(args.patients, args.format, args.seed)
        results.append(rec)
        print(f"run {i + 1}: {rec['wall_s']:.1f} s, {rec['peak_rss_gb']:.2f} GB, load {rec['loadavg_before']:.1f}"
              f" -> {rec['loadavg_after']:.1f}, exit {rec['returncode']}", file=sys.stderr)
        if rec["returncode"] != 0:
            print(rec["stderr_tail"], file=sys.stderr)
            return 1
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": info, "commit": commit, "date": dt.date.today().isoformat(),
                                     "runs": results}, indent=2) + "\n")
    print(markdown(results, info, commit))
    if args.check and any(r["wall_s"] >= LIMIT_SECONDS or r["peak_rss_gb"] >= LIMIT_GB for r in results):
        print(f"over the limit ({LIMIT_SECONDS:.0f} s, {LIMIT_GB:.0f} GB)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
