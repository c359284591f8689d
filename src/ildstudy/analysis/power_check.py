"""A closed-form check of the power machinery: a case where the mixed model's test is a two-sample t-test.

Two arms of ``n`` patients each, ``k`` visits per patient, ``y = b0 + delta * arm + u_i + e_ij`` with
``u_i ~ N(0, sd_between^2)`` and ``e_ij ~ N(0, sd_within^2)``, analysed with ``y ~ arm + (1 | patient)``
by the package's REML engine and Satterthwaite df. In this balanced design the GLS estimate of the arm
effect is the difference of the arm means of the patient means, its variance is
``(sd_between^2 + sd_within^2 / k) * 2 / n`` and, unless the REML estimate of ``sd_between`` is at 0,
the mixed model's t statistic and df (``2n - 2``) are those of the pooled two-sample t-test on the
patient means. The power is then exactly that of the noncentral t:

    power = P(|T| > t_{1 - alpha/2, 2n - 2}),  T ~ t(2n - 2, ncp = delta / se)

(R's ``power.t.test(n, delta, sd = sqrt(sd_between^2 + sd_within^2 / k), sig.level = alpha,
strict = TRUE)`` gives the same number). simr (R, CRAN only) is not installed here; this check replaces it. The simulated power uses
the same Monte-Carlo engine as ``ildstudy power`` (:func:`~ildstudy.analysis.power.run_replicates`,
seeding, Wilson interval).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ildstudy.analysis.power import run_replicates, wilson_interval


def noncentral_t_power(delta: float, se: float, df: float, alpha: float = 0.05) -> float:
    """Two-sided power of a t-test of an effect ``delta`` with standard error ``se`` and ``df`` df.

    R's ``power.t.test(n = 20, delta = 1)`` gives 0.8689528 (upper tail only, its default
    ``strict = FALSE``; the lower tail adds 2e-7):

    >>> round(noncentral_t_power(1.0, math.sqrt(2 / 20), 38), 6)
    0.868953
    """
    crit = stats.t.ppf(1 - alpha / 2, df)
    ncp = delta / se
    return float(stats.nct.sf(crit, df, ncp) + stats.nct.cdf(-crit, df, ncp))


@dataclass(frozen=True, slots=True)
class RandomInterceptDesign:
    """Two balanced arms, ``visits`` per patient, random intercept; see the module docstring."""

    n_per_arm: int
    visits: int
    delta: float
    sd_between: float
    sd_within: float

    @property
    def se(self) -> float:
        return math.sqrt((self.sd_between ** 2 + self.sd_within ** 2 / self.visits) * 2 / self.n_per_arm)

    @property
    def df(self) -> int:
        return 2 * self.n_per_arm - 2

    def closed_form_power(self, alpha: float = 0.05) -> float:
        return noncentral_t_power(self.delta, self.se, self.df, alpha)

    def simulate(self, rng: np.random.Generator) -> pd.DataFrame:
        """One data set: DataFrame[patient, arm ("control"/"treated"), y]."""
        n, k = self.n_per_arm, self.visits
        patient = np.repeat(np.arange(2 * n), k)
        treated = patient >= n
        y = (self.delta * treated + rng.normal(0.0, self.sd_between, 2 * n)[patient]
             + rng.normal(0.0, self.sd_within, 2 * n * k))
        return pd.DataFrame({"patient": patient, "arm": np.where(treated, "treated", "control"), "y": y})


def _replicate(job: tuple[RandomInterceptDesign, np.random.SeedSequence]) -> dict:
    from ildstudy.lmm import fit_lmm

    design, seed = job
    data = design.simulate(np.random.default_rng(seed))
    fit = fit_lmm("y ~ arm + (1 | patient)", data, reml=True, factor_levels={"arm": ["control", "treated"]})
    row = fit.fixed_effects.set_index("term").loc["armtreated"]
    means = data.groupby("patient")["y"].mean()
    arm = data.groupby("patient")["arm"].first()
    t_test = stats.ttest_ind(means[arm == "treated"], means[arm == "control"], equal_var=True)
    return {"estimate": float(row["estimate"]), "se": float(row["se"]), "df": float(row["df"]),
            "p": float(row["p"]), "p_t_test": float(t_test.pvalue)}


@dataclass(frozen=True, slots=True)
class ReferenceCheck:
    """Simulated against closed-form power; ``replicates``: one row per replicate (estimate, se, df, p,
    p_t_test)."""

    design: RandomInterceptDesign
    alpha: float
    reps: int
    closed_form: float
    power: float
    mcse: float
    ci_low: float
    ci_high: float
    replicates: pd.DataFrame

    @property
    def z(self) -> float:
        """(simulated - closed form) / MC SE at the closed-form power."""
        p = self.closed_form
        return (self.power - p) / math.sqrt(p * (1 - p) / self.reps)


def reference_power(design: RandomInterceptDesign, *, reps: int, seed: int, alpha: float = 0.05,
                    workers: int = 1, on_done=None) -> ReferenceCheck:
    """Simulated power of the mixed model's arm test in ``design``, beside its closed form.

    Replicate ``r`` draws from ``SeedSequence(seed, spawn_key=(0, r))``.

    Examples
    --------
    >>> d = RandomInterceptDesign(n_per_arm=20, visits=4, delta=3.0, sd_between=4.0, sd_within=3.0)
    >>> round(d.closed_form_power(), 3)
    0.581
    """
    jobs = [(design, np.random.SeedSequence(seed, spawn_key=(0, r))) for r in range(reps)]
    rows = pd.DataFrame(run_replicates(_replicate, jobs, workers, on_done))
    k = int((rows["p"] < alpha).sum())
    power = k / reps
    lo, hi = wilson_interval(k, reps)
    return ReferenceCheck(design=design, alpha=alpha, reps=reps, closed_form=design.closed_form_power(alpha),
                          power=power, mcse=math.sqrt(power * (1 - power) / reps), ci_low=lo, ci_high=hi,
                          replicates=rows)
