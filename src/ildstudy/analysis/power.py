"""Simulation-based power of a protocol's arm comparison (``ildstudy power``; method in ``docs/power.md``).

For each number of patients ``n`` and each replicate, a *sampled* registry is drawn from the calibrated
generator (:mod:`ildstudy.synth`; random effects and residuals drawn independently, never the balanced
construction) with every patient eligible (60% treatment arm, as 66/44 in the published study) and the
asked effects planted (:mod:`ildstudy.synth.effects`: the true adjusted difference treatment - reference
at the effect's month is ``delta``). The registry is typed and validated in memory as files would be,
the protocol's cohort is built and the outcome of each effect is fitted with the protocol's mixed model
(:func:`~ildstudy.analysis.trajectories.fit_outcome`); the replicate rejects when the p-value of the arm
difference at the effect's month is below ``alpha``. Power is the share of rejections among the fits
that succeeded, with its Monte-Carlo standard error ``sqrt(p (1 - p) / fits)`` and a Wilson 95% interval.

Replicate ``r`` at size ``n`` draws from ``numpy.random.SeedSequence(seed, spawn_key=(n, r))`` (the same
as ``SeedSequence(seed).spawn(n + 1)[n].spawn(reps)[r]``): results do not depend on the number of worker
processes, on the order in which they finish, or on which other sizes are run.

>>> s = PowerSettings.build(sizes="110", effects=["prednisone_mg@36=-6.6"], reps=2, seed=1, workers=1)
>>> s.sizes, s.effects[0].delta
((110,), -6.6)
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import math
import multiprocessing as mp
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ildstudy.errors import IldStudyError

#: z of a two-sided 95% interval (Wilson interval of the power)
Z95 = 1.959963984540054
#: generator outcomes an effect can be planted in
PLANTABLE = ("fvc_pct_pred", "dlco_pct_pred", "prednisone_mg")
#: smallest number of patients per size (the model has 8 fixed effects and needs both arms)
MIN_PATIENTS = 20
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_EFFECT = re.compile(rf"^\s*(?P<outcome>[^@=\s]+)\s*@\s*(?P<month>[^=\s]+)\s*=\s*(?P<delta>\S+)\s*$")


class Effect(BaseModel):
    """A planted effect: the true adjusted difference treatment - reference of ``outcome`` at ``month``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    outcome: str
    month: float = Field(ge=0)
    delta: float = Field(allow_inf_nan=False)

    @model_validator(mode="after")
    def _known(self) -> "Effect":
        if self.outcome not in PLANTABLE:
            raise ValueError(f"unknown outcome {self.outcome!r}; the generator plants effects in "
                             f"{', '.join(PLANTABLE)}")
        return self

    @property
    def text(self) -> str:
        """As written on the command line: ``fvc_pct_pred@36=5``."""
        return f"{self.outcome}@{self.month:g}={self.delta:g}"


def parse_effect(text: str) -> Effect:
    """``"fvc_pct_pred@36=5"`` -> :class:`Effect`; a malformed text raises :class:`IldStudyError`.

    >>> parse_effect("dlco_pct_pred@36=-8.2").delta
    -8.2
    """
    m = _EFFECT.match(str(text))
    if m is None:
        raise IldStudyError(f"--effect {text!r}: write OUTCOME@MONTH=DELTA, e.g. fvc_pct_pred@36=5 "
                            f"(the true difference treatment - reference at that month)")
    for part in ("month", "delta"):
        if not re.fullmatch(_NUMBER, m.group(part)):
            raise IldStudyError(f"--effect {text!r}: {part} {m.group(part)!r} is not a number")
    try:
        return Effect(outcome=m.group("outcome"), month=float(m.group("month")), delta=float(m.group("delta")))
    except ValidationError as exc:
        raise IldStudyError(f"--effect {text}: " + "; ".join(_messages(exc))) from None


