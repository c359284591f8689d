"""``ildstudy lmm DATA.csv --formula F [--ml] [--json]``."""

import json
from pathlib import Path

import pytest

from ildstudy.cli import run

SLEEPSTUDY = Path(__file__).parent / "reference" / "lmm" / "data" / "sleepstudy.csv"
FORMULA = "Reaction ~ Days + (Days | Subject)"


def test_json_has_the_design_keys(capsys):
    assert run(["lmm", str(SLEEPSTUDY), "--formula", FORMULA, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("n_obs", "n_groups", "group", "method", "reml_criterion", "loglik", "aic", "bic",
                "converged", "fixed_effects", "df_method", "random_effects", "residual_sd"):
        assert key in result, key
    assert result["method"] == "REML" and result["df_method"] == "satterthwaite"
    assert [row["term"] for row in result["fixed_effects"]] == ["(Intercept)", "Days"]
    assert set(result["fixed_effects"][0]) == {"term", "estimate", "se", "df", "t", "p"}
    assert set(result["random_effects"]) == {"terms", "sd", "corr"}
    # lme4: REMLcrit(lmer(Reaction ~ Days + (Days | Subject), sleepstudy)) = 1743.628 (fixture sleepstudy_reml)
    assert result["reml_criterion"] == pytest.approx(1743.6282719585, abs=1e-6)


def test_ml_reports_deviance(capsys):
    assert run(["lmm", str(SLEEPSTUDY), "--formula", FORMULA, "--ml", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "ML" and "deviance" in result and "reml_criterion" not in result


def test_summary_text(capsys):
    assert run(["lmm", str(SLEEPSTUDY), "--formula", FORMULA]) == 0
    text = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6" in text
    assert "Satterthwaite" in text and "(Intercept)" in text and "Subject" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lmm", "no-such-file.csv", "--formula", FORMULA], "no such file"),
        (["lmm", str(SLEEPSTUDY), "--formula", "Reaction ~ Nope + (1 | Subject)"], "not in the data"),
        (["lmm", str(SLEEPSTUDY), "--formula", "Reaction ~ Days"], "no random-effects term"),
    ],
)
def test_user_errors_exit_2_with_one_line(args, message, capsys):
    assert run(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ildstudy: error:") and message in lines[0]
    assert "Traceback" not in captured.err
