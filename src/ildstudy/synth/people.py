"""The ``patients`` and ``antibodies`` tables.

Antisynthetase status is planted in the plan; the antibody rows make it recoverable by the rule of
``docs/protocol.md`` (any positive Jo-1, PL-7, PL-12, EJ, OJ, KS, Zo or Ha): positive patients have
exactly one positive antisynthetase antibody, negative patients none. Other myositis antibodies
(Ro52, MDA5, TIF1-γ, ...) are added as clinicians test them. Category values are written in the
spellings the loader accepts (``dermatomyositis``, ``ex-smoker``, ``pos``, ``jo1`` ...).
"""

from __future__ import annotations

import numpy as np

from ildstudy.data.schema import ANTIBODIES, DIAGNOSES
from ildstudy.synth.columns import Coded, Dates, Flags, Table
from ildstudy.synth.plan import DIAG, RACES, Plan
from ildstudy.synth.spelling import ANTIBODY, DIAGNOSIS, RESULT, SEX, SMOKING, spell
from ildstudy.synth.windows import NONE, choose, row_order, uniform_int

AB = {a: i for i, a in enumerate(ANTIBODIES)}
SPECIFIC = ("Jo-1", "PL-7", "PL-12", "EJ", "OJ", "KS")
SPECIFIC_P = (0.60, 0.14, 0.14, 0.06, 0.03, 0.03)
DM_SPECIFIC = ("TIF1-γ", "NXP2", "Mi-2", "SAE")


def patient_rows(plan: Plan, rng: np.random.Generator) -> Table:
    """Rows of ``patients`` (one per patient)."""
    n = plan.n
    sex, sex_vocab = spell(np.where(plan.female, 0, 1), ("F", "M"), SEX, rng, plain=0.6)
    diagnosis, diag_vocab = spell(plan.diagnosis.astype(np.int64), DIAGNOSES, DIAGNOSIS, rng, plain=0.5)
    smoking, smoking_vocab = spell(plan.smoking.astype(np.int64), ("never", "former", "current"), SMOKING, rng,
                                   plain=0.5)
    ild_date = plan.index - uniform_int(rng, 0, 900, n)
    ild_date = np.where(plan.ild & (rng.random(n) < 0.9), ild_date, NONE)
    return {"patient_id": np.arange(n), "sex": Coded(sex, sex_vocab), "birth_date": Dates(plan.birth),
            "diagnosis": Coded(diagnosis, diag_vocab), "ild": Flags(plan.ild.astype(np.int8)),
            "ild_diagnosis_date": Dates(ild_date), "smoking_status": Coded(smoking, smoking_vocab),
            "race_ethnicity": Coded(plan.race.astype(np.int32), RACES), "height_cm": plan.height}


def antibody_rows(plan: Plan, rng: np.random.Generator) -> Table:
    """Rows of ``antibodies``: the antisynthetase panel and other myositis antibodies."""
    n = plan.n
    pid = np.arange(n)
    pos = plan.antisynthetase
    specific = np.asarray([AB[a] for a in SPECIFIC])[choose(rng, SPECIFIC_P, n)]
    blocks = [(pid[pos], specific[pos], np.ones(pos.sum(), bool))]
    jo1_negative = ~pos | (specific != AB["Jo-1"])
    blocks.append((pid[jo1_negative], np.full(jo1_negative.sum(), AB["Jo-1"]), np.zeros(jo1_negative.sum(), bool)))
    more = ~pos & (rng.random(n) < 0.5)                         # PL-7 and PL-12 also tested, negative
    for name in ("PL-7", "PL-12"):
        blocks.append((pid[more], np.full(more.sum(), AB[name]), np.zeros(more.sum(), bool)))
    ro52 = rng.random(n) < 0.8
    blocks.append((pid[ro52], np.full(ro52.sum(), AB["Ro52"]), (rng.random(n) < np.where(pos, 0.6, 0.25))[ro52]))
    mda5 = rng.random(n) < 0.5
    cadm = plan.diagnosis == DIAG["CADM"]
    blocks.append((pid[mda5], np.full(mda5.sum(), AB["MDA5"]), (cadm & ~pos & (rng.random(n) < 0.7))[mda5]))
    dm = (plan.diagnosis == DIAG["DM"]) & ~pos & (rng.random(n) < 0.5)
    dm_ab = np.asarray([AB[a] for a in DM_SPECIFIC])[choose(rng, (0.4, 0.3, 0.2, 0.1), n)]
    blocks.append((pid[dm], dm_ab[dm], np.ones(dm.sum(), bool)))
    imnm = (plan.diagnosis == DIAG["IMNM"]) & (rng.random(n) < 0.7)
    imnm_ab = np.where(rng.random(n) < 0.5, AB["SRP"], AB["HMGCR"])
    blocks.append((pid[imnm], imnm_ab[imnm], np.ones(imnm.sum(), bool)))

    patient = np.concatenate([b[0] for b in blocks])
    antibody = np.concatenate([b[1] for b in blocks]).astype(np.int64)
    positive = np.concatenate([b[2] for b in blocks])
    order = row_order(patient, antibody)
    patient, antibody, positive = patient[order], antibody[order], positive[order]
    m = len(patient)
    ab_codes, ab_vocab = spell(antibody, ANTIBODIES, ANTIBODY, rng, plain=0.6)
    res_codes, res_vocab = spell(np.where(positive, 0, 1), ("positive", "negative"), RESULT, rng, plain=0.5)
    test_date = plan.index[patient] - uniform_int(rng, 0, 1500, m)
    test_date = np.where(rng.random(m) < 0.15, NONE, test_date)
    return {"patient_id": patient, "antibody": Coded(ab_codes, ab_vocab), "result": Coded(res_codes, res_vocab),
            "test_date": Dates(test_date)}
