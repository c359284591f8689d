"""Run a whole study: registry + protocol -> cohort -> Table 1, outcome models, adverse events,
discontinuation -> :class:`~ildstudy.analysis.result.StudyResult`.

>>> from ildstudy.analysis.study import run_study                       # doctest: +SKIP
>>> result = run_study("huapaya2019", "demo-output/registry")          # doctest: +SKIP
>>> result.outcomes["prednisone_mg"].arm_differences                    # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ildstudy import __version__
from ildstudy.analysis.adverse_events import compare_adverse_events
from ildstudy.analysis.cohort_checks import check_cohort_size
from ildstudy.analysis.confounding.study import CONFOUNDING_SKIPPED, confounding_notice, study_confounding
from ildstudy.analysis.discontinuation import discontinuation
from ildstudy.analysis.lung_function import lung_function_result
from ildstudy.analysis.progression_study import study_progression
from ildstudy.analysis.result import OutcomeResult, StudyResult
from ildstudy.analysis.safety import study_safety
from ildstudy.analysis.sensitivity import run_sensitivity
from ildstudy.analysis.table1 import Variable, table1
from ildstudy.analysis.trajectories import fit_outcome, model_frame
from ildstudy.analysis.zscore_trajectories import zscore_trajectories
from ildstudy.cohort import Cohort, build_cohort, connect
from ildstudy.data import Registry, load_registry
from ildstudy.errors import ModelError
from ildstudy.protocol import Protocol, load_protocol
from ildstudy.variables import covariate_spec


def table1_variables(protocol: Protocol) -> list[Variable]:
    """Table 1 rows: demographics, covariates, baseline lung function and dose, follow-up."""
    median = set(protocol.analysis.median_iqr)

    def cont(name: str, label: str) -> Variable:
        return Variable(name, label, "continuous", "median_iqr" if name in median else "mean_sd")

    rows = [
        cont("age", "Age at index, years"),
        Variable("sex", "Female", "binary", positive="F"),
        Variable("antisynthetase", "Antisynthetase antibody", "binary", positive=True),
        Variable("smoking", "Ever smoker", "binary", positive="ever"),
        Variable("diagnosis", "Diagnosis", "categorical"),
        cont("fvc_pct_pred", "Baseline FVC, % predicted"),
        cont("dlco_pct_pred", "Baseline DLCO, % predicted"),
        cont("prednisone_mg", "Baseline prednisone-equivalent, mg/day"),
    ]
    # the protocol's other covariates (ildstudy.variables), each with its registered Table 1 row
    shown = {"age", "sex", "antisynthetase", "smoking", "diagnosis", "baseline_fvc_pct_pred",
             "baseline_dlco_pct_pred", "baseline_prednisone_mg"}
    for name in protocol.analysis.covariates:
        spec = covariate_spec(name)
        if spec.column in shown:
            continue
        shown.add(spec.column)
        if spec.kind == "numeric":
            rows.append(cont(spec.column, spec.label))
        elif spec.kind == "binary":
            rows.append(Variable(spec.column, spec.label, "binary", positive=spec.positive))
        else:
            rows.append(Variable(spec.column, spec.label, "categorical", levels=spec.levels or None))
    return [*rows, cont("follow_up_months", "Follow-up, months")]


def run_study(protocol: Protocol | str | Path, data: Registry | str | Path | None = None, *,
              db: str | None = None, on_step: Callable[[str], None] | None = None) -> StudyResult:
    """Run the protocol on a registry and return every result.

    Parameters
    ----------
    protocol : Protocol, built-in name or TOML path
    data : Registry or registry folder, optional
        Validated and loaded into an embedded DuckDB. Give either ``data`` or ``db``.
    db : str, optional
        A DuckDB file or ``postgresql://`` URL holding the registry tables (``ildstudy load``);
        the cohort SQL then runs inside that database.
    on_step : callable, optional
        Called with a short description before each step (progress display).

    Raises
    ------
    DataError
        The registry is invalid (every problem listed).
    CohortError
        The cohort or an arm is empty, or an arm has fewer than ``analysis.min_patients_per_arm``
        patients; carries the attrition table and the step that emptied it.
    ModelError
        An outcome's model cannot be fitted on this cohort (the message names the outcome).
    """
    step = on_step or (lambda _s: None)
    protocol = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    if (data is None) == (db is None):
        from ildstudy.errors import IldStudyError

        raise IldStudyError("give either a registry folder or --db URL, not both or neither")
    step("Validating the registry")
    if db is None:
        registry = data if isinstance(data, Registry) else load_registry(data)
        source, data_hash, warnings = registry, registry.sha256(), list(registry.problems)
    else:
        source, data_hash, warnings = db, None, []
    step("Building the cohort")
    conn = connect(source)  # opened once (a Registry is copied into DuckDB once) for the primary and every variant
    if db is None and not isinstance(data, Registry):
        # the tables now live in DuckDB; the pandas copy read here (~0.55 GB per 100,000 patients) is not needed
        del registry
        source = None  # noqa: F841
    try:
        cohort = build_cohort(conn, protocol)
        if data_hash is None:
            data_hash = _cohort_hash(cohort)
        # The cohort reports unrecognised drug names itself (on every backend); drop validation's copy.
        warnings = [w for w in warnings if w.column != "drug"] + list(cohort.warnings)
        main = analyse_cohort(cohort, protocol, data_hash=data_hash, on_step=step, warnings=warnings)
        key = protocol.cohort_key()

        def variant(p: Protocol) -> StudyResult:  # the sensitivity summary reads arms, outcomes, adverse events only
            same = p.cohort_key() == key  # a model-only variant (spline time, more covariates): the same cohort
            return analyse_cohort(cohort if same else build_cohort(conn, _summary_cohort_protocol(p)), p,
                                  data_hash=data_hash, sections="sensitivity")

        sensitivity = run_sensitivity(main, variant, on_step=step)
    finally:
        conn.close()
    return main if sensitivity is None else dataclasses.replace(main, sensitivity=sensitivity)


def _summary_cohort_protocol(p: Protocol) -> Protocol:
    """``p`` for a sensitivity analysis's cohort: without the outcomes only ``[progression]`` (FVC in litres) and
    ``[lung_function] zscore_trajectories`` (the z-scores) add, which its summary does not read (each a million
    outcome rows at 100,000 patients). Neither setting changes which patients are in the cohort."""
    update: dict = {}
    if p.progression is not None:
        update["progression"] = None
    if p.lung_function is not None and p.lung_function.zscore_trajectories:
        update["lung_function"] = p.lung_function.model_copy(update={"zscore_trajectories": False})
    return p.model_copy(update=update) if update else p


def analyse_cohort(cohort: Cohort, protocol: Protocol, *, data_hash: str,
                   on_step: Callable[[str], None] | None = None, warnings=(), sections: str = "all") -> StudyResult:
    """Everything after the cohort: Table 1, outcome models, adverse events, discontinuation.

    ``sections="sensitivity"`` computes only what a sensitivity analysis is summarised by (the outcome models'
    arm differences and the adverse events; :func:`~ildstudy.analysis.sensitivity.run_sensitivity`): Table 1,
    discontinuation, progression, safety and confounding are ``None``, and each outcome is fitted with
    ``fit_outcome(detail="differences")`` (no marginal means, slopes or data support). On 10,000 patients the
    sections left out were 85% of each variant's time (``benchmarks/study``), and nothing reads them.

    Raises :class:`~ildstudy.errors.CohortError` first when the cohort or an arm is empty or too small
    (see :func:`~ildstudy.analysis.cohort_checks.check_cohort_size`)."""
    if sections not in ("all", "sensitivity"):
        raise ValueError(f"sections must be 'all' or 'sensitivity', got {sections!r}")
    full = sections == "all"
    step = on_step or (lambda _s: None)
    arms = [a.name for a in protocol.arms]
    ref = protocol.reference_arm
    pts = cohort.patients
    n_by_arm = {a: int((pts["arm"] == a).sum()) for a in arms}
    check_cohort_size(cohort.attrition, n_by_arm, protocol, with_identity_row(cohort.attrition, n_by_arm))

    t1 = disc = safety = confounding = progression = zscores = None
    if full:
        step("Table 1")
        t1 = _table1(pts, protocol, arms)

    outcomes: dict[str, OutcomeResult] = {}
    for outcome in protocol.outcomes:
        step(f"Mixed model: {outcome.label or outcome.name}")
        outcomes[outcome.name] = fit_outcome(outcome, model_frame(pts, cohort.outcomes, outcome.name), protocol,
                                             detail="all" if full else "differences")

    step("Adverse events")
    ev = cohort.adverse_events.merge(pts[["patient_id", "arm"]], on="patient_id")
    per_patient = pts[["patient_id", "arm"]].assign(any_event=pts["patient_id"].isin(ev["patient_id"]))
    ae = compare_adverse_events(per_patient, ev[["patient_id", "arm", "category", "led_to_discontinuation"]],
                                arms, ref, test=protocol.analysis.adverse_event_test)

    if full:
        step("Discontinuation")
        times = pd.DataFrame({
            "patient_id": pts["patient_id"], "arm": pts["arm"],
            "months": pts["treatment_months"].astype(float),
            "event": pts["treatment_end"].eq("stop").fillna(False).astype(bool) & pts["discontinued"].astype(bool),
            "reason": pts["stop_reason"],
        })
        disc = discontinuation(times, arms, ref)

        if protocol.progression is not None:
            step("Progression: declines from baseline and the FVC slope")
        progression = study_progression(pts, cohort.outcomes, protocol)

        if protocol.lung.zscore_trajectories:
            step("Lung function: z-score trajectories")
            zscores = zscore_trajectories(pts, cohort.outcomes, protocol)

        step("Safety: person-time and competing risks")
        safety = study_safety(pts, cohort.adverse_events, arms, ref)

        step("Confounding: propensity score, weighting and matching")
        try:
            confounding = study_confounding(pts, cohort.outcomes, cohort.adverse_events, protocol)
        except ModelError as exc:  # e.g. a tiny cohort whose propensity model is rank deficient: the rest stands
            warnings = [*warnings, f"{CONFOUNDING_SKIPPED}: {exc}"]
        warnings = [*warnings, *confounding_notice(protocol)]

    attrition = with_identity_row(cohort.attrition, n_by_arm)
    provenance = {"ildstudy_version": __version__, "protocol_sha256": protocol.sha256(), "data_sha256": data_hash}
    return StudyResult(
        protocol=protocol, arms=n_by_arm, attrition=attrition, table1=t1, outcomes=outcomes,
        adverse_events=ae, discontinuation=disc, warnings=tuple(str(w) for w in warnings), provenance=provenance,
        safety=safety, confounding=confounding, progression=progression,
        lung_function=lung_function_result(cohort.lung_function, protocol, zscores),
    )


def _table1(pts: pd.DataFrame, protocol: Protocol, arms: list[str]):
    t1_frame = pts.rename(columns={"baseline_fvc_pct_pred": "fvc_pct_pred",
                                   "baseline_dlco_pct_pred": "dlco_pct_pred",
                                   "baseline_prednisone_mg": "prednisone_mg"})
    return table1(t1_frame, "arm", arms, table1_variables(protocol))


def _cohort_hash(cohort: Cohort) -> str:
    """A content hash of the analysis tables, for data read from a database."""
    import hashlib

    from ildstudy.data.registry import update_content_hash

    h = hashlib.sha256()
    for frame in (cohort.patients, cohort.outcomes, cohort.adverse_events):
        update_content_hash(h, frame)
    return h.hexdigest()


def with_identity_row(attrition: pd.DataFrame, n_by_arm: dict[str, int]) -> pd.DataFrame:
    """The attrition table plus a last row stating that nothing was lost:
    registry patients = excluded at exactly one step + cohort."""
    total = int(attrition["remaining"].iloc[0])
    excluded = int(attrition["excluded"].iloc[1:].sum())
    cohort = sum(n_by_arm.values())
    if total != excluded + cohort:  # build_cohort checks this too; never silently write a broken table
        raise AssertionError(f"attrition does not add up: {total} != {excluded} + {cohort}")
    row = {c: pd.NA for c in attrition.columns}
    row.update({"step": "cohort", "reason": f"registry {total} = excluded {excluded} + cohort {cohort}",
                "excluded": excluded, "remaining": cohort})
    row.update({f"remaining_{a}": n for a, n in n_by_arm.items()})
    extra = pd.DataFrame([row]).astype(attrition.dtypes.to_dict())
    return pd.concat([attrition, extra], ignore_index=True)
