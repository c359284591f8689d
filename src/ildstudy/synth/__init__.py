"""Synthetic ILD registries calibrated to Huapaya et al., CHEST 2019, with their planted truth.

``write_registry`` writes the five raw tables (``patients``, ``antibodies``, ``medications``, ``pft``,
``adverse_events``) and ``truth.json``; ``generate_registry`` returns them in memory. The default
registry has exactly 66 AZA and 44 MMF patients eligible under the built-in protocol, planted
ineligible patients for every attrition step, and exactly 22/66 and 6/44 eligible patients with an
adverse event in their follow-up window; outcomes follow known linear mixed models (see
:mod:`ildstudy.synth.calibration`).

>>> import numpy as np
>>> from ildstudy.protocol import load_protocol
>>> tables, truth = generate_registry(None, np.random.default_rng(2019), load_protocol("huapaya2019_published"))
>>> truth.attrition["both_arms"], truth.adverse_events["AZA"]
(6, {'patients_with_event': 22, 'n': 66})
"""

from ildstudy.synth.calibration import HUAPAYA2019, MODELS, Calibration, OutcomeModel
from ildstudy.synth.generate import generate_registry
from ildstudy.synth.truth import Truth
from ildstudy.synth.writers import FORMATS, write_registry

__all__ = ["FORMATS", "HUAPAYA2019", "MODELS", "Calibration", "OutcomeModel", "Truth", "generate_registry",
           "write_registry"]
