"""OMOP CDM v5.4 input: synth -> CDM -> the same cohort and results as the canonical registry; concept sets with
descendants; OHDSI drug eras; bad CDM values named by table, row and column; the same read on PostgreSQL.

The round trip uses one small synthetic registry (150 patients, seed 7) written both as canonical CSV and as a
CDM (``ildstudy synth --format omop``), and the built-in protocol without its sensitivity analyses (to keep the
test fast; they re-run the same code on the same registry).
"""

from __future__ import annotations

import re
import shutil

import duckdb
import pandas as pd
import pytest

from ildstudy.analysis.serialize import results_document
from ildstudy.analysis.study import run_study
from ildstudy.cli import run as cli
from ildstudy.data import load_registry
from ildstudy.data.omop import check_omop, load_omop, settings_for
from ildstudy.data.omop.concepts import ConceptSet, OmopSettings
from ildstudy.data.omop.eras import drug_eras
from ildstudy.data.omop.reader import read_omop
from ildstudy.protocol import builtin_protocol_text, load_protocol, parse_protocol
from ildstudy.synth import write_registry

PATIENTS, SEED = 150, 7
AZA = 19014878


@pytest.fixture(scope="module")
def protocol():
    return load_protocol("huapaya2019").model_copy(update={"sensitivity": ()})


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("omop")
    write_registry(root / "registry", n_patients=PATIENTS, seed=SEED, fmt="csv")
    write_registry(root / "cdm", n_patients=PATIENTS, seed=SEED, fmt="omop")
    return root / "registry", root / "cdm" / "cdm.duckdb"


def _copy(cdm, tmp_path, sql: str = ""):
    path = tmp_path / "cdm.duckdb"
    shutil.copy(cdm, path)
    if sql:
        with duckdb.connect(str(path)) as con:
            con.execute(sql)
    return path


def test_cdm_gives_the_canonical_tables(inputs, protocol):
    canonical = load_registry(inputs[0])
    omop = load_omop(str(inputs[1]), protocol=protocol)
    assert omop.problems == ()
    for name in ("patients", "pft", "adverse_events"):
        a = canonical[name].reset_index(drop=True)
        b = omop[name].reset_index(drop=True)
        if name == "adverse_events":  # the CDM names the generic drug of the suspected drug, not its spelling
            from ildstudy.reference.drugs import DrugNames

            a = a.assign(drug=a["drug"].map(DrugNames.from_protocol(protocol).generic))
        pd.testing.assert_frame_equal(a, b, check_dtype=False, obj=name)
    # antibodies: the same tests (an undated test is dated at the start of observation in the CDM)
    key = ["patient_id", "antibody", "result"]
    assert sorted(map(tuple, canonical["antibodies"][key].values)) == sorted(map(tuple, omop["antibodies"][key].values))


def test_cdm_gives_the_same_cohort_and_results(inputs, protocol):
    a = run_study(protocol, load_registry(inputs[0]))
    b = run_study(protocol, load_omop(str(inputs[1]), protocol=protocol))
    assert a.arms == b.arms
    pd.testing.assert_frame_equal(a.attrition, b.attrition)
    da, db = results_document(a), results_document(b)
    assert da["data_sha256"] != db["data_sha256"]  # the provenance hash is of the tables as read
    # The canonical run warns about drug names it cannot place (omeprazole, ...); the CDM route reads drugs by
    # concept set only, so it has nothing to warn about.
    # Both routes flag the same PFTs that the lung-function check could not recompute (no raw value or height).
    lung = [w for w in da["warnings"] if w.startswith("pft: ")]
    assert lung and db["warnings"] == lung
    assert all("unrecognised drug name" in w for w in da["warnings"] if w not in lung)
    for k in da:
        if k not in ("data_sha256", "warnings"):
            assert da[k] == db[k], k