def parse_sizes(text: str | int | Sequence[int]) -> tuple[int, ...]:
    """Sizes from ``"60:200:20"`` (start:stop:step, stop included), ``"60,110,200"`` or ``"110"``.

    >>> parse_sizes("60:200:20")
    (60, 80, 100, 120, 140, 160, 180, 200)
    """
    if isinstance(text, int) or (not isinstance(text, str) and isinstance(text, Sequence)):
        values = [text] if isinstance(text, int) else list(text)
    else:
        t = str(text).strip()
        try:
            if ":" in t:
                parts = [int(p) for p in t.split(":")]
                if len(parts) not in (2, 3):
                    raise ValueError
                start, stop, step = (parts + [1])[:3] if len(parts) == 2 else parts
                if step < 1 or stop < start:
                    raise IldStudyError(f"--patients {text}: need start <= stop and step >= 1 in START:STOP:STEP")
                values = list(range(start, stop + 1, step))
            else:
                values = [int(p) for p in t.split(",") if p.strip()]
        except ValueError:
            raise IldStudyError(f"--patients {text!r}: write N, N1,N2,... or START:STOP:STEP "
                                f"(whole numbers), e.g. 60:200:20") from None
    if not values:
        raise IldStudyError(f"--patients {text!r}: no size given")
    bad = [v for v in values if not isinstance(v, (int, np.integer)) or v < MIN_PATIENTS]
    if bad:
        raise IldStudyError(f"--patients {text}: every size must be a whole number >= {MIN_PATIENTS} (got {bad[0]})")
    return tuple(sorted(set(int(v) for v in values)))


class PowerSettings(BaseModel):
    """Settings of a power simulation; frozen, validated, JSON round trip (``model_dump_json``).

    ``workers = None`` means ``os.cpu_count()``; ``workers = 1`` runs in this process.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    sizes: tuple[int, ...] = Field(min_length=1)
    effects: tuple[Effect, ...] = Field(min_length=1)
    reps: int = Field(ge=1, le=1_000_000)
    seed: int = Field(ge=0)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    workers: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> "PowerSettings":
        if any(n < MIN_PATIENTS for n in self.sizes):
            raise ValueError(f"every size must be >= {MIN_PATIENTS} patients")
        names = [e.outcome for e in self.effects]
        twice = sorted({o for o in names if names.count(o) > 1})
        if twice:
            raise ValueError(f"one effect per outcome: {', '.join(twice)} is given twice")
        return self

    @classmethod
    def build(cls, *, sizes, effects, reps: int, seed: int, alpha: float = 0.05,
              workers: int | None = None) -> "PowerSettings":
        """Settings from command-line texts (``sizes="60:200:20"``, ``effects=["fvc_pct_pred@36=5"]``);
        every problem raised as one :class:`IldStudyError`."""
        parsed = [e if isinstance(e, Effect) else parse_effect(e) for e in effects]
        try:
            return cls(sizes=parse_sizes(sizes), effects=tuple(parsed), reps=reps, seed=seed, alpha=alpha,
                       workers=workers)
        except ValidationError as exc:
            raise IldStudyError("\n".join(_messages(exc))) from None

    @property
    def n_workers(self) -> int:
        return self.workers or os.cpu_count() or 1


def _messages(exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        out.append(f"{where}: {msg}" if where else msg)
    return out


@dataclass(frozen=True, slots=True)
class PowerPoint:
    """Power of one effect at one size.

    ``power = rejections / fits``; ``mcse = sqrt(power (1 - power) / fits)``; ``ci_low``, ``ci_high``:
    Wilson 95% interval; ``failed``: replicates whose model could not be fitted (excluded from ``fits``);
    ``mean_estimate``, ``empirical_se`` (SD of the estimates), ``mean_se`` (mean model SE) of the arm
    difference at ``month``.
    """

    n: int
    n_treatment: int
    n_reference: int
    outcome: str
    month: float
    delta: float
    reps: int
    fits: int
    failed: int
    rejections: int
    power: float
    mcse: float
    ci_low: float
    ci_high: float
    mean_estimate: float
    empirical_se: float
    mean_se: float

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class PowerResult:
    """All points of a power simulation and the per-replicate rows they summarise.

    ``replicates``: DataFrame[n, rep, outcome, month, estimate, se, df, p, reject, error], one row per
    size x replicate x effect, sorted.
    """

    settings: PowerSettings
    protocol: str
    contrast: str
    points: tuple[PowerPoint, ...]
    replicates: pd.DataFrame

    def table(self) -> pd.DataFrame:
        """One row per size and effect (the columns of :class:`PowerPoint`)."""
        return pd.DataFrame([p.to_dict() for p in self.points])

    def to_dict(self) -> dict:
        """``power.json``: settings, method and points (no times or worker counts: same seed, same bytes)."""
        s = self.settings
        return {
            "protocol": self.protocol, "contrast": self.contrast,
            "settings": {"sizes": list(s.sizes), "effects": [e.text for e in s.effects], "reps": s.reps,
                         "seed": s.seed, "alpha": s.alpha},
            "method": {
                "design": "sampled", "allocation": "60% treatment arm (66/44 at n = 110), every patient eligible",
                "test": f"two-sided, p of the arm difference at the effect's month < {s.alpha:g}",
                "power": "rejections / successful fits", "mcse": "sqrt(power * (1 - power) / fits)",
                "interval": "Wilson 95%", "seeds": "replicate r at size n: SeedSequence(seed, spawn_key=(n, r))",
            },
            "points": [p.to_dict() for p in self.points],
        }


def _plain(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    return v


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion (``(nan, nan)`` without trials).

    >>> tuple(round(x, 4) for x in wilson_interval(40, 50))
    (0.6696, 0.8876)
    """
    if trials <= 0:
        return math.nan, math.nan
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    lo = 0.0 if successes == 0 else max(0.0, centre - half)     # exact bounds at the extremes
    hi = 1.0 if successes == trials else min(1.0, centre + half)
    return lo, hi


