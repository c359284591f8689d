"""The theta exchange as files: requests written by the coordinator, answers written by the sites.

``ildstudy federate SITES... --exchange DIR`` replays the optimisation from the answers stored in
``DIR/answers/``; the first theta not yet answered by every site is written as the next request
``DIR/requests/round-NNN.json`` and the command stops. Each site runs ``ildstudy site answer STATE
REQUEST --out ANSWER.json`` and sends the answer back (into ``DIR/answers/``). Rerunning ``federate``
continues; when every model has converged it writes the pooled results. Floats are written with
Python's shortest round-trip repr, so a replay sees bit-identical theta values.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ildstudy.errors import IldStudyError
from ildstudy.federated.lmm_exchange import AnswersNeeded, MOMENT_NAMES, Working, site_moments
from ildstudy.federated.site import SiteState

REQUEST = "ildstudy-theta-request/1"
ANSWER = "ildstudy-theta-answer/1"


def _tolist(v):
    return v.tolist() if isinstance(v, np.ndarray) else v


def write_request(folder: Path, pending: dict, protocol_sha256: str) -> Path:
    """Write the next round's request; returns its path."""
    requests = folder / "requests"
    requests.mkdir(parents=True, exist_ok=True)
    number = len(list(requests.glob("round-*.json"))) + 1
    doc = {"schema": REQUEST, "round": number, "protocol_sha256": protocol_sha256,
           "models": {name: {"theta": [float(x) for x in theta], "x_factor": working.x_factor.tolist(),
                             "beta_offset": working.beta_offset.tolist()}
                      for name, (working, theta) in pending.items()}}
    path = requests / f"round-{number:03d}.json"
    path.write_text(json.dumps(doc, indent=1))
    (folder / "answers").mkdir(exist_ok=True)
    return path


def answer_request(state: SiteState, request: dict) -> dict:
    """A site's answer to one request: its sums at each requested theta (no per-patient values).

    Raises
    ------
    IldStudyError
        The request is not a theta request, or is for another protocol or an unknown outcome.
    """
    if request.get("schema") != REQUEST:
        raise IldStudyError(f"not a theta request ({REQUEST})")
    if request["protocol_sha256"] != state.protocol_sha256:
        raise IldStudyError("the request is for a different protocol than this site's state")
    models = {}
    for name, r in request["models"].items():
        if name not in state.rows:
            raise IldStudyError(f"the request asks for outcome {name!r}, which this site's state does not hold")
        working = Working(x_factor=np.asarray(r["x_factor"], dtype=float), beta_offset=np.asarray(r["beta_offset"], dtype=float))
        m = site_moments(state.rows[name], working, np.asarray(r["theta"], dtype=float))
        models[name] = {"theta": r["theta"], "moments": {k: _tolist(m[k]) for k in MOMENT_NAMES}}
    return {"schema": ANSWER, "site": state.site, "round": request["round"], "models": models}


def stored_answers(folder: Path, sites: list[str]):
    """An ``answer`` function over the answers in ``folder/answers`` (raises AnswersNeeded when missing)."""
    table: dict[tuple, dict] = {}
    for path in sorted((folder / "answers").glob("*.json")) if (folder / "answers").is_dir() else []:
        doc = json.loads(path.read_text())
        if doc.get("schema") != ANSWER:
            raise IldStudyError(f"{path}: not a theta answer ({ANSWER})")
        for name, r in doc["models"].items():
            table[(doc["site"], name, tuple(map(float, r["theta"])))] = r["moments"]

    def answer(outcome: str, working: Working, theta: np.ndarray) -> list[dict]:
        key = tuple(map(float, theta))
        found = [table.get((s, outcome, key)) for s in sites]
        if any(f is None for f in found):
            raise AnswersNeeded(theta)
        return found

    return answer
