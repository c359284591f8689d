"""A site's aggregates: what leaves a centre in a federated study (``ildstudy site summarise``).

From the site's own :class:`~ildstudy.cohort.Cohort` this computes, per arm, only sums and counts:

- ``arms``: patients per arm;
- ``table1``: for binary/categorical variables the count of each level and of missing values; for
  continuous variables n, sum and sum of squares (mean and SD pool exactly; medians and IQRs do
  not, and are not sent);
- ``adverse_events``: the 2x2 counts (patients with an event / n) and event counts, per category;
- ``discontinuation``: per arm and per whole month (times rounded to the nearest month), the number
  of stops for an adverse event, stops for another reason and censorings — the risk sets of a
  Kaplan–Meier curve and a Cox model on monthly times;
- ``models``: per outcome, the model's X'X, X'y, y'y, n, number of patients, and the sums of the
  numeric model variables (emmeans' covariate means).

Counts between 1 and ``min_cell - 1`` in ``table1`` and ``adverse_events`` are replaced by
``"<min_cell"`` as in ``share/`` (primary suppression). The model rows needed to answer the theta
rounds (:mod:`ildstudy.federated.lmm_exchange`) are returned separately as :class:`SiteState`,
which stays at the site.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ildstudy.analysis.study import table1_variables
from ildstudy.analysis.trajectories import model_frame, outcome_formula
from ildstudy.cohort import Cohort
from ildstudy.errors import ModelError, OutputError
from ildstudy.federated.lmm_exchange import SiteRows
from ildstudy.lmm.design import build_design
from ildstudy.lmm.formula import parse_formula
from ildstudy.protocol import Protocol

SCHEMA = "ildstudy-site-summary/1"
AE_REASON = "adverse_event"


@dataclass(frozen=True, slots=True)
class SiteState:
    """The site's private model rows, one :class:`SiteRows` per outcome; never shared.

    Attributes
    ----------
    site : str
    protocol_sha256 : str
    rows : dict[str, SiteRows]
    """

    site: str
    protocol_sha256: str
    rows: dict[str, SiteRows]

    def save(self, path: str | Path) -> None:
        """Write to an ``.npz`` file (kept at the site)."""
        arrays = {"_meta": np.array(json.dumps({"site": self.site, "protocol_sha256": self.protocol_sha256,
                                                 "outcomes": list(self.rows)}))}
        for name, r in self.rows.items():
            arrays.update({f"{name}/X": r.X, f"{name}/Z": r.Z, f"{name}/y": r.y, f"{name}/codes": r.codes})
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        Path(path).write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> SiteState:
        """Read a state written by :meth:`save`.

        Raises
        ------
        OutputError
            The file is missing or not a site state.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["_meta"]))
                rows = {}
                for name in meta["outcomes"]:
                    codes = data[f"{name}/codes"].astype(np.int64)
                    rows[name] = SiteRows(X=data[f"{name}/X"], Z=data[f"{name}/Z"], y=data[f"{name}/y"],
                                          codes=codes, n_groups=int(codes.max()) + 1 if codes.size else 0)
        except (OSError, KeyError, ValueError) as exc:
            raise OutputError(f"{path}: not a site state written by 'ildstudy site summarise' ({exc})") from None
        return cls(site=meta["site"], protocol_sha256=meta["protocol_sha256"], rows=rows)


def _count(value: int, min_cell: int) -> int | str:
    value = int(value)
    return f"<{min_cell}" if 0 < value < min_cell else value


def summarise_site(cohort: Cohort, protocol: Protocol, *, site: str, min_cell: int = 5
                   ) -> tuple[dict, SiteState]:
    """The site's aggregates (a JSON-ready dict) and its private model state.

    Parameters
    ----------
    cohort : Cohort
        The site's cohort (``build_cohort(registry, protocol)``).
    protocol : Protocol
        The study protocol, identical at every site (its SHA-256 is recorded and checked when federating).
    site : str
        A label for the site (no patient information).
    min_cell : int
        Counts from 1 to ``min_cell - 1`` in Table 1 and adverse-event counts are suppressed.

    Returns
    -------
    summary : dict
    state : SiteState

    Raises
    ------
    ModelError
        An outcome's model cannot be laid out at this site (e.g. the time model is categorical,
        which the federated fit does not support yet).
    """
    arms = [a.name for a in protocol.arms]
    pts = cohort.patients
    n_by_arm = {a: int((pts["arm"] == a).sum()) for a in arms}
    summary = {
        "schema": SCHEMA, "site": site, "protocol_sha256": protocol.sha256(), "min_cell": int(min_cell),
        "arms": n_by_arm,
        "table1": _table1(pts, arms, protocol, min_cell),
        "adverse_events": _adverse_events(cohort, arms, min_cell),
        "discontinuation": _discontinuation(pts, arms),
        "models": {},
    }
    rows = {}
    for outcome in protocol.outcomes:
        model, site_rows = _model(outcome, protocol, model_frame(pts, cohort.outcomes, outcome.name), arms)
        summary["models"][outcome.name] = model
        rows[outcome.name] = site_rows
    return summary, SiteState(site=site, protocol_sha256=protocol.sha256(), rows=rows)


