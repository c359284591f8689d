"""Simulation-based power (``ildstudy power``, docs/power.md) and the synthetic registry's ``--design``."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ildstudy.analysis.power import (PowerSettings, check_against_protocol, parse_effect, parse_sizes,
                                     replicate_seed, simulate_power, wilson_interval)
from ildstudy.analysis.power_check import RandomInterceptDesign, noncentral_t_power, reference_power
from ildstudy.errors import IldStudyError
from ildstudy.protocol import load_protocol
from ildstudy.synth import MODELS, generate_registry
from ildstudy.synth.effects import planted_model
from ildstudy.synth.generate import PlannedRegistry

PROTOCOL = load_protocol("huapaya2019")
PUBLISHED = ["fvc_pct_pred@36=1.9", "dlco_pct_pred@36=-8.2", "prednisone_mg@36=-6.6"]


# -- settings ----------------------------------------------------------------------------------------

def test_effect_parsing():
    e = parse_effect("fvc_pct_pred@36=5")
    assert (e.outcome, e.month, e.delta, e.text) == ("fvc_pct_pred", 36.0, 5.0, "fvc_pct_pred@36=5")
    assert parse_effect(" dlco_pct_pred @ 36 = -8.2 ").delta == -8.2
    assert parse_effect("prednisone_mg@0=-1e0").month == 0.0


@pytest.mark.parametrize("text, message", [
    ("fvc_pct_pred36=5", "write OUTCOME@MONTH=DELTA"),
    ("fvc_pct_pred@36", "write OUTCOME@MONTH=DELTA"),
    ("fvc_pct_pred@x=5", "month 'x' is not a number"),
    ("fvc_pct_pred@36=five", "delta 'five' is not a number"),
    ("fvc_pct_pred@36=nan", "delta 'nan' is not a number"),
    ("fvc_pct_pred@-3=5", "month: Input should be greater than or equal to 0"),
    ("fvc@36=5", "unknown outcome 'fvc'; the generator plants effects in fvc_pct_pred, dlco_pct_pred"),
])
def test_effect_errors_are_clear(text, message):
    with pytest.raises(IldStudyError, match="--effect") as info:
        parse_effect(text)
    assert message in str(info.value)


def test_sizes():
    assert parse_sizes("60:200:20") == (60, 80, 100, 120, 140, 160, 180, 200)
    assert parse_sizes("60:100") == tuple(range(60, 101))
    assert parse_sizes("110,60, 60") == (60, 110)
    assert parse_sizes(110) == (110,)
    for bad, message in [("200:60:20", "start <= stop"), ("60:200:0", "step >= 1"), ("sixty", "whole numbers"),
                         ("1:2:3:4", "whole numbers"), ("10", ">= 20"), ("", "no size")]:
        with pytest.raises(IldStudyError, match="--patients") as info:
            parse_sizes(bad)
        assert message in str(info.value)


def test_settings_are_validated_and_round_trip():
    s = PowerSettings.build(sizes="60:100:20", effects=PUBLISHED, reps=10, seed=3, workers=2)
    assert s.sizes == (60, 80, 100) and [e.text for e in s.effects] == PUBLISHED
    assert PowerSettings.model_validate_json(s.model_dump_json()) == s
    with pytest.raises(Exception):
        s.reps = 5                                                        # frozen
    with pytest.raises(IldStudyError, match="one effect per outcome: fvc_pct_pred"):
        PowerSettings.build(sizes="60", effects=["fvc_pct_pred@36=1", "fvc_pct_pred@12=1"], reps=1, seed=0)
    with pytest.raises(IldStudyError, match="alpha"):
        PowerSettings.build(sizes="60", effects=PUBLISHED, reps=1, seed=0, alpha=1.5)
    with pytest.raises(IldStudyError, match="reps"):
        PowerSettings.build(sizes="60", effects=PUBLISHED, reps=0, seed=0)
    with pytest.raises(IldStudyError, match="month 37 is not one of the protocol's contrast months"):
        check_against_protocol(PowerSettings.build(sizes="60", effects=["fvc_pct_pred@37=5"], reps=1, seed=0),
                               PROTOCOL)


def test_wilson_interval():
    # R 4.2.2: prop.test(40, 50, correct = FALSE)$conf.int -> 0.6696289 0.8875625 (Wilson score interval)
    lo, hi = wilson_interval(40, 50)
    assert lo == pytest.approx(0.6696289, abs=1e-7) and hi == pytest.approx(0.8875625, abs=1e-7)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0


# -- planting the effect -----------------------------------------------------------------------------

def test_planted_model_keeps_baseline_difference():
    m = planted_model("fvc_pct_pred", 36, 5.0)
    base = MODELS["fvc_pct_pred"]
    assert m.arm == base.arm and math.isclose(m.arm_difference(36), 5.0, abs_tol=1e-12)
    assert math.isclose(planted_model("dlco_pct_pred", 0, 2.0).arm_difference(0), 2.0)
    assert planted_model("prednisone_mg", 0, 2.0).months_arm == MODELS["prednisone_mg"].months_arm


def test_effect_changes_only_the_outcome_it_names():
    """Same seed, effect planted in FVC: FVC changes for AZA patients only, every other value is identical,
    and the truth reports the planted difference."""
    models = {"fvc_pct_pred": planted_model("fvc_pct_pred", 36, 5.0)}
    a, truth_a = generate_registry(200, np.random.default_rng(5), PROTOCOL, balanced=False)
    b, truth_b = generate_registry(200, np.random.default_rng(5), PROTOCOL, balanced=False, models=models)
    assert truth_b.arm_differences["fvc_pct_pred"]["36"] == 5.0
    assert truth_a.arm_differences["fvc_pct_pred"]["36"] == 1.9
    assert truth_b.arm_differences["dlco_pct_pred"] == truth_a.arm_differences["dlco_pct_pred"]
    for name in ("patients", "antibodies", "medications", "adverse_events"):
        pd.testing.assert_frame_equal(a[name], b[name])
    pd.testing.assert_frame_equal(a["pft"].drop(columns=["fvc_pct_pred", "fvc_l", "fev1_l"]),
                                  b["pft"].drop(columns=["fvc_pct_pred", "fvc_l", "fev1_l"]))
    plan = PlannedRegistry(200, np.random.default_rng(5), PROTOCOL, balanced=False).plan
    arm = dict(zip(a["patients"]["patient_id"], plan.arm))
    treated = a["pft"]["patient_id"].map(arm).eq(0).to_numpy()
    diff = (b["pft"]["fvc_pct_pred"] - a["pft"]["fvc_pct_pred"]).to_numpy()
    assert np.nanmax(np.abs(diff[~treated])) == 0.0
    assert np.nanmax(diff[treated]) > 1.0          # (5 - 1.9) / 36 %-points per month more, years later


def test_balanced_registry_refuses_a_planted_effect():
    with pytest.raises(ValueError, match="sampled registry"):
        generate_registry(None, np.random.default_rng(1), PROTOCOL,
                          models={"fvc_pct_pred": planted_model("fvc_pct_pred", 36, 5.0)})
    with pytest.raises(ValueError, match="only fixed effects"):
        import dataclasses
        generate_registry(100, np.random.default_rng(1), PROTOCOL, balanced=False,
                          models={"fvc_pct_pred": dataclasses.replace(MODELS["fvc_pct_pred"], residual_sd=1.0)})


# -- reproducibility ---------------------------------------------------------------------------------

def test_replicate_seeds_are_spawned_children():
    """Replicate r at size n is child (n, r) of SeedSequence(seed): the same stream as spawning."""
    direct = np.random.default_rng(replicate_seed(7, 3, 2)).random(3)
    spawned = np.random.default_rng(np.random.SeedSequence(7).spawn(4)[3].spawn(3)[2]).random(3)
    assert np.array_equal(direct, spawned)
    assert not np.array_equal(direct, np.random.default_rng(replicate_seed(7, 3, 1)).random(3))


def test_study_power_is_reproducible_and_independent_of_workers():
    kw = dict(sizes="30", effects=["prednisone_mg@36=-6.6"], reps=2, seed=11)
    one = simulate_power(PowerSettings.build(**kw, workers=1), PROTOCOL)
    two = simulate_power(PowerSettings.build(**kw, workers=2), PROTOCOL)
    pd.testing.assert_frame_equal(one.replicates, two.replicates)
    assert json.dumps(one.to_dict()) == json.dumps(two.to_dict())
    p = one.points[0]
    assert (p.n, p.n_treatment, p.n_reference, p.reps) == (30, 18, 12, 2)
    assert p.fits + p.failed == 2 and one.replicates["estimate"].nunique() == 2
    assert math.isclose(p.mcse, math.sqrt(p.power * (1 - p.power) / p.fits))


# -- the closed-form check ---------------------------------------------------------------------------

def test_noncentral_t_matches_r():
    # R 4.2.2: power.t.test(n = 20, delta = 1)$power -> 0.8689528017 (strict = FALSE: the upper tail only;
    # the lower tail adds about 2e-7)
    assert noncentral_t_power(1.0, math.sqrt(2 / 20), 38) == pytest.approx(0.8689528017, abs=1e-6)
    # R 4.2.2: power.t.test(n = 20, delta = 3, sd = sqrt(16 + 9/4), strict = TRUE)$power -> 0.5809960255
    design = RandomInterceptDesign(n_per_arm=20, visits=4, delta=3.0, sd_between=4.0, sd_within=3.0)
    assert design.closed_form_power() == pytest.approx(0.5809960255, abs=1e-9)


def test_power_machinery_against_closed_form():
    """Random intercept, two balanced arms: the mixed model's test is the pooled two-sample t-test on the
    patient means (p to 1e-4 relative, df 2n - 2), and the simulated power agrees with the noncentral t
    (0.581, R's power.t.test with strict = TRUE, see above) within 3.5 Monte-Carlo SE. 200 replicates
    (MC SE 0.035), seeded: fast, deterministic, but a wrong engine (seeding, counting, the lmm's test)
    fails it."""
    design = RandomInterceptDesign(n_per_arm=20, visits=4, delta=3.0, sd_between=4.0, sd_within=3.0)
    check = reference_power(design, reps=200, seed=2024, workers=1)
    r = check.replicates
    assert np.allclose(r["p"], r["p_t_test"], rtol=1e-4, atol=1e-10)
    assert np.allclose(r["df"], 38, atol=1e-3)
    assert abs(check.z) < 3.5, (check.power, check.closed_form)
    assert check.ci_low <= check.power <= check.ci_high


# -- the CLI -----------------------------------------------------------------------------------------

def test_synth_design_option(tmp_path, capsys):
    from ildstudy.cli import run

    assert run(["synth", "--out", str(tmp_path / "s"), "--design", "sampled"]) == 0
    assert json.loads((tmp_path / "s" / "truth.json").read_text())["design"] == "sampled"
    assert run(["synth", "--out", str(tmp_path / "b"), "--patients", "200", "--design", "balanced"]) == 0
    assert json.loads((tmp_path / "b" / "truth.json").read_text())["design"] == "balanced"
    assert run(["synth", "--out", str(tmp_path / "x"), "--design", "random"]) == 2
    capsys.readouterr()
    assert run(["synth", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "Default: balanced without --patients" in help_text and "sampled with --patients" in help_text


def test_power_cli_refuses_bad_effects_before_simulating(tmp_path, capsys):
    from ildstudy.cli import run

    assert run(["power", "huapaya2019", "--out", str(tmp_path / "p"), "--effect", "fvc_pct_pred@37=5"]) == 2
    assert "month 37 is not one of the protocol's contrast months" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_power_cli_writes_its_outputs(tmp_path):
    from ildstudy.cli import run

    out = tmp_path / "p"
    assert run(["power", "huapaya2019", "--out", str(out), "--patients", "30", "--effect", "prednisone_mg@36=-6.6",
                "--reps", "1", "--workers", "1"]) == 0
    assert {p.name for p in out.iterdir()} >= {"power.csv", "power.json", "replicates.csv", "power.svg",
                                                "power.png", "run.json"}
    doc = json.loads((out / "power.json").read_text())
    assert doc["settings"]["effects"] == ["prednisone_mg@36=-6.6"] and doc["points"][0]["n"] == 30
    assert "Date" not in (out / "power.svg").read_text()[:2000]