def replicate_seed(seed: int, n: int, rep: int) -> np.random.SeedSequence:
    """The seed of replicate ``rep`` at size ``n`` (independent of workers and of the other sizes)."""
    return np.random.SeedSequence(seed, spawn_key=(int(n), int(rep)))


# -- running replicates in parallel --------------------------------------------------------------------

@contextlib.contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Worker processes started inside inherit one BLAS thread each (unless the user set otherwise)."""
    added = [v for v in _THREAD_VARS if v not in os.environ]
    for v in added:
        os.environ[v] = "1"
    try:
        yield
    finally:
        for v in added:
            os.environ.pop(v, None)


def run_replicates(fn: Callable, jobs: Sequence, workers: int,
                   on_done: Callable[[int, int], None] | None = None) -> list:
    """``[fn(job) for job in jobs]``, in job order, over ``workers`` processes (1: in this process).

    ``fn`` must be a module-level function and ``jobs`` picklable; worker processes are started fresh
    (``spawn``), so no DuckDB or BLAS state is shared. ``on_done(done, total)`` is called as results come in.
    """
    total = len(jobs)
    if workers <= 1 or total <= 1:
        out = []
        for job in jobs:
            out.append(fn(job))
            if on_done:
                on_done(len(out), total)
        return out
    results: list = [None] * total
    with _single_threaded_children(), cf.ProcessPoolExecutor(
            max_workers=min(workers, total), mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
        try:
            for done, fut in enumerate(cf.as_completed(futures), start=1):
                results[futures[fut]] = fut.result()
                if on_done:
                    on_done(done, total)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return results


# -- one replicate of the study -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    n: int
    rep: int
    seed: np.random.SeedSequence
    protocol: object
    effects: tuple[Effect, ...]


def power_calibration():
    """The generator's calibration with no planted ineligible patients: every patient is eligible."""
    from ildstudy.synth.calibration import HUAPAYA2019

    return dataclasses.replace(HUAPAYA2019, planted=tuple((step, 0) for step, _ in HUAPAYA2019.planted))


def registry_from_tables(tables: dict[str, pd.DataFrame]):
    """Type and validate generated tables as :func:`ildstudy.data.load_registry` does for files
    (:func:`ildstudy.data.load.registry_from_frames`)."""
    from ildstudy.data.load import registry_from_frames

    return registry_from_frames(tables)


def _study_replicate(job: _Job) -> list[dict]:
    """One sampled registry with the planted effects -> cohort -> each effect's outcome model."""
    from ildstudy.analysis.trajectories import fit_outcome, model_frame
    from ildstudy.cohort import build_cohort
    from ildstudy.errors import CohortError, ModelError
    from ildstudy.synth import generate_registry
    from ildstudy.synth.effects import planted_model

    protocol = job.protocol
    models = {e.outcome: planted_model(e.outcome, e.month, e.delta) for e in job.effects}
    tables, truth = generate_registry(job.n, np.random.default_rng(job.seed), protocol, balanced=False,
                                      calibration=power_calibration(), models=models)
    base = {"n": job.n, "rep": job.rep, "n_treatment": truth.arms[protocol.treatment_arm],
            "n_reference": truth.arms[protocol.reference_arm]}
    rows = []
    try:
        cohort = build_cohort(registry_from_tables(tables), protocol)
    except CohortError as exc:
        return [{**base, "outcome": e.outcome, "month": e.month, "error": f"cohort: {exc}"} for e in job.effects]
    spec = {o.name: o for o in protocol.outcomes}
    for e in job.effects:
        row = {**base, "outcome": e.outcome, "month": e.month}
        try:
            res = fit_outcome(spec[e.outcome], model_frame(cohort.patients, cohort.outcomes, e.outcome), protocol)
        except ModelError as exc:
            rows.append({**row, "error": str(exc)[:500]})
            continue
        ad = res.arm_differences
        hit = ad[np.isclose(ad["month"].to_numpy(float), e.month)]
        r = hit.iloc[0]
        rows.append({**row, "estimate": float(r["estimate"]), "se": float(r["se"]), "df": float(r["df"]),
                     "p": float(r["p"]), "converged": bool(res.model.get("converged")), "error": None})
    return rows


