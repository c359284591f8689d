"""Drug-name normalisation: brand and generic names, case and white space, protocol extensions, warnings,
and the same rules applied in SQL."""

from __future__ import annotations

import duckdb
import ibis
import pytest

from ildstudy.cohort import build_cohort
from ildstudy.cohort.source import generic_name, normalised_name
from ildstudy.protocol import builtin_protocol_text, load_protocol, parse_protocol
from ildstudy.reference.drugs import BRAND_NAMES, DrugNames, normalise_drug_name, unrecognised_drug_problems

BRANDS = {
    "Imuran": "azathioprine", "Azasan": "azathioprine", "CellCept": "mycophenolate mofetil",
    "Myfortic": "mycophenolic acid", "Deltasone": "prednisone", "Rayos": "prednisone", "Orapred": "prednisolone",
    "Millipred": "prednisolone", "Medrol": "methylprednisolone", "Solu-Medrol": "methylprednisolone",
    "Cytoxan": "cyclophosphamide", "Prograf": "tacrolimus", "Neoral": "cyclosporine", "Sandimmune": "cyclosporine",
    "Gengraf": "cyclosporine", "Rituxan": "rituximab", "Trexall": "methotrexate", "Otrexup": "methotrexate",
    "Arava": "leflunomide", "Xeljanz": "tofacitinib", "Gamunex": "ivig", "Privigen": "ivig",
    "intravenous immunoglobulin": "ivig", "Decadron": "dexamethasone", "Cortef": "hydrocortisone",
    "Solu-Cortef": "hydrocortisone", "Kenalog": "triamcinolone", "Celestone": "betamethasone",
}


@pytest.mark.parametrize("spelling,generic", sorted(BRANDS.items()))
def test_brand_names_map_to_generic(spelling, generic):
    names = DrugNames.builtin()
    assert names.generic(spelling) == generic
    assert names.generic(spelling.upper()) == generic
    assert names.generic(f"  {spelling.lower()}\t") == generic


@pytest.mark.parametrize("raw,expected", [
    ("  Mycophenolate \t MOFETIL ", "mycophenolate mofetil"),
    ("AZATHIOPRINE", "azathioprine"),
    ("\n", None), ("", None), (None, None),
    ("IV\u00a0IG", "iv\u00a0ig"),  # only ASCII white space is collapsed (as in SQL)
])
def test_normalise_drug_name(raw, expected):
    assert normalise_drug_name(raw) == expected


def test_generic_names_map_to_themselves_and_unknown_is_none():
    names = DrugNames.builtin()
    for generic in ("azathioprine", "mycophenolate mofetil", "prednisone", "ivig", "hydroxychloroquine"):
        assert names.generic(generic) == generic
    assert names.generic("omeprazole") is None
    assert all(v in names.generics for v in BRAND_NAMES.values())


def test_protocol_drug_names_extend_the_table():
    text = builtin_protocol_text("huapaya2019").replace(
        "[drug_names]", '[drug_names]\n"Aza 50 mg tab" = "azathioprine"\n"Zortress" = "everolimus"')
    protocol = parse_protocol(text)
    names = DrugNames.from_protocol(protocol)
    assert names.generic("AZA 50  MG TAB") == "azathioprine"
    assert names.generic("zortress") == "everolimus"
    assert "everolimus" in names.generics
    # every drug the built-in protocol names is known
    builtin = DrugNames.from_protocol(load_protocol("huapaya2019"))
    for drug in ["azathioprine", "mycophenolic acid", "ivig", "cortisone", "betamethasone"]:
        assert builtin.generic(drug) == drug


def test_unrecognised_names_are_warnings_with_counts():
    problems = unrecognised_drug_problems({"omeprazole": 3, "calcium + vit d": 7, "zz": 1}, "medications")
    assert [p.value for p in problems] == ["calcium + vit d", "omeprazole", "zz"]
    assert all(p.severity == "warning" and p.file == "medications" and p.column == "drug" for p in problems)
    assert "in 7 rows" in problems[0].problem and "in 1 row;" in problems[2].problem


TRICKY = ["  Imuran ", "IMURAN", "imuran\t", "Mycophenolate  MOFETIL", "mycophenolate\nmofetil", "CellCept",
          "Solu-Medrol", "solumedrol", "IV methylprednisolone", "Calcium + Vit D", "omeprazole", "MTX", "  ",
          None, "ciclosporin", "IV immunoglobulin"]


def _sql_generic(con, names: DrugNames) -> list:
    t = con.table("names")
    expr = t.select(t.i, g=generic_name(normalised_name(t.drug), names)).order_by("i")
    return [None if v is None or v != v else v for v in con.execute(expr)["g"]]


def _python_generic(names: DrugNames) -> list:
    return [names.generic(n) or normalise_drug_name(n) for n in TRICKY]


def test_sql_normalisation_matches_python_on_duckdb():
    raw = duckdb.connect()
    raw.execute("CREATE TABLE names (i INTEGER, drug VARCHAR)")
    raw.executemany("INSERT INTO names VALUES (?, ?)", list(enumerate(TRICKY)))
    names = DrugNames.builtin()
    assert _sql_generic(ibis.duckdb.from_connection(raw), names) == _python_generic(names)


@pytest.mark.postgres
def test_sql_normalisation_matches_python_on_postgres(pg_schema):
    import psycopg

    with psycopg.connect(pg_schema, autocommit=True) as c:
        c.execute("CREATE TABLE names (i INTEGER, drug TEXT)")
        with c.cursor() as cur:
            cur.executemany("INSERT INTO names VALUES (%s, %s)", list(enumerate(TRICKY)))
    names = DrugNames.builtin()
    con = ibis.connect(pg_schema)
    try:
        assert _sql_generic(con, names) == _python_generic(names)
    finally:
        con.disconnect()


def test_cohort_reports_unrecognised_names(registry_builder):
    b = registry_builder
    b.patient("p1").med("p1", "Imuran", "2015-01-01").pft("p1", "2015-01-01", 60).pft("p1", "2015-07-01", 61)
    b.med("p1", "Omeprazole", "2015-01-01").med("p1", " omeprazole ", "2016-01-01")
    b.med("p1", "Wonderdrug", "2016-01-01")
    b.ae("p1", "2015-02-01", drug="Zzz")
    cohort = build_cohort(b.build())
    # (the built-in protocol's lung-function check also warns: the hand registry has no raw PFT values)
    got = {(p.file, p.value): p.problem for p in cohort.warnings if p.file != "pft"}
    assert set(got) == {("medications", "omeprazole"), ("medications", "wonderdrug"), ("adverse_events", "zzz")}
    assert "in 2 rows" in got[("medications", "omeprazole")]
    assert all(p.severity == "warning" for p in cohort.warnings)
    assert all("not checked against gli_" in p.problem for p in cohort.warnings if p.file == "pft")
