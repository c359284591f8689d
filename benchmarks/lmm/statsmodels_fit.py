"""Fit the benchmark model with statsmodels MixedLM and print one JSON object.

    python benchmarks/lmm/statsmodels_fit.py DATA.csv [--ml] [--method lbfgs|nm|powell]

Model: smf.mixedlm("fvc ~ months*arm + female + age + antisynth + smoker", df, groups="id",
re_formula="~months").fit(reml=True) -- statsmodels' defaults otherwise (optimisers bfgs, then lbfgs, then cg);
--method lbfgs|nm|powell fits with fit(method=["lbfgs"]), fit(method="nm", maxiter=20000) or fit(method="powell"). The REML criterion is reported as
-2 * llf; statsmodels' REML log-likelihood uses the same constants as lme4's (see statsmodels_failure.md).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

T_START = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import statsmodels  # noqa: E402
import statsmodels.formula.api as smf  # noqa: E402

FIXED = "fvc ~ months*arm + female + age + antisynth + smoker"


METHODS = {"lbfgs": {"method": ["lbfgs"]}, "nm": {"method": "nm", "maxiter": 20000}, "powell": {"method": "powell"}}


def fit(df: pd.DataFrame, reml: bool = True, method: str | None = None):
    model = smf.mixedlm(FIXED, df, groups="id", re_formula="~months")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.fit(reml=reml, **(METHODS[method] if method else {}))
    return model, result, [f"{w.category.__name__}: {w.message}" for w in caught]


def main() -> None:
    path = sys.argv[1]
    reml = "--ml" not in sys.argv
    method = sys.argv[sys.argv.index("--method") + 1] if "--method" in sys.argv else None
    t_loaded = time.perf_counter()
    t0 = time.perf_counter()
    df = pd.read_csv(path)
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model, res, caught = fit(df, reml, method)
    fit_s = time.perf_counter() - t0
    cov_re = np.asarray(res.cov_re)
    out = {
        "tool": "statsmodels",
        "statsmodels_version": statsmodels.__version__,
        "data": path,
        "method": "REML" if reml else "ML",
        "optimiser": method or "default",
        "n_obs": int(model.nobs),
        "n_groups": int(model.n_groups),
        "loglik": float(res.llf),
        ("reml_criterion" if reml else "deviance"): float(-2 * res.llf),
        "converged": bool(res.converged),
        "warnings": caught,
        "re_var": [float(cov_re[0, 0]), float(cov_re[1, 1])],
        "re_sd": [float(np.sqrt(cov_re[0, 0])), float(np.sqrt(cov_re[1, 1]))],
        "re_corr": float(cov_re[0, 1] / np.sqrt(cov_re[0, 0] * cov_re[1, 1])) if cov_re[0, 0] > 0 and cov_re[1, 1] > 0 else None,
        "residual_sd": float(np.sqrt(res.scale)),
        "fixed_effects": [
            {"term": k, "estimate": float(res.fe_params[k]), "se": float(res.bse_fe[k])} for k in res.fe_params.index
        ],
        "load_s": t_loaded - T_START,
        "read_s": read_s,
        "fit_s": fit_s,
        "total_s": time.perf_counter() - T_START,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
