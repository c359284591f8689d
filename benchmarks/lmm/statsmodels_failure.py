"""statsmodels MixedLM on the study model versus lme4: the numbers for statsmodels_failure.md and docs/lmm.md.

    python benchmarks/lmm/statsmodels_failure.py            # markdown to stdout, JSON to out/statsmodels_failure.json

Data: tests/reference/lmm/data/ild110.csv (110 patients, 640 visits, simulated by tests/reference/lmm_reference.R);
lme4's answer: tests/reference/lmm/ild110_reml.json (lmerTest::lmer, REML, default settings).
Model: smf.mixedlm("fvc ~ months*arm + female + age + antisynth + smoker", df, groups="id",
re_formula="~months").fit(reml=True). Also evaluates statsmodels' own REML log-likelihood at lme4's estimates
(to show both programs maximise the same function) and refits with other optimisers.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels
import statsmodels.formula.api as smf
from statsmodels.regression.mixed_linear_model import MixedLMParams

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = ROOT / "tests" / "reference" / "lmm" / "data" / "ild110.csv"
FIXTURE = ROOT / "tests" / "reference" / "lmm" / "ild110_reml.json"
FIXED = "fvc ~ months*arm + female + age + antisynth + smoker"


def fit(model, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        res = model.fit(reml=True, **kw)
        secs = time.perf_counter() - t0
    return res, secs, [f"{w.category.__name__}: {w.message}" for w in caught]


def main() -> None:
    df = pd.read_csv(DATA)
    fx = json.loads(FIXTURE.read_text())
    sd = fx["random_effects"]["sd"]
    r = fx["random_effects"]["corr"][0][1]
    s2 = fx["residual_sd"] ** 2
    lme4_cov = np.array([[sd[0] ** 2, r * sd[0] * sd[1]], [r * sd[0] * sd[1], sd[1] ** 2]])

    model = smf.mixedlm(FIXED, df, groups="id", re_formula="~months")
    res, secs, caught = fit(model)
    cov = np.asarray(res.cov_re)

    # statsmodels' REML log-likelihood at lme4's estimates (fixed effects profiled out, as in lme4).
    model.reml, model.cov_pen, model.fe_pen = True, None, None
    ll_at_lme4 = float(model.loglike(MixedLMParams.from_components(np.zeros(model.k_fe), cov_re=lme4_cov / s2),
                                     profile_fe=True))

    fe_lme4 = {f["term"]: f for f in fx["fixed_effects"]}
    # statsmodels codes arm with AZA as reference; lme4's fixture with MMF. Compare the arm-free terms.
    fe_cmp = []
    for sm_term, r_term in [("months", None), ("female", "female"), ("age", "age"), ("antisynth", "antisynth"),
                            ("smoker", "smoker")]:
        if r_term is None:
            continue
        fe_cmp.append({"term": r_term, "statsmodels": float(res.fe_params[sm_term]), "statsmodels_se": float(res.bse_fe[sm_term]),
                       "lme4": fe_lme4[r_term]["estimate"], "lme4_se": fe_lme4[r_term]["se"]})
    # slope of MMF (the reference arm in lme4) = months + months:arm[T.MMF] in statsmodels' coding
    mmf_slope = float(res.fe_params["months"] + res.fe_params["months:arm[T.MMF]"])
    fe_cmp.insert(0, {"term": "months (MMF slope)", "statsmodels": mmf_slope, "statsmodels_se": None,
                      "lme4": fe_lme4["months"]["estimate"], "lme4_se": fe_lme4["months"]["se"]})

    alternatives = []
    for kw in ({"method": ["lbfgs"]}, {"method": "nm", "maxiter": 20000}, {"method": "powell"}):
        ares, asecs, acaught = fit(smf.mixedlm(FIXED, df, groups="id", re_formula="~months"), **kw)
        alternatives.append({"fit_kwargs": {k: v for k, v in kw.items()}, "loglik": float(ares.llf),
                             "slope_var": float(np.asarray(ares.cov_re)[1, 1]), "converged": bool(ares.converged),
                             "warnings": acaught, "seconds": asecs})

    out = {
        "statsmodels_version": statsmodels.__version__,
        "lme4_version": fx["lme4_version"], "r_version": fx["r_version"],
        "data": str(DATA.relative_to(ROOT)), "n_obs": int(model.nobs), "n_groups": int(model.n_groups),
        "statsmodels": {"loglik": float(res.llf), "converged": bool(res.converged), "warnings": caught,
                        "intercept_var": float(cov[0, 0]), "slope_var": float(cov[1, 1]),
                        "corr": float(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])),
                        "residual_sd": float(np.sqrt(res.scale)), "seconds": secs,
                        "se_months_x_arm": float(res.bse_fe["months:arm[T.MMF]"])},
        "lme4": {"loglik": fx["loglik"], "converged": fx["converged"], "messages": fx["lme4_messages"],
                 "intercept_var": sd[0] ** 2, "slope_var": sd[1] ** 2, "corr": r, "residual_sd": fx["residual_sd"],
                 "se_months_x_arm": fe_lme4["months:armAZA"]["se"]},
        "slope_var_ratio": float(cov[1, 1] / sd[1] ** 2),
        "intercept_var_ratio": float(cov[0, 0] / sd[0] ** 2),
        "loglik_difference": float(res.llf - fx["loglik"]),
        "statsmodels_loglik_at_lme4_estimates": ll_at_lme4,
        "fixed_effects": fe_cmp,
        "alternative_optimisers": alternatives,
    }
    (HERE / "out").mkdir(exist_ok=True)
    (HERE / "out" / "statsmodels_failure.json").write_text(json.dumps(out, indent=1))

    sm, l4 = out["statsmodels"], out["lme4"]
    print(f"statsmodels {out['statsmodels_version']} vs lme4 {out['lme4_version']} ({out['r_version']}), "
          f"{out['n_groups']} patients, {out['n_obs']} visits, REML\n")
    print("| | lme4 | statsmodels (defaults) | ratio / difference |")
    print("|---|---|---|---|")
    print(f"| REML log-likelihood | {l4['loglik']:.4f} | {sm['loglik']:.4f} | {out['loglik_difference']:+.2f} |")
    print(f"| random-slope variance (months) | {l4['slope_var']:.5f} | {sm['slope_var']:.3f} | ×{out['slope_var_ratio']:.0f} |")
    print(f"| random-intercept variance | {l4['intercept_var']:.2f} | {sm['intercept_var']:.2f} | ×{out['intercept_var_ratio']:.2f} |")
    print(f"| intercept–slope correlation | {l4['corr']:.3f} | {sm['corr']:.3f} | |")
    print(f"| residual SD | {l4['residual_sd']:.3f} | {sm['residual_sd']:.3f} | |")
    print(f"| SE of months × arm | {l4['se_months_x_arm']:.4f} | {sm['se_months_x_arm']:.4f} | ×{sm['se_months_x_arm'] / l4['se_months_x_arm']:.1f} |")
    print(f"| converged | {l4['converged']} (no warning) | {sm['converged']} | |")
    print(f"| fit time | | {sm['seconds']:.1f} s | |")
    print(f"\nstatsmodels' own REML log-likelihood evaluated at lme4's estimates: {ll_at_lme4:.6f} "
          f"(lme4 reports {l4['loglik']:.6f})\n")
    print("statsmodels warnings:")
    for w in sm["warnings"]:
        print(f"- {w}")
    print("\nOther optimisers (same data, same model):\n")
    print("| fit(...) | REML log-likelihood | slope variance | converged | warnings | seconds |")
    print("|---|---|---|---|---|---|")
    for a in alternatives:
        kw = ", ".join(f"{k}={v!r}" for k, v in a["fit_kwargs"].items())
        print(f"| `{kw}` | {a['loglik']:.4f} | {a['slope_var']:.5f} | {a['converged']} | {len(a['warnings'])} | {a['seconds']:.1f} |")
    print("\nFixed effects:\n")
    print("| term | lme4 | statsmodels | difference / lme4 SE |")
    print("|---|---|---|---|")
    for f in fe_cmp:
        print(f"| {f['term']} | {f['lme4']:.4f} | {f['statsmodels']:.4f} | {(f['statsmodels'] - f['lme4']) / f['lme4_se']:+.2f} |")


if __name__ == "__main__":
    main()
