"""The closed-form check of docs/power.md at many replicates.

    .venv/bin/python benchmarks/power/closed_form_check.py --reps 2000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import time

from ildstudy.analysis.power_check import RandomInterceptDesign, reference_power


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    design = RandomInterceptDesign(n_per_arm=20, visits=4, delta=3.0, sd_between=4.0, sd_within=3.0)
    t0 = time.perf_counter()
    c = reference_power(design, reps=args.reps, seed=args.seed, workers=args.workers)
    r = c.replicates
    print(json.dumps({"reps": c.reps, "seed": args.seed, "closed_form": round(c.closed_form, 6),
                      "simulated": round(c.power, 4), "mcse": round(c.mcse, 4),
                      "wilson_95": [round(c.ci_low, 4), round(c.ci_high, 4)], "z": round(c.z, 2),
                      "max_rel_diff_p_lmm_vs_t_test": float((abs(r.p - r.p_t_test) / r.p_t_test).max()),
                      "seconds": round(time.perf_counter() - t0, 1)}, indent=2))


if __name__ == "__main__":
    main()