def _table1(pts: pd.DataFrame, arms: list[str], protocol: Protocol, min_cell: int) -> list[dict]:
    frame = pts.rename(columns={"baseline_fvc_pct_pred": "fvc_pct_pred", "baseline_dlco_pct_pred": "dlco_pct_pred",
                                "baseline_prednisone_mg": "prednisone_mg"})
    out = []
    for var in table1_variables(protocol):
        if var.name not in frame.columns:
            continue
        for arm in arms:
            x = frame.loc[frame["arm"] == arm, var.name]
            missing = int(x.isna().sum())
            if var.kind == "continuous":
                v = pd.to_numeric(x, errors="coerce").dropna().to_numpy(dtype=float)
                small = 0 < len(v) < min_cell
                out.append({"variable": var.name, "kind": "continuous", "arm": arm, "n": _count(len(v), min_cell),
                            "sum": None if small else float(v.sum()),
                            "sum_squares": None if small else float(v @ v), "missing": _count(missing, min_cell)})
            else:
                counts = x.dropna().astype(str).value_counts()
                out.append({"variable": var.name, "kind": var.kind, "arm": arm,
                            "levels": {str(k): _count(c, min_cell) for k, c in sorted(counts.items())},
                            "missing": _count(missing, min_cell)})
    return out


def _adverse_events(cohort: Cohort, arms: list[str], min_cell: int) -> dict:
    pts = cohort.patients[["patient_id", "arm"]]
    ev = cohort.adverse_events.merge(pts, on="patient_id")
    led = ev["led_to_discontinuation"].fillna(False).astype(bool) if len(ev) else pd.Series([], dtype=bool)
    by_arm, by_cat = {}, []
    for arm in arms:
        in_arm = ev["arm"] == arm
        by_arm[arm] = {
            "n": int((pts["arm"] == arm).sum()),
            "patients_with_event": _count(ev.loc[in_arm, "patient_id"].nunique(), min_cell),
            "events": _count(int(in_arm.sum()), min_cell),
            "events_led_to_discontinuation": _count(int((in_arm & led).sum()), min_cell),
            "patients_with_discontinuation": _count(ev.loc[in_arm & led, "patient_id"].nunique(), min_cell),
        }
    for cat in sorted(set(ev["category"].fillna("(missing)").astype(str))):
        sub = ev[ev["category"].fillna("(missing)").astype(str) == cat]
        for arm in arms:
            s = sub[sub["arm"] == arm]
            by_cat.append({"category": cat, "arm": arm, "patients_with_event": _count(s["patient_id"].nunique(), min_cell),
                           "events": _count(len(s), min_cell)})
    return {"by_arm": by_arm, "by_category": by_cat}


def monthly_times(pts: pd.DataFrame) -> pd.DataFrame:
    """Per patient: arm, whole month (nearest; halves round up), event and reason, as the study defines them."""
    months = np.floor(pts["treatment_months"].astype(float).to_numpy() + 0.5)
    event = (pts["treatment_end"].eq("stop").fillna(False).astype(bool) & pts["discontinued"].astype(bool)).to_numpy()
    ae = event & (pts["stop_reason"].astype("string").fillna("").str.strip().str.lower() == AE_REASON).to_numpy()
    return pd.DataFrame({"arm": pts["arm"].astype(str).to_numpy(), "month": months, "event": event, "ae": ae})


def _discontinuation(pts: pd.DataFrame, arms: list[str]) -> list[dict]:
    t = monthly_times(pts)
    t["kind"] = np.where(t["ae"], "stops_adverse_event", np.where(t["event"], "stops_other", "censored"))
    counts = t.groupby(["arm", "month", "kind"]).size().unstack("kind", fill_value=0)
    out = []
    for (arm, month), row in counts.iterrows():
        out.append({"arm": arm, "month": float(month),
                    **{k: int(row.get(k, 0)) for k in ("stops_adverse_event", "stops_other", "censored")}})
    return out


def _model(outcome, protocol: Protocol, frame: pd.DataFrame, arms: list[str]) -> tuple[dict, SiteRows]:
    if outcome.time_model != "linear":
        raise ModelError(f"outcome {outcome.name}: the federated fit supports time_model = 'linear' only "
                         f"(got {outcome.time_model!r})")
    formula = outcome_formula(outcome, protocol)
    levels = {"arm": [protocol.reference_arm] + [a for a in arms if a != protocol.reference_arm]}
    design = build_design(parse_formula(formula), frame, levels)
    codes = design.group_codes.astype(np.int64)
    n = len(design.y)
    enc = design.encoding
    binary = {}
    for name, values in enc.numeric_values.items():
        binary[name] = [float(v) for v in values] if set(values) <= {0.0, 1.0} else None
    model = {
        "formula": formula, "fixed_names": list(design.fixed_names), "random_names": list(design.random_names),
        "n_obs": n, "n_patients": int(len(design.group_levels)), "n_dropped": int(design.n_dropped),
        "XtX": (design.X.T @ design.X).tolist(), "Xty": (design.X.T @ design.y).tolist(),
        "yty": float(design.y @ design.y),
        "numeric_sums": {k: float(v) * n for k, v in enc.numeric_means.items()},
        "binary_values": binary,
    }
    return model, SiteRows(X=design.X, Z=design.Z, y=design.y, codes=codes, n_groups=int(len(design.group_levels)))
