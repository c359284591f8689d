"""Rewrite the committed example inputs from the synthetic registry (seed 2019) with the library's own writers.

Run after a change to the synthetic generator: ``.venv/bin/python examples/regenerate.py``. The tests
(tests/test_profiles.py, test_redcap.py, test_omop_csv.py) check that the examples read back to the canonical
registry and, for REDCap and OMOP, that the writers reproduce them byte for byte.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ildstudy.data import load_registry
from ildstudy.synth import write_registry
from ildstudy.synth.centre_export import write_centre_export
from ildstudy.synth.redcap_export import write_redcap_project

HERE = Path(__file__).resolve().parent


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="ildstudy-examples-") as tmp:
        write_registry(Path(tmp) / "registry", seed=2019)
        registry = load_registry(Path(tmp) / "registry")
        write_centre_export(registry, HERE / "profile" / "export")
        write_redcap_project(registry, HERE / "redcap")
        write_registry(Path(tmp) / "omop", seed=2019, fmt="omop-csv")
        for path in sorted((Path(tmp) / "omop").glob("*.csv")):
            (HERE / "omop" / path.name).write_bytes(path.read_bytes())


if __name__ == "__main__":
    main()
