"""In-engine (DuckDB) vs in-memory LMM fits on the benchmark data (issue 13 item 2): time, peak RSS, same results.

    python benchmarks/lmm/in_engine.py --sizes 100k 1M      # data from make_data.py --parquet

Each path runs as its own process under /usr/bin/time -v (wall time, peak RSS):
  memory   pandas.read_parquet + ildstudy.lmm.fit_lmm (rows in Python)
  engine   ibis.duckdb read_parquet + ildstudy.lmm.sufficient.fit_lmm_in_engine (only per-patient sums leave DuckDB)
Then compares the two fits: max relative difference of estimates (relative to max(|estimate|, SE)), SE, df,
and of the REML criterion. Prints a markdown table; raw JSON to benchmarks/lmm/out/in_engine.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
FORMULA = "fvc ~ months*arm + female + age + antisynth + smoker + (1 + months | id)"
SIZES = {"100k": 100_000, "300k": 300_000, "1M": 1_000_000}

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
mode, path, formula, out = sys.argv[1:5]
if mode == "memory":
    import pandas as pd
    from ildstudy.lmm import fit_lmm
    frame = pd.read_parquet(path)
    t1 = time.perf_counter()
    fit = fit_lmm(formula, frame)
else:
    import ibis
    from ildstudy.lmm.sufficient import fit_lmm_in_engine
    con = ibis.duckdb.connect()
    table = con.read_parquet(path)
    t1 = time.perf_counter()
    fit = fit_lmm_in_engine(formula, table)
t2 = time.perf_counter()
fe = fit.fixed_effects
json.dump({"read_s": t1 - t0, "fit_s": t2 - t1, "criterion": fit.criterion, "n_obs": fit.n_obs,
           "n_groups": fit.n_groups, "converged": fit.converged, "term": list(fe["term"]),
           "estimate": fe["estimate"].tolist(), "se": fe["se"].tolist(), "df": fe["df"].tolist()},
          open(out, "w"))
"""


def run(mode: str, data: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fit.json"
        cmd = ["/usr/bin/time", "-v", str(PYTHON), "-c", CHILD, mode, str(data), FORMULA, str(out)]
        start = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if r.returncode != 0:
            return {"mode": mode, "status": f"failed: {r.stderr[-500:]}"}
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
        res = json.loads(out.read_text())
    return {"mode": mode, "status": "ok", "wall_s": wall, "peak_rss_mb": rss / 1024, **res}


def compare(a: dict, b: dict) -> dict:
    assert a["term"] == b["term"]
    est = max(abs(x - y) / max(abs(x), s) for x, y, s in zip(a["estimate"], b["estimate"], a["se"]))
    se = max(abs(x - y) / abs(x) for x, y in zip(a["se"], b["se"]))
    df = max(abs(x - y) / abs(x) for x, y in zip(a["df"], b["df"]))
    crit = abs(a["criterion"] - b["criterion"]) / abs(a["criterion"])
    return {"estimate": est, "se": se, "df": df, "criterion": crit}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["100k", "1M"])
    ap.add_argument("--out", type=Path, default=HERE / "out" / "in_engine.json")
    args = ap.parse_args()
    rows = []
    for size in args.sizes:
        data = HERE / "data" / f"ild_{size}.parquet"
        if not data.exists():
            sys.exit(f"{data} is missing: run make_data.py --sizes {SIZES.get(size, size)} --parquet")
        memory, engine = run("memory", data), run("engine", data)
        diff = compare(memory, engine) if memory["status"] == engine["status"] == "ok" else None
        rows.append({"size": size, "memory": memory, "engine": engine, "max_rel_diff": diff})
        print(json.dumps(rows[-1]["max_rel_diff"]), file=sys.stderr)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                                    "formula": FORMULA, "rows": rows}, indent=2))
    print("| patients | rows | path | wall s | read s | fit s | peak RSS MB | REML criterion |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        for m in ("memory", "engine"):
            x = r[m]
            if x["status"] != "ok":
                print(f"| {r['size']} | – | {m} | {x['status'][:60]} | | | | |")
                continue
            print(f"| {r['size']} | {x['n_obs']} | {m} | {x['wall_s']:.1f} | {x['read_s']:.2f} | {x['fit_s']:.2f} "
                  f"| {x['peak_rss_mb']:.0f} | {x['criterion']:.6f} |")
    for r in rows:
        d = r["max_rel_diff"]
        if d:
            print(f"- {r['size']}: max relative difference engine vs memory: estimates {d['estimate']:.1e}, "
                  f"SE {d['se']:.1e}, df {d['df']:.1e}, REML criterion {d['criterion']:.1e}")


if __name__ == "__main__":
    main()