def check_against_protocol(settings: PowerSettings, protocol) -> None:
    """Each effect's outcome is one of the protocol's, with a contrast at the effect's month."""
    names = [o.name for o in protocol.outcomes]
    months = [float(m) for m in protocol.analysis.contrast_months]
    problems = []
    for e in settings.effects:
        if e.outcome not in names:
            problems.append(f"--effect {e.text}: protocol {protocol.name} has no outcome {e.outcome!r} "
                            f"(it has {', '.join(names)})")
        elif not any(math.isclose(e.month, m) for m in months):
            problems.append(f"--effect {e.text}: month {e.month:g} is not one of the protocol's contrast months "
                            f"({', '.join(f'{m:g}' for m in months)})")
    if len(protocol.arms) != 2:
        problems.append(f"protocol {protocol.name}: power needs two arms (it has {len(protocol.arms)})")
    if problems:
        raise IldStudyError("\n".join(problems))


def simulate_power(settings: PowerSettings, protocol, *,
                   on_replicate: Callable[[int, int], None] | None = None) -> PowerResult:
    """Power of the protocol's arm comparison for each size and effect of ``settings``.

    Parameters
    ----------
    settings : PowerSettings
    protocol : Protocol
        Its cohort rules and outcome models are the analysis of each replicate (two arms).
    on_replicate : callable, optional
        ``on_replicate(done, total)`` after each replicate (progress display).

    Returns
    -------
    PowerResult

    Raises
    ------
    IldStudyError
        An effect names an outcome the protocol lacks, or a month without a contrast.

    Examples
    --------
    >>> from ildstudy.protocol import load_protocol
    >>> s = PowerSettings.build(sizes="60", effects=["prednisone_mg@36=-6.6"], reps=2, seed=1, workers=1)
    >>> simulate_power(s, load_protocol("huapaya2019")).points[0].fits   # doctest: +SKIP
    2
    """
    check_against_protocol(settings, protocol)
    jobs = [_Job(n, r, replicate_seed(settings.seed, n, r), protocol, settings.effects)
            for n in settings.sizes for r in range(settings.reps)]
    rows = [row for rep in run_replicates(_study_replicate, jobs, settings.n_workers, on_replicate) for row in rep]
    reps = _replicate_frame(rows, settings.alpha)
    points = tuple(_point(reps, n, e) for n in settings.sizes for e in settings.effects)
    return PowerResult(settings=settings, protocol=protocol.name,
                       contrast=f"{protocol.treatment_arm} - {protocol.reference_arm}", points=points, replicates=reps)


REPLICATE_COLUMNS = ["n", "rep", "n_treatment", "n_reference", "outcome", "month", "estimate", "se", "df", "p",
                     "reject", "converged", "error"]


def _replicate_frame(rows: list[dict], alpha: float) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for c in ("estimate", "se", "df", "p"):
        if c not in frame:
            frame[c] = np.nan
    if "converged" not in frame:
        frame["converged"] = pd.NA
    frame["reject"] = frame["p"].lt(alpha) & frame["error"].isna()
    return frame[REPLICATE_COLUMNS].sort_values(["n", "outcome", "rep"], kind="stable").reset_index(drop=True)


def _point(reps: pd.DataFrame, n: int, e: Effect) -> PowerPoint:
    g = reps[(reps["n"] == n) & (reps["outcome"] == e.outcome)]
    ok = g[g["error"].isna()]
    fits, k = len(ok), int(ok["reject"].sum())
    power = k / fits if fits else math.nan
    lo, hi = wilson_interval(k, fits)
    est = ok["estimate"].to_numpy(float)
    return PowerPoint(
        n=n, n_treatment=int(g["n_treatment"].iloc[0]), n_reference=int(g["n_reference"].iloc[0]),
        outcome=e.outcome, month=e.month, delta=e.delta, reps=len(g), fits=fits, failed=len(g) - fits,
        rejections=k, power=power, mcse=math.sqrt(power * (1 - power) / fits) if fits else math.nan,
        ci_low=lo, ci_high=hi, mean_estimate=float(est.mean()) if fits else math.nan,
        empirical_se=float(est.std(ddof=1)) if fits > 1 else math.nan,
        mean_se=float(ok["se"].mean()) if fits else math.nan,
    )
