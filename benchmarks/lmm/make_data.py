"""Generate ILD-registry-like longitudinal data sets for the LMM benchmark (issue 4).

One row per pulmonary-function visit: id, months, arm (AZA/MMF), female, age, antisynth, smoker, fvc.
About 5.5 visits per patient at irregular times over up to 60 months; FVC %pred follows the study model
    fvc ~ months*arm + female + age + antisynth + smoker + (1 + months | id)
with a random intercept (SD 14) and a random slope (SD 0.12 %pred/month), residual SD 5.

    python benchmarks/lmm/make_data.py                 # 2k, 20k, 100k, 1M patients -> benchmarks/lmm/data/
    python benchmarks/lmm/make_data.py --sizes 2000 --parquet

Files: benchmarks/lmm/data/ild_<N>.csv (and .parquet with --parquet). Same seed, same files.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

DATA_DIR = Path(__file__).resolve().parent / "data"
SIZES = (2_000, 20_000, 100_000, 1_000_000)
LABELS = {2_000: "2k", 20_000: "20k", 100_000: "100k", 1_000_000: "1M"}


def label(n: int) -> str:
    return LABELS.get(n, str(n))


def simulate(n_patients: int, seed: int = 20190401) -> pa.Table:
    rng = np.random.default_rng([seed, n_patients])
    n = n_patients
    aza = rng.random(n) < 0.45
    female = (rng.random(n) < 0.7).astype(np.int8)
    age = np.round(rng.normal(50, 12, n), 1)
    antisynth = (rng.random(n) < 0.6).astype(np.int8)
    smoker = (rng.random(n) < 0.35).astype(np.int8)
    b0 = rng.normal(0, 14, n)
    b1 = rng.normal(0, 0.12, n) + 0.002 * b0
    nvis = np.clip(rng.poisson(4.5, n) + 1, 1, 15)          # mean about 5.5 visits
    follow = rng.uniform(6, 60, n)

    total = int(nvis.sum())
    pid = np.repeat(np.arange(n), nvis)
    start = np.repeat(np.cumsum(nvis) - nvis, nvis)
    first = np.arange(total) == start                        # baseline visit at month 0
    months = rng.uniform(1.0, np.repeat(follow, nvis))
    months = np.where(first, 0.0, months)
    # sort visits within patient by time (baseline stays first because it is 0)
    order = np.lexsort((months, pid))
    months = np.round(months[order], 2)

    a = aza[pid].astype(float)
    mu = (62 + 0.10 * months + 1.5 * a + 0.06 * months * a + 3 * female[pid] - 0.15 * (age[pid] - 50)
          + 2 * antisynth[pid] - 2.5 * smoker[pid] + b0[pid] + b1[pid] * months)
    fvc = np.round(mu + rng.normal(0, 5, total), 1)

    width = len(str(n))
    ids = np.char.add("P", np.char.zfill(np.arange(1, n + 1).astype(str), width))
    return pa.table({
        "id": pa.array(ids[pid]),
        "months": months,
        "arm": pa.array(np.where(aza, "AZA", "MMF")[pid]),
        "female": female[pid],
        "age": age[pid],
        "antisynth": antisynth[pid],
        "smoker": smoker[pid],
        "fvc": fvc,
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="numbers of patients")
    ap.add_argument("--seed", type=int, default=20190401)
    ap.add_argument("--out", type=Path, default=DATA_DIR)
    ap.add_argument("--parquet", action="store_true", help="also write Parquet")
    ap.add_argument("--force", action="store_true", help="rewrite existing files")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for n in args.sizes:
        path = args.out / f"ild_{label(n)}.csv"
        if path.exists() and not args.force and (not args.parquet or path.with_suffix(".parquet").exists()):
            print(f"{path} exists")
            continue
        t0 = time.perf_counter()
        table = simulate(n, args.seed)
        pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none"))
        if args.parquet:
            pq.write_table(table, path.with_suffix(".parquet"))
        print(f"{path}: {n} patients, {table.num_rows} rows, {path.stat().st_size / 1e6:.1f} MB, "
              f"{time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
