"""Render a results JSON of run.py as the markdown section for docs/benchmarks.md.

    python benchmarks/lmm/report.py benchmarks/lmm/out/results.json [more.json ...] > section.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import crit, fmt, table  # noqa: E402


def summary(records: list[dict]) -> list[str]:
    by = {(r["size"], r["tool"]): r for r in records}
    lines = []
    for size in dict.fromkeys(r["size"] for r in records):
        il, l4, bq = by.get((size, "ildstudy")), by.get((size, "lme4")), by.get((size, "lme4-bobyqa"))
        if il and l4 and il.get("status") == "ok" and l4.get("status") == "ok":
            speed = l4["wall_s"] / il["wall_s"]
            fit_speed = None
            if (il.get("result") or {}).get("fit_s"):
                fit_speed = l4["result"]["fit_s"] / il["result"]["fit_s"]
            d = crit(il) - crit(l4)
            extra = ""
            if bq and bq.get("status") == "ok":
                extra = f", vs lme4-bobyqa {crit(il) - crit(bq):+.2e}"
            cpu = ""
            if il.get("cpu_s") and l4.get("cpu_s"):
                cpu = f"; CPU time {il['cpu_s']:.1f} s vs {l4['cpu_s']:.1f} s ({l4['cpu_s'] / il['cpu_s']:.1f}×)"
            lines.append(f"- {size}: ildstudy whole process {il['wall_s']:.1f} s vs lme4 {l4['wall_s']:.1f} s wall "
                         f"(**{speed:.1f}×**; lmer fit alone {l4['result']['fit_s']:.1f} s){cpu}; peak RSS "
                         f"{il.get('peak_rss_mb', 0):.0f} MB vs {l4.get('peak_rss_mb', 0):.0f} MB; REML criterion "
                         f"ildstudy − lme4 = {d:+.2e}{extra}.")
    return lines


def main() -> None:
    runs = [json.loads(Path(p).read_text()) for p in sys.argv[1:]]
    data = dict(runs[0])
    data["records"] = sorted((r for run in runs for r in run["records"]), key=lambda r: r["patients"])
    if len(runs) > 1:
        data["started"] = " and ".join(run["started"] for run in runs)
        data["finished"] = runs[-1].get("finished", "?")
    m, v = data["machine"], data["versions"]
    mem = [ln for ln in m["free_g"].splitlines() if ln.startswith("Mem:")]
    print(f"Run {data['started']} → {data.get('finished', '?')} (`benchmarks/lmm/run.py`). Machine: {m['nproc']} cores "
          f"({m['cpu']}), `free -g`: {mem[0].split()[1] if mem else '?'} GB total; {m['platform']}.")
    print(f"Versions: ildstudy {v.get('ildstudy', '?')} (git {v.get('git', 'uncommitted')}), Python {m['python']}, "
          f"numpy {v.get('numpy')}, scipy {v.get('scipy')}, pandas {v.get('pandas')}, statsmodels {v.get('statsmodels')}; "
          f"{v.get('R')}, lme4 {v.get('lme4')}, lmerTest {v.get('lmerTest')}, data.table {v.get('data_table')} "
          f"(reference BLAS, single-threaded).")
    tos = " / ".join(f"{run['timeout_s']:.0f} s" for run in runs)
    print(f"Model: `{data['formula']}`, REML. Per-run timeout {tos} "
          f"(statsmodels {data['statsmodels_timeout_s']:.0f} s).\n")
    print(table(data["records"]))
    print()
    loads = [r.get("loadavg_before") for r in data["records"] if r.get("loadavg_before") is not None]
    if loads:
        print(f"1-minute load average before each run: {min(loads):.1f}–{max(loads):.1f} (2 cores; other work was "
              "running on the machine).\n")
    for line in summary(data["records"]):
        print(line)


if __name__ == "__main__":
    main()
