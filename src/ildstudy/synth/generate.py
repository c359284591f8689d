"""Generate a synthetic registry: plan everyone, then build rows block by block of patients.

The plan (:mod:`~ildstudy.synth.plan`) is drawn for all patients at once; rows are then built for
blocks of ``BLOCK`` patients, each with its own child generator spawned from the caller's generator,
so the same seed gives the same rows whether a registry is returned in memory or streamed to files,
and memory stays bounded for a million patients.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
import pandas as pd

from ildstudy.synth.calibration import HUAPAYA2019, Calibration
from ildstudy.synth.columns import Ids, Table, concat_tables, id_text, to_pandas
from ildstudy.synth.confounding import confounded_models, confounded_plan, confounding_truth
from ildstudy.synth.calibration import OutcomeModel
from ildstudy.synth.effects import checked_models, shifted_random_effects
from ildstudy.synth.events import adverse_event_rows
from ildstudy.synth.measurements import pft_rows
from ildstudy.synth.medications import Drugs, medication_rows
from ildstudy.synth.people import antibody_rows, patient_rows
from ildstudy.synth.plan import Plan, draw_plan
from ildstudy.synth.truth import Truth, build_truth
from ildstudy.synth.windows import Windows

#: patients per block of rows
BLOCK = 50_000
TABLE_NAMES = ("patients", "antibodies", "medications", "pft", "adverse_events")


def id_width(n_patients: int) -> int:
    """Digits of the patient numbers in identifiers (``P000001``): at least six."""
    return max(6, len(str(n_patients)))


class PlannedRegistry:
    """A planned registry whose rows can be built block by block (see :func:`generate_registry`)."""

    def __init__(self, n_patients: int | None, rng: np.random.Generator, protocol,
                 calibration: Calibration = HUAPAYA2019, balanced: bool | None = None,
                 models: dict[str, OutcomeModel] | None = None, confounding: float = 0.0):
        self.protocol = protocol
        self.calibration = calibration
        self.windows = Windows.from_protocol(protocol)
        self.drugs = Drugs.from_protocol(protocol)
        self.balanced = (n_patients is None) if balanced is None else bool(balanced)
        if self.balanced and n_patients is not None and n_patients > BLOCK:
            raise ValueError(f"a balanced registry is built in one block: at most {BLOCK} patients")
        if models and self.balanced:
            raise ValueError("other outcome models (a planted effect) need a sampled registry (balanced=False): "
                             "the balanced construction would undo them")
        if confounding:   # planted confounding by indication (ildstudy.synth.confounding)
            if self.balanced:
                raise ValueError("planted confounding needs a sampled registry (balanced=False): the balanced "
                                 "construction would undo it")
            models = confounded_models(models)
        self.models = checked_models(models)
        self.plan: Plan = draw_plan(n_patients, rng, self.windows, calibration,
                                    tuple(protocol.exclusions.other_agents.drugs), self.balanced)
        self.confounding = None
        if confounding:
            self.plan = confounded_plan(self.plan, float(confounding), rng)
            self.confounding = confounding_truth(float(confounding), self.plan)
        if models:   # a planted effect: the change of the fixed part moved into each patient's random effects
            p = self.plan
            self.plan = dataclasses.replace(p, re=shifted_random_effects(
                p.re, self.models, p.arm == 0, p.female, p.age, p.antisynthetase, p.smoking > 0))
        self.width = id_width(self.plan.n)
        n_blocks = max(1, -(-self.plan.n // BLOCK))
        self._rngs = rng.spawn(n_blocks)
        self.truth: Truth = build_truth(protocol, self.plan.group, self.plan.ae, self.balanced, self.models)
        if self.confounding is not None:
            self.truth = dataclasses.replace(self.truth, confounding=self.confounding)

    def blocks(self) -> Iterator[dict[str, Table]]:
        """The rows of each block of patients, as column tables (patient ids as :class:`Ids`)."""
        for b, rng in enumerate(self._rngs):
            lo, hi = b * BLOCK, min((b + 1) * BLOCK, self.plan.n)
            yield self._block(self.plan.chunk(lo, hi), rng)

    def _block(self, plan: Plan, rng: np.random.Generator) -> dict[str, Table]:
        win, drugs = self.windows, self.drugs
        meds = medication_rows(plan, rng, win, drugs)
        arm_drug = np.asarray([arm[0] for arm in drugs.arm_drugs])[plan.arm]   # the drug events name
        tables = {
            "patients": patient_rows(plan, rng),
            "antibodies": antibody_rows(plan, rng),
            "medications": meds,
            "pft": pft_rows(plan, rng, win, self.calibration),
            "adverse_events": adverse_event_rows(plan, rng, win, drugs, arm_drug),
        }
        first = plan.first_id + 1
        vocab = id_text(np.arange(first, first + plan.n), self.width)
        for t in tables.values():
            t["patient_id"] = Ids(first + np.asarray(t["patient_id"], np.int64), self.width, first, vocab)
        return tables


def generate_registry(n_patients: int | None, rng: np.random.Generator, protocol, *,
                      balanced: bool | None = None, calibration: Calibration = HUAPAYA2019,
                      models: dict[str, OutcomeModel] | None = None,
                      confounding: float = 0.0) -> tuple[dict[str, pd.DataFrame], Truth]:
    """Generate a synthetic raw registry in memory, with its planted truth.

    Parameters
    ----------
    n_patients : int or None
        Number of patients; ``None`` gives the default registry calibrated to Huapaya et al. 2019:
        exactly 66 AZA and 44 MMF patients eligible under the protocol, planted ineligible patients
        for every attrition step, 22/66 and 6/44 eligible patients with an adverse event in their
        follow-up window. With ``N`` the same proportions, scaled to N patients.
    rng : numpy.random.Generator
        The only source of randomness (``numpy.random.default_rng(seed)``).
    protocol : ildstudy.protocol.Protocol
        The protocol whose rules the planted counts are built for (``load_protocol("huapaya2019_published")``).
    balanced : bool, optional
        Build the outcome data so that a mixed model with the study formula recovers the true fixed
        effects up to rounding (random effects centred and whitened within each arm, then moved by the
        smallest amount that cancels their and the residuals' contribution to the estimate; see
        :mod:`ildstudy.synth.balance`): the default registry's study results then show the planted
        effects, not the seed's luck. ``False`` samples everything independently, as a recovery study
        needs. Default: balanced exactly when ``n_patients`` is ``None``. A balanced registry has at most
        ``BLOCK`` (50,000) patients.
    calibration : Calibration, optional
        Counts and shares (default :data:`~ildstudy.synth.calibration.HUAPAYA2019`); e.g. with no planted
        ineligible patients, every patient is eligible.
    models : dict of str to OutcomeModel, optional
        Outcome models replacing the calibrated ones (only their fixed effects may differ), e.g. a planted
        effect from :func:`~ildstudy.synth.effects.planted_model`; sampled registries only (see
        :mod:`ildstudy.synth.effects`). The truth reports these models.
    confounding : float, optional
        Strength of planted confounding by indication (0: none): a lower baseline FVC/DLCO as measured raises
        the odds of the first arm by ``exp(strength)`` per SD of severity, and the FVC/DLCO baseline arm coefficients become 0
        (:mod:`ildstudy.synth.confounding`); sampled registries only. ``truth.json`` gains a ``confounding`` block.

    Returns
    -------
    tables : dict of str to DataFrame
        ``patients``, ``antibodies``, ``medications``, ``pft``, ``adverse_events`` with the canonical
        columns; values as written to files (brand names, mixed spellings), typed as the loader types
        them (text ``object``, dates ``datetime64[ns]``, booleans ``boolean``, numbers ``float64``).
    truth : Truth

    Examples
    --------
    >>> import numpy as np
    >>> from ildstudy.protocol import load_protocol
    >>> tables, truth = generate_registry(None, np.random.default_rng(2019), load_protocol("huapaya2019_published"))
    >>> truth.arms, truth.arm_differences["prednisone_mg"]["36"]
    ({'AZA': 66, 'MMF': 44}, -6.6)
    >>> len(tables["patients"]) == truth.n_patients
    True
    """
    gen = PlannedRegistry(n_patients, rng, protocol, calibration, balanced=balanced, models=models,
                          confounding=confounding)
    blocks = list(gen.blocks())
    tables = {}
    for name in TABLE_NAMES:
        table = concat_tables([b[name] for b in blocks]) if len(blocks) > 1 else blocks[0][name]
        tables[name] = to_pandas(name, table)
    return tables, gen.truth