def test_descendants_come_from_concept_ancestor(inputs, tmp_path):
    with duckdb.connect(str(inputs[1]), read_only=True) as con:
        brand = con.execute("SELECT descendant_concept_id FROM concept_ancestor WHERE ancestor_concept_id = ? "
                            "AND min_levels_of_separation = 1", [AZA]).fetchall()
        n = dict(con.execute("SELECT drug_concept_id, count(*) FROM drug_exposure GROUP BY 1").fetchall())
    assert len(brand) == 1 and n[brand[0][0]] > 0 and n[AZA] > 0  # Imuran, Azasan, ... are the branded concept
    keep = OmopSettings().keep_exposures + ("azathioprine",)  # no eras: one medication row per exposure

    def azathioprine_rows(settings, path=inputs[1]):
        registry, _ = read_omop(str(path), settings=settings)
        return int((registry["medications"]["drug"] == "azathioprine").sum())

    assert azathioprine_rows(OmopSettings(keep_exposures=keep)) == n[AZA] + n[brand[0][0]]
    only = OmopSettings(keep_exposures=keep, drugs={"azathioprine": ConceptSet(concept_ids=(AZA,),
                                                                                include_descendants=False)})
    assert azathioprine_rows(only) == n[AZA]
    # without the vocabulary tables only the listed ids count
    bare = _copy(inputs[1], tmp_path, "DROP TABLE concept_ancestor; DROP TABLE concept")
    assert azathioprine_rows(OmopSettings(keep_exposures=keep), bare) == n[AZA]


def _exposures(*spans, reason=None):
    rows = [{"person": 1, "drug": "azathioprine", "start": pd.Timestamp(a), "stop": pd.Timestamp(b) if b else pd.NaT,
             "reason": reason} for a, b in spans]
    return pd.DataFrame(rows)


def test_drug_era_persistence_gap():
    # a restart 30 days after the stop continues the era (OHDSI: start <= end + persistence window); 31 days
    # starts a new one
    x = _exposures(("2015-01-01", "2015-03-01"), ("2015-03-31", "2015-05-01"))
    assert len(drug_eras(x, 30)) == 1 and str(drug_eras(x, 30)["stop"].iloc[0].date()) == "2015-05-01"
    assert len(drug_eras(x, 29)) == 2
    y = _exposures(("2015-01-01", "2015-03-01"), ("2015-04-01", "2015-05-01"))
    assert len(drug_eras(y, 30)) == 2 and len(drug_eras(y, 31)) == 1
    # an exposure inside another does not shorten the era; an open exposure makes the era open
    z = _exposures(("2015-01-01", "2015-06-01"), ("2015-02-01", "2015-03-01"), ("2015-06-20", None))
    era = drug_eras(z, 30)
    assert len(era) == 1 and pd.isna(era["stop"].iloc[0]) and era["n_exposures"].iloc[0] == 3
    # the reason is that of the exposure that ends the era
    w = pd.concat([_exposures(("2015-01-01", "2015-02-01"), reason="other"),
                   _exposures(("2015-02-10", "2015-04-01"), reason="adverse_event")], ignore_index=True)
    assert drug_eras(w, 30)["reason"].tolist() == ["adverse_event"]


def test_persistence_days_is_a_protocol_setting(inputs):
    text = builtin_protocol_text("huapaya2019") + "\n[omop]\npersistence_days = 0\n"
    p = parse_protocol(text)
    assert p.omop.persistence_days == 0 and parse_protocol(p.to_toml()) == p  # TOML round trip
    wide, _ = read_omop(str(inputs[1]), settings=settings_for(load_protocol("huapaya2019")))
    narrow, _ = read_omop(str(inputs[1]), settings=settings_for(p))
    assert len(narrow["medications"]) > len(wide["medications"])  # fewer exposures joined into eras


def test_bad_values_name_table_row_and_column(inputs, tmp_path):
    with duckdb.connect(str(inputs[1]), read_only=True) as con:
        fvc = con.execute("SELECT min(measurement_id) FROM measurement m JOIN concept c ON "
                          "c.concept_id = m.measurement_concept_id WHERE c.concept_code = '19872-1'").fetchone()[0]
        top = con.execute("SELECT max(measurement_id) FROM measurement").fetchone()[0]
    bad = _copy(inputs[1], tmp_path, f"""
        UPDATE measurement SET unit_concept_id = 9999 WHERE measurement_id = {fvc};
        INSERT INTO measurement (measurement_id, person_id, measurement_concept_id, measurement_date,
                                 value_as_number, unit_concept_id) VALUES ({top + 1}, 99999, 3000963, DATE '2015-01-01',
                                 12.5, 8713);
        UPDATE person SET gender_concept_id = 0 WHERE person_id = 3;
        UPDATE drug_exposure SET sig = 'two tablets' WHERE drug_exposure_id = 1;""")
    _, problems = check_omop(str(bad))
    text = [str(p) for p in problems if p.severity == "error"]
    assert f"measurement[measurement_id={fvc}]: unit_concept_id: '9999' is not a unit of fvc_pct_pred " \
           "(accepted: 8554 (%))" in text
    assert f"measurement[measurement_id={top + 1}]: person_id: '99999' is not a person_id in person" in text
    assert any(t.startswith("person[person_id=3]: gender_concept_id: '0' is not FEMALE") for t in text)
    assert any(t.startswith("drug_exposure[drug_exposure_id=1]: sig: 'two tablets'") for t in text)
    out = tmp_path / "out"
    assert cli(["validate", "--omop", str(bad)]) == 2
    assert cli(["run", "huapaya2019", "--omop", str(bad), "--out", str(out)]) == 2 and not out.exists()


