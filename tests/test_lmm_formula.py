"""Formula parsing, R column names and the design matrices (no optimisation involved)."""

import re

import numpy as np
import pandas as pd
import pytest

from ildstudy.errors import ModelError
from ildstudy.lmm.design import build_design
from ildstudy.lmm.formula import parse_formula, r_column_name


@pytest.mark.parametrize(
    ("text", "response", "fixed", "random", "group"),
    [
        ("Reaction ~ Days + (Days | Subject)", "Reaction", "Days", "Days", "Subject"),
        ("y ~ (1 | g)", "y", "1", "1", "g"),
        ("y ~ (1|g) + x", "y", "x", "1", "g"),
        ("fvc ~ months*arm + age + (1 + months | id)", "fvc", "months*arm + age", "1 + months", "id"),
        ("y ~ x + (0 + t | g) + z", "y", "x + z", "0 + t", "g"),
        ("y~x+(t|g)", "y", "x", "t", "g"),
        ("y ~ log(x) + (1 | g)", "y", "log(x)", "1", "g"),
    ],
)
def test_parse_formula(text, response, fixed, random, group):
    f = parse_formula(text)
    assert (f.response, f.fixed, f.random, f.group) == (response, fixed, random, group)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("y ~ x", "no random-effects term"),
        ("y ~ x + (1 | g) + (1 | h)", "2 random-effects terms"),
        ("y ~ x + (1 || g)", "'||'"),
        ("y ~ x + (1 | g", "unbalanced"),
        ("x + (1 | g)", "exactly one '~'"),
        ("log(y) ~ x + (1 | g)", "response must be a column name"),
        ("y ~ x + (1 | g:h)", "one column name"),
        ("y ~ x (1 | g)", "added with '+'"),
    ],
)
def test_parse_formula_errors(text, message):
    with pytest.raises(ModelError, match=re.escape(message)):
        parse_formula(text)


@pytest.mark.parametrize(
    ("formulaic", "r"),
    [
        ("Intercept", "(Intercept)"),
        ("Days", "Days"),
        ("arm[T.AZA]", "armAZA"),
        ("Sex[T.Male]", "SexMale"),
        ("months:arm[T.AZA]", "months:armAZA"),
        ("visit[T.12]:arm[T.AZA]", "visit12:armAZA"),
        ("arm[AZA]", "armAZA"),
        ("female[T.TRUE]", "femaleTRUE"),
        ("C(visit)[T.3]", "C(visit)3"),
        ("log(age)", "log(age)"),
        ("factor(visit)[T.3]", "factor(visit)3"),
        ("site[T.a:b]", "sitea:b"),
    ],
)
def test_r_column_name(formulaic, r):
    assert r_column_name(formulaic) == r


def _frame():
    return pd.DataFrame(
        {
            "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.nan, 8.0],
            "months": [0, 6, 0, 6, 0, 6, 0, 6],
            "arm": ["MMF", "MMF", "AZA", "AZA", "MMF", "MMF", "AZA", "AZA"],
            "female": [True, True, False, False, True, True, False, False],
            "Sex": ["Male", "Male", "Female", "Female", "Male", "Male", "Female", "Female"],
            "visit": [0, 12, 0, 3, 0, 3, 0, 12],
            "id": ["a", "a", "b", "b", "c", "c", "d", "d"],
        }
    )


def test_design_names_follow_r():
    design = build_design(
        parse_formula("y ~ months*arm + female + Sex + (1 + months | id)"),
        _frame(),
        factor_levels={"arm": ["MMF", "AZA"]},
    )
    assert design.fixed_names == (
        "(Intercept)", "months", "armAZA", "femaleTRUE", "SexMale", "months:armAZA",
    )
    assert design.random_names == ("(Intercept)", "months")
    assert design.n_dropped == 1  # the row with a missing y, as lme4's na.omit
    assert design.X.shape == (7, 6)
    assert list(design.group_levels) == ["a", "b", "c", "d"]


def test_default_reference_is_first_sorted_level():
    design = build_design(parse_formula("y ~ arm + (1 | id)"), _frame())
    assert design.fixed_names == ("(Intercept)", "armMMF")


def test_factor_call_and_numeric_factor_levels():
    frame = _frame()
    design = build_design(parse_formula("y ~ factor(visit) + (1 | id)"), frame)
    assert design.fixed_names == ("(Intercept)", "factor(visit)3", "factor(visit)12")
    design = build_design(
        parse_formula("y ~ visit + (1 | id)"), frame, factor_levels={"visit": ["0", "3", "12"]}
    )
    assert design.fixed_names == ("(Intercept)", "visit3", "visit12")


def test_random_part_variants():
    frame = _frame()
    assert build_design(parse_formula("y ~ 1 + (months | id)"), frame).random_names == ("(Intercept)", "months")
    assert build_design(parse_formula("y ~ 1 + (0 + months | id)"), frame).random_names == ("months",)
    assert build_design(parse_formula("y ~ 1 + (1 | id)"), frame).random_names == ("(Intercept)",)


@pytest.mark.parametrize(
    ("formula", "levels", "message"),
    [
        ("y ~ nope + (1 | id)", None, "not in the data"),
        ("y ~ months + (1 | nope)", None, "not in the data"),
        ("arm ~ months + (1 | id)", None, "must be numeric"),
        ("y ~ arm + (1 | id)", {"arm": ["MMF"]}, "not among its levels"),
        ("y ~ months + (1 | id)", {"zzz": ["a"]}, "does not use"),
    ],
)
def test_design_errors(formula, levels, message):
    with pytest.raises(ModelError, match=message):
        build_design(parse_formula(formula), _frame(), factor_levels=levels)
