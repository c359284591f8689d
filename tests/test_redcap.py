"""REDCap: the committed example project (examples/redcap/, written from the synthetic registry, seed 2019)
read back through its profile -- raw and labels exports -- gives the canonical registry, and the same cohort."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ildstudy.cli import run as cli
from ildstudy.data import load_registry
from ildstudy.data.profiles import load_profile, parse_profile, read_with_profile
from ildstudy.data.redcap import parse_choices, read_dictionary
from ildstudy.synth.redcap_export import PROJECT, write_redcap_project

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "redcap"


@pytest.fixture(scope="module")
def canonical(tmp_path_factory):
    from ildstudy.synth import write_registry

    folder = tmp_path_factory.mktemp("reg") / "registry"
    write_registry(folder, seed=2019)
    return load_registry(folder)


def _labels_profile():
    text = (EXAMPLE / "profile.toml").read_text().replace(f'records = "{PROJECT}_DATA.csv"',
                                                          f'records = "{PROJECT}_DATA_LABELS.csv"')
    return parse_profile(text.replace('export = "raw"', 'export = "labels"'))


def test_dictionary_and_choices():
    fields, problems = read_dictionary(EXAMPLE / f"{PROJECT}_DataDictionary.csv")
    assert not problems
    assert fields["organ_involvement"].type == "checkbox"
    assert fields["sex"].choices == (("1", "Female"), ("2", "Male"))
    assert parse_choices("1, Yes, really | 0, No") == (("1", "Yes, really"), ("0", "No"))


@pytest.mark.parametrize("export", ["raw", "labels"])
def test_committed_project_reads_back_to_the_canonical_registry(canonical, export):
    profile = load_profile(EXAMPLE / "profile.toml") if export == "raw" else _labels_profile()
    registry = load_registry(EXAMPLE, profile=profile)
    for name, frame in canonical.tables.items():
        pd.testing.assert_frame_equal(registry[name], frame)
    assert registry.sha256() == canonical.sha256()


def test_writer_reproduces_the_committed_project(canonical, tmp_path):
    for path in write_redcap_project(canonical, tmp_path):
        assert path.read_bytes() == (EXAMPLE / path.name).read_bytes(), path.name


def test_same_cohort_as_the_canonical_registry(canonical):
    """Round trip synth -> REDCap export -> import -> cohort. The full `ildstudy run` comparison
    (results.json byte-identical) takes ~70 s per side on the shared machine, so it is the slow test below."""
    from ildstudy.cohort import build_cohort

    a = build_cohort(canonical)
    b = build_cohort(load_registry(EXAMPLE, profile=EXAMPLE / "profile.toml"))
    for name in ("attrition", "patients", "outcomes", "adverse_events", "excluded"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))


@pytest.mark.slow
def test_round_trip_results_json_identical(tmp_path, canonical):
    from ildstudy.synth import write_registry

    write_registry(tmp_path / "registry", seed=2019)
    assert cli(["run", "huapaya2019", str(tmp_path / "registry"), "--out", str(tmp_path / "a")]) == 0
    assert cli(["run", "huapaya2019", str(EXAMPLE), "--profile", str(EXAMPLE / "profile.toml"),
                "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())
    b = json.loads((tmp_path / "b" / "results.json").read_text())
    assert a == b     # data_sha256 included: Registry.sha256 hashes content, not file format


def test_bad_redcap_values_are_located(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project)
    records = project / f"{PROJECT}_DATA.csv"
    lines = records.read_text().splitlines(keepends=True)
    header = lines[0].rstrip("\n").split(",")
    row = next(i for i, line in enumerate(lines) if ",pft," in line)
    cells = lines[row].rstrip("\n").split(",")
    cells[header.index("pft_date")] = "2019-13-45"
    cells[header.index("dlco_unit")] = "7"
    lines[row] = ",".join(cells) + "\n"
    records.write_text("".join(lines))
    _, problems = read_with_profile(load_profile(project / "profile.toml"), project)
    errors = [str(p) for p in problems if p.severity == "error"]
    assert any(e.startswith(f"{PROJECT}_DATA.csv:{row + 1}: pft_date (pft.test_date): '2019-13-45'") for e in errors)
    assert any(e.startswith(f"{PROJECT}_DATA.csv:{row + 1}: dlco_unit (pft.dlco_unit): '7'") for e in errors)


def test_unknown_instrument_is_an_error(tmp_path):
    text = (EXAMPLE / "profile.toml").read_text().replace('instrument = "pft"', 'instrument = "lung_function"')
    _, problems = read_with_profile(parse_profile(text), EXAMPLE)
    assert any("lung_function" in str(p) and "not a form of the data dictionary" in str(p) for p in problems)