def test_out_of_range_value_names_its_measurement(inputs, tmp_path):
    with duckdb.connect(str(inputs[1]), read_only=True) as con:
        mid = con.execute("SELECT max(measurement_id) FROM measurement m JOIN concept c ON "
                          "c.concept_id = m.measurement_concept_id WHERE c.concept_code = '98130-8'").fetchone()[0]
    bad = _copy(inputs[1], tmp_path, f"UPDATE measurement SET value_as_number = 900 WHERE measurement_id = {mid}")
    _, problems = check_omop(str(bad))
    hits = [p for p in problems if p.file == f"measurement[measurement_id={mid}]"]
    assert hits and hits[0].column == "value_as_number" and hits[0].value == "900.0"


def test_cli_validate_and_run_need_exactly_one_input(inputs, tmp_path, capsys):
    assert cli(["validate", "--omop", str(inputs[1])]) == 0
    assert "valid, no problems found" in capsys.readouterr().out
    assert cli(["run", "huapaya2019", str(inputs[0]), "--omop", str(inputs[1]), "--out", str(tmp_path / "o")]) == 2
    assert "exactly one" in capsys.readouterr().err
    assert cli(["run", "huapaya2019", "--omop", str(tmp_path / "none.duckdb"), "--out", str(tmp_path / "o")]) == 2
    assert "no such DuckDB file" in capsys.readouterr().err


def test_protocol_drug_without_a_concept_set_is_an_error(inputs):
    text = builtin_protocol_text("huapaya2019").replace('drugs = ["azathioprine"]', 'drugs = ["azathioprine", '
                                                                                       '"voclosporin"]')
    p = parse_protocol(text.replace("[drug_names]\n", "[drug_names]\nvoclosporin = \"voclosporin\"\n"))
    _, problems = check_omop(str(inputs[1]), protocol=p)
    assert [str(x) for x in problems if x.file == "omop.drugs"] == [
        "omop.drugs: voclosporin: names a drug of the protocol that has no concept set: add "
        "[omop.drugs.\"voclosporin\"] concept_ids = [...] to the protocol"]


def _duckdb_to_postgres(path, url: str) -> str:
    """Copy every table of the DuckDB CDM into the test schema of ``url``; return the schema name."""
    import psycopg

    schema = re.search(r"search_path%3D(\w+)", url).group(1)
    src = duckdb.connect(str(path), read_only=True)
    with psycopg.connect(url, autocommit=True) as pg:
        for (table,) in src.execute("SELECT table_name FROM information_schema.tables").fetchall():
            cols = src.execute(f"DESCRIBE {table}").fetchall()
            ddl = ", ".join(f'"{c[0]}" {"DOUBLE PRECISION" if c[1] == "DOUBLE" else c[1]}' for c in cols)
            pg.execute(f'CREATE TABLE "{schema}"."{table}" ({ddl})')
            rows = src.execute(f"SELECT * FROM {table}").fetchall()
            with pg.cursor().copy(f'COPY "{schema}"."{table}" FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)
    src.close()
    return schema


@pytest.mark.postgres
def test_same_read_on_postgresql(inputs, pg_schema, tmp_path):
    bad = _copy(inputs[1], tmp_path, "UPDATE measurement SET unit_concept_id = 9999 WHERE measurement_id = 5")
    schema = _duckdb_to_postgres(bad, pg_schema)
    on_duckdb, p_duckdb = check_omop(str(bad))
    on_pg, p_pg = check_omop(pg_schema, schema)
    for name, frame in on_duckdb.tables.items():
        pd.testing.assert_frame_equal(frame, on_pg[name], obj=name)
    assert [str(p) for p in p_pg] == [str(p) for p in p_duckdb] and any("measurement_id=5" in str(p) for p in p_pg)
