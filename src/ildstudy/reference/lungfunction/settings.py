"""The protocol's ``[lung_function]`` table: which reference equation recomputes % predicted and z-scores.

Validated here (pydantic, like :mod:`ildstudy.protocol`) so the protocol only holds it; the derivation is
:mod:`ildstudy.cohort.lungfunction`. See ``docs/protocol.md`` and ``docs/lungfunction.md``.

>>> LungFunctionSettings(reference_equation="gli_global_2022").needs_raw
True
>>> LungFunctionSettings().needs_raw
False
>>> LungFunctionSettings(check_equation="gli_global_2022").equation
'gli_global_2022'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, model_validator

from . import gli2012, nhanes3

#: Spirometry equations of ``reference_equation`` (``as_recorded``: use the pft table's % predicted as written).
SPIROMETRY_EQUATIONS = ("as_recorded", "gli_global_2022", "gli_2012", "nhanes3")
#: Equations that need an ethnicity group, and their groups (``ethnicity_map`` values).
ETHNICITY_GROUPS = {"gli_2012": gli2012.ETHNICITIES, "nhanes3": nhanes3.ETHNICITIES}


class LungFunctionSettings(BaseModel):
    """``[lung_function]``: the reference equations used for every PFT of the study.

    ``reference_equation`` (FVC, FEV1): ``as_recorded`` (default; the recorded ``fvc_pct_pred`` and
    ``dlco_pct_pred`` as the centres wrote them), or ``gli_global_2022`` (race-neutral, recommended by the 2023
    ATS statement), ``gli_2012`` or ``nhanes3``, recomputed from ``fvc_l``, ``fev1_l``, sex, age at test and
    ``patients.height_cm``. ``dlco_equation`` (DLCO/TLCO, used with any equation but ``as_recorded``):
    ``gli_tlco_2017``. ``hb_correction``: adjust predicted DLCO to the test's ``hemoglobin_g_dl`` (2017 ERS/ATS;
    tests without Hb stay unadjusted and are counted). ``ethnicity_map``: ``patients.race_ethnicity`` text ->
    the equation's group (used by gli_2012, nhanes3 only, ignored otherwise; values already spelled as a group
    need no entry). ``hb_correction`` is ignored with ``as_recorded``.

    ``check_equation`` (with ``as_recorded`` only; ignored when ``reference_equation`` recomputes, whose values
    are compared with the recorded ones anyway): the recorded % predicted stay the study's values, and every
    test is also recomputed with this equation (and ``dlco_equation``) to check them — agreement per measure
    and per test year (a laboratory's change of equation shows as a step) — and to give the z-scores and FEV1
    values a registry does not record (outcomes ``fvc_zscore``, ``fev1_pct_pred``, ...).
    ``zscore_trajectories``: the report and results.json also show FVC and DLCO z-score trajectories per arm
    (the outcomes' mixed model fitted to the z-scores); needs an equation (``reference_equation`` or
    ``check_equation``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference_equation: Literal["as_recorded", "gli_global_2022", "gli_2012", "nhanes3"] = "as_recorded"
    dlco_equation: Literal["gli_tlco_2017"] = "gli_tlco_2017"
    hb_correction: StrictBool = False
    ethnicity_map: dict[StrictStr, StrictStr] = {}
    check_equation: Literal["gli_global_2022", "gli_2012", "nhanes3"] | None = None
    zscore_trajectories: StrictBool = False

    @model_validator(mode="after")
    def _groups(self) -> "LungFunctionSettings":
        # ethnicity_map and hb_correction are not refused where unused (ignored: race-neutral equations, as
        # recorded), so a sensitivity analysis can switch reference_equation alone
        groups = ETHNICITY_GROUPS.get(self.equation or "")
        bad = [f"{k!r} = {v!r}" for k, v in self.ethnicity_map.items() if groups and v not in groups]
        if bad:
            raise ValueError(f"ethnicity_map: {', '.join(bad)}: not a group of {self.equation}; "
                             f"expected one of {', '.join(groups)}")
        if self.zscore_trajectories and self.equation is None:
            raise ValueError("zscore_trajectories needs z-scores: set reference_equation or check_equation "
                             "(e.g. \"gli_global_2022\")")
        return self

    @property
    def needs_raw(self) -> bool:
        """Whether % predicted and z-scores are recomputed from raw values."""
        return self.reference_equation != "as_recorded"

    @property
    def checks(self) -> bool:
        """Whether the recorded % predicted are kept and checked against ``check_equation``."""
        return not self.needs_raw and self.check_equation is not None

    @property
    def equation(self) -> str | None:
        """The spirometry equation tests are recomputed with: ``reference_equation`` when it recomputes, else
        ``check_equation`` (None: nothing is recomputed)."""
        return self.reference_equation if self.needs_raw else self.check_equation

    def ethnicity_group(self, text: str | None) -> str | None:
        """The equation's group for a ``race_ethnicity`` value (map first, then the group's own name, any
        case); None when it has none."""
        if text is None:
            return None
        lowered = {k.strip().lower(): v for k, v in self.ethnicity_map.items()}
        t = str(text).strip().lower()
        if t in lowered:
            return lowered[t]
        groups = ETHNICITY_GROUPS.get(self.equation or "", ())
        return t if t in groups else None
