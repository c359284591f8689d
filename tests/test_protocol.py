"""The protocol model: built-in protocol, round trip, rejection of unknown keys and bad values."""

import pytest

from ildstudy.errors import ProtocolError
from ildstudy.protocol import builtin_protocol_text, load_protocol, parse_protocol


def test_builtin_protocol_loads():
    p = load_protocol("huapaya2019")
    assert [a.name for a in p.arms] == ["AZA", "MMF"]
    assert p.reference_arm == "MMF"
    assert p.arms[1].drugs == ("mycophenolate mofetil", "mycophenolic acid")
    assert p.baseline.from_days == -90 and p.follow_up.max_months == 60
    assert [o.name for o in p.outcomes] == ["fvc_pct_pred", "dlco_pct_pred", "prednisone_mg"]


def test_round_trip_toml_object_toml():
    p = load_protocol("huapaya2019")
    text = p.to_toml()
    q = parse_protocol(text)
    assert q == p
    assert q.to_toml() == text
    assert q.sha256() == p.sha256()


def test_prednisone_factors_from_equivalence_table():
    f = load_protocol("huapaya2019").prednisone_factor()
    assert f["prednisone"] == 1.0
    assert f["methylprednisolone"] == pytest.approx(1.25)   # 4 mg methylprednisolone = 5 mg prednisone
    assert f["dexamethasone"] == pytest.approx(5 / 0.75)


@pytest.mark.parametrize(
    "old, new, key",
    [
        ("grace_days = 30", "grace_dayz = 30", "follow_up.grace_dayz: unknown key"),
        ('analysis = "as_treated"', 'analysis = "per_protocol"', "follow_up.analysis"),
        ("from_days = -90", "from_days = 90", "baseline"),
        ('adverse_event_test = "yates"', 'adverse_event_test = "t"', "analysis.adverse_event_test"),
        ("max_months = 60", "max_months = -1", "follow_up.max_months"),
    ],
)
def test_bad_keys_and_values_name_the_key(old, new, key):
    text = builtin_protocol_text("huapaya2019")
    assert old in text
    with pytest.raises(ProtocolError) as exc:
        parse_protocol(text.replace(old, new, 1), "my.toml")
    assert key in str(exc.value)
    assert "my.toml" in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(ProtocolError, match="no such protocol file"):
        load_protocol(tmp_path / "x.toml")


def test_invalid_toml(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("name = [", encoding="utf-8")
    with pytest.raises(ProtocolError, match="not valid TOML"):
        load_protocol(f)
