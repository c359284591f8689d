"""Adverse events: the planted in-window events, and decoys that a correct rule must not count.

The plan decides which eligible patients have an adverse event inside their follow-up window
(``event_date`` in [index, end of follow-up], ``drug`` empty or a drug of their arm) and the day of
the first one (for discontinuations: within two weeks before the arm drug's stop). Here each such
patient gets that event, sometimes a second one inside the window, and other patients get decoys:
an event before index, an event attributed to prednisone, or an event after the end of follow-up.
"""

from __future__ import annotations

import numpy as np

from ildstudy.data.schema import AE_CATEGORIES
from ildstudy.synth.columns import Coded, Dates, Flags, Table
from ildstudy.synth.medications import Drugs
from ildstudy.synth.plan import Plan
from ildstudy.synth.spelling import DRUG_SPELLINGS, spell
from ildstudy.synth.windows import Windows, choose, row_order, uniform_int

_CAT = {c: i for i, c in enumerate(AE_CATEGORIES)}
#: category probabilities for events on the treatment arm (azathioprine) and the reference arm
ARM_CATEGORIES = (
    {"cytopenia": 0.25, "hepatotoxicity": 0.20, "gi_intolerance": 0.20, "infection": 0.15, "rash": 0.08,
     "pancreatitis": 0.07, "other": 0.05},
    {"gi_intolerance": 0.45, "cytopenia": 0.20, "infection": 0.25, "other": 0.10},
)
DECOY_CATEGORIES = {"infection": 0.5, "other": 0.35, "malignancy": 0.05, "rash": 0.10}


def _probs(table: dict[str, float]) -> np.ndarray:
    p = np.zeros(len(AE_CATEGORIES))
    for k, v in table.items():
        p[_CAT[k]] = v
    return p


def adverse_event_rows(plan: Plan, rng: np.random.Generator, win: Windows, drugs: Drugs,
                       arm_drug: np.ndarray) -> Table:
    """Rows of ``adverse_events``; ``arm_drug`` is each patient's first arm-drug code."""
    n = plan.n
    pid = np.arange(n)
    cut_rel = win.cut - plan.index
    category = np.where(plan.arm == 0, choose(rng, _probs(ARM_CATEGORIES[0]), n),
                        choose(rng, _probs(ARM_CATEGORIES[1]), n))
    blank = (rng.random(n) < 0.2) & ~plan.ae_discontinued
    main = plan.ae
    rows = [dict(patient=pid[main], day=plan.ae_day[main], category=category[main],
                 drug=np.where(blank, -1, arm_drug)[main], serious=rng.random(n)[main] < 0.15,
                 led=plan.ae_discontinued[main])]
    second = main & (rng.random(n) < 0.3)
    day2 = uniform_int(rng, 14, np.maximum(plan.eof - 14, 14), n)
    rows.append(dict(patient=pid[second], day=day2[second],
                     category=np.where(plan.arm == 0, choose(rng, _probs(ARM_CATEGORIES[0]), n),
                                       choose(rng, _probs(ARM_CATEGORIES[1]), n))[second],
                     drug=np.where(rng.random(n) < 0.3, -1, arm_drug)[second], serious=np.zeros(n, bool)[second],
                     led=np.zeros(n, bool)[second]))

    # decoys: 0 before index, 1 attributed to prednisone inside the window, 2 after the end of follow-up
    decoy = (rng.random(n) < np.where(main, 0.15, 0.35)) & plan.has_arm
    kind = choose(rng, (0.35, 0.35, 0.30), n)
    kind = np.where(main & (kind == 1), 0, kind)
    after_ok = plan.eof + 60 <= cut_rel - 1
    kind = np.where((kind == 2) & ~after_ok, 0, kind)
    day = np.select([kind == 0, kind == 1],
                    [-uniform_int(rng, 30, 300, n), uniform_int(rng, 14, np.maximum(plan.eof - 14, 14), n)],
                    plan.eof + uniform_int(rng, 60, np.minimum(300, cut_rel - 1 - plan.eof), n))
    ddrug = np.where(kind == 1, drugs.code("prednisone"), np.where(kind == 2, np.where(rng.random(n) < 0.5, -1,
                                                                                        arm_drug), -1))
    rows.append(dict(patient=pid[decoy], day=day[decoy], category=choose(rng, _probs(DECOY_CATEGORIES), n)[decoy],
                     drug=ddrug[decoy], serious=(rng.random(n) < 0.1)[decoy], led=np.zeros(n, bool)[decoy]))

    r = {k: np.concatenate([b[k] for b in rows]) for k in rows[0]}
    order = row_order(r["patient"], r["day"])
    r = {k: v[order] for k, v in r.items()}
    spelled, vocab = spell(r["drug"], drugs.names, DRUG_SPELLINGS, rng, plain=0.3)
    m = len(r["patient"])
    serious = np.where(rng.random(m) < 0.08, -1, r["serious"].astype(np.int8))
    led = np.where((rng.random(m) < 0.08) & ~r["led"], -1, r["led"].astype(np.int8))
    return {"patient_id": r["patient"], "event_date": Dates(plan.index[r["patient"]] + r["day"]),
            "category": Coded(r["category"].astype(np.int32), AE_CATEGORIES), "drug": Coded(spelled, vocab),
            "serious": Flags(serious.astype(np.int8)), "led_to_discontinuation": Flags(led.astype(np.int8))}
