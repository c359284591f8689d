"""Table 1: baseline characteristics by arm, with the test named and the standardised mean difference.

Conventions (each matches what an R user gets, so the numbers can be checked):

* Continuous, ``summary="mean_sd"``: "mean (SD)" and Welch's t-test (``t.test(x, y)``).
* Continuous, ``summary="median_iqr"``: "median [Q1, Q3]" with R's default quantiles (type 7) and the Wilcoxon
  rank-sum test by the normal approximation with tie and continuity corrections
  (``wilcox.test(x, y, exact = FALSE, correct = TRUE)``; R's own default switches to the exact distribution when
  both arms have < 50 values and there are no ties).
* Binary (one row: the count of ``positive``) and categorical (one row per level): "n (%)" of the non-missing
  values; Pearson's χ² without continuity correction, or
  Fisher's exact test when any expected count is < 5 (gtsummary's default rule; :func:`contingency.table1_test`).
* SMD, arms[0] versus arms[1]: continuous ``(m1 − m2) / sqrt((s1² + s2²) / 2)``; binary
  ``(p1 − p2) / sqrt((p1(1 − p1) + p2(1 − p2)) / 2)`` — both **signed** (tableone prints their absolute value);
  categorical with more than two levels: the Yang & Dalton multivariate SMD as tableone's ``StdDiffMulti``
  (non-negative by construction). A zero difference with zero variance is 0 (as tableone); a non-zero difference
  with zero variance, or an arm without data, gives ``None``.
* More than two arms (the reference arm last): continuous variables are compared with the Kruskal–Wallis test
  (``kruskal.test(x ~ arm)``, gtsummary's default for more than two groups, whatever the summary); binary and
  categorical ones as above on the levels × arms table (Fisher's exact for r×2 / 2×c tables, else χ² when the
  enumeration is not available). The SMD is the **largest absolute** SMD of a non-reference arm versus the
  reference arm (each computed as above), so it is non-negative; the two-arm table is unchanged.
* Percentages and test statistics use the non-missing values; ``missing`` counts the rest.
* When no test can be done (a single observed level, an arm without data, fewer than two values in an arm for
  Welch's test, all values equal) ``p`` is ``None`` and ``test`` is "—".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy import stats

from ildstudy._json import frame_records, plain
from ildstudy.analysis.contingency import NO_TEST, TestResult, table1_test

VariableKind = Literal["continuous", "categorical", "binary"]
SummaryKind = Literal["mean_sd", "median_iqr"]

WELCH = "Welch t-test"
WILCOXON = "Wilcoxon rank-sum"
KRUSKAL = "Kruskal-Wallis"
DASH = "—"
#: Column names of :attr:`Table1Result.table` other than the arm columns (arms may not use these names).
FIXED_COLUMNS = ("variable", "label", "level", "p", "test", "smd", "missing")
NUMBER_COLUMNS = ("variable", "level", "arm", "n", "missing", "mean", "sd", "median", "q1", "q3", "count",
                  "percent")
TEST_COLUMNS = ("variable", "test", "statistic", "df", "p", "smd")


@dataclass(frozen=True, slots=True)
class Variable:
    """One row group of Table 1.

    Parameters
    ----------
    name : str
        Column of the patients table.
    label : str, optional
        Text shown in the report (default: ``name``).
    kind : {"continuous", "categorical", "binary"}
        ``binary`` shows one row, the count of ``positive``; ``categorical`` a header row and one row per level.
    summary : {"mean_sd", "median_iqr"}
        For continuous variables (the protocol's ``analysis.median_iqr`` lists the median ones).
    levels : tuple of str, optional
        Categorical level order (compared with ``str(value)``); levels absent from the data are shown with 0.
        Values outside ``levels`` are an error. Default: the observed values, sorted.
    positive : object
        Binary: the value counted (default ``True``; ``"F"`` for a sex column shown as female).
    digits : int
        Decimals of means, SDs, medians and quartiles (percentages always have one).
    """

    name: str
    label: str | None = None
    kind: VariableKind = "continuous"
    summary: SummaryKind = "mean_sd"
    levels: tuple[str, ...] | None = None
    positive: object = True
    digits: int = 1

    def __post_init__(self) -> None:
        if self.kind not in get_args(VariableKind):
            raise ValueError(f"Variable {self.name!r}: kind must be one of {get_args(VariableKind)}, got {self.kind!r}")
        if self.summary not in get_args(SummaryKind):
            raise ValueError(
                f"Variable {self.name!r}: summary must be one of {get_args(SummaryKind)}, got {self.summary!r}")
        if self.levels is not None:
            object.__setattr__(self, "levels", tuple(str(v) for v in self.levels))
        if not isinstance(self.digits, int) or self.digits < 0:
            raise ValueError(f"Variable {self.name!r}: digits must be a non-negative integer")

    @property
    def shown_label(self) -> str:
        return self.label if self.label is not None else self.name


@dataclass(frozen=True, slots=True)
class Table1Result:
    """Table 1 by arm.

    Attributes
    ----------
    arms : tuple of str
        Arm order (columns of ``table``, reference last); the SMD is arms[0] versus arms[1] (k > 2: the
        largest |SMD| of an arm versus the reference).
    n : dict
        Patients per arm.
    table : pandas.DataFrame
        The table as shown: one row per continuous variable (``level`` ``None``), one per binary variable
        (``level`` the counted value), one per level of a categorical variable. Columns ``variable`` (name),
        ``label``, ``level``, one text column per arm ("56.1 (12.3)", "20.0 [10.0, 30.0]", "45 (68.2%)", "—"
        when the arm has no value), ``p`` (float or None), ``test`` (name or "—"), ``smd`` (float or None),
        ``missing`` (int, all arms; per arm in ``numbers`` and :meth:`records`). ``p``, ``test``, ``smd`` and
        ``missing`` are on the first row of each variable and ``None`` on its other rows.
    numbers : pandas.DataFrame
        Raw numbers, one row per variable × level × arm: ``variable``, ``level`` (None for continuous), ``arm``,
        ``n`` (non-missing), ``missing``, ``mean``, ``sd``, ``median``, ``q1``, ``q3`` (continuous), ``count``,
        ``percent`` (binary and categorical, percent of ``n``, 0–100). NaN where not applicable.
    tests : pandas.DataFrame
        One row per variable: ``variable``, ``test``, ``statistic`` (t, W or χ²), ``df``, ``p``, ``smd``.
    missing_by_arm : dict
        ``{variable: {arm: number of missing values}}``.
    """

    arms: tuple[str, ...]
    n: dict[str, int]
    table: pd.DataFrame = field(repr=False)
    numbers: pd.DataFrame = field(repr=False)
    tests: pd.DataFrame = field(repr=False)
    missing_by_arm: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)

    def records(self) -> list[dict]:
        """The rows of ``table`` as JSON-ready dicts (results.json's ``table1``); the first row of each variable
        also has ``missing_by_arm`` ``{ARM: n}``."""
        out = []
        for row in frame_records(self.table):
            if row["missing"] is not None:
                row["missing_by_arm"] = plain(self.missing_by_arm.get(row["variable"], {}))
            out.append(row)
        return out

    def to_dict(self) -> dict:
        """JSON-ready dict: ``arms``, ``n``, ``rows`` (:meth:`records`), ``numbers``, ``tests``."""
        return {"arms": list(self.arms), "n": plain(self.n), "rows": self.records(),
                "numbers": frame_records(self.numbers), "tests": frame_records(self.tests)}

    def tables(self) -> dict[str, pd.DataFrame]:
        """Exports to ``tables/``: ``{"table1": table}``."""
        return {"table1": self.table}


# ---------------------------------------------------------------------------------------------------------------
# formatting

def _fmt(x: float, digits: int) -> str:
    return DASH if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _fmt_count(count: int, n: int) -> str:
    return DASH if n == 0 else f"{count} ({100.0 * count / n:.1f}%)"


# ---------------------------------------------------------------------------------------------------------------
# standardised mean differences

def smd_continuous(x: np.ndarray, y: np.ndarray) -> float | None:
    """``(mean(x) − mean(y)) / sqrt((var(x) + var(y)) / 2)``, sample variances; ``None`` if undefined."""
    if len(x) < 2 or len(y) < 2:
        return None
    diff = float(np.mean(x) - np.mean(y))
    pooled = (float(np.var(x, ddof=1)) + float(np.var(y, ddof=1))) / 2
    if pooled == 0:
        return 0.0 if diff == 0 else None
    return diff / math.sqrt(pooled)


def smd_binary(p1: float, p2: float) -> float | None:
    """``(p1 − p2) / sqrt((p1(1 − p1) + p2(1 − p2)) / 2)``; 0 when both proportions are equal and 0 or 1."""
    pooled = (p1 * (1 - p1) + p2 * (1 - p2)) / 2
    if pooled == 0:
        return 0.0 if p1 == p2 else None
    return (p1 - p2) / math.sqrt(pooled)


def smd_categorical(counts: np.ndarray) -> float | None:
    """Yang & Dalton multivariate SMD of a (2 arms × levels) count array, as tableone's ``StdDiffMulti``.

    With proportions ``P`` (rows sum to 1) and the first level dropped, ``T = P[0] − P[1]`` and
    ``S = (V(P[0]) + V(P[1])) / 2`` where ``V(p) = diag(p) − p pᵀ``; the SMD is ``sqrt(Tᵀ S⁺ T)`` with the
    Moore–Penrose inverse at MASS::ginv's tolerance (singular values ≤ sqrt(eps) × the largest are dropped).
    """
    counts = np.asarray(counts, dtype=float)
    totals = counts.sum(axis=1)
    if np.any(totals == 0):
        return None
    props = counts / totals[:, None]
    if props.shape[1] > 1:
        props = props[:, 1:]
    t = props[0] - props[1]

    def multinomial_var(p: np.ndarray) -> np.ndarray:
        v = -np.outer(p, p)
        np.fill_diagonal(v, p * (1 - p))
        return v

    s = (multinomial_var(props[0]) + multinomial_var(props[1])) / 2
    if np.all(s == 0):
        return 0.0 if np.all(t == 0) else None
    md2 = float(t @ np.linalg.pinv(s, rcond=math.sqrt(np.finfo(float).eps)) @ t)
    return math.sqrt(max(md2, 0.0))


def quantile_type7(values: np.ndarray, probs) -> list[float]:
    """Quantiles as R's ``quantile(x, probs, type = 7)``, with R's arithmetic ``(1 − h)·x[lo] + h·x[hi]``.

    (NumPy's "linear" method is the same definition but computes the interpolation differently, which can flip
    the last printed digit of a median that lies half-way between two values.) NaN for an empty array.
    """
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    if n == 0:
        return [math.nan for _ in probs]
    out = []
    for p in probs:
        index = (n - 1) * p
        lo, hi = math.floor(index), math.ceil(index)
        q = x[lo]
        if index > lo and x[hi] != q:
            h = index - lo
            q = (1 - h) * q + h * x[hi]
        out.append(float(q))
    return out


# ---------------------------------------------------------------------------------------------------------------
# continuous tests

def welch_test(x: np.ndarray, y: np.ndarray) -> TestResult:
    """Welch's two-sample t-test, as R's ``t.test(x, y)``; "—" when an arm has < 2 values or both are constant."""
    if len(x) < 2 or len(y) < 2:
        return TestResult(NO_TEST)
    if np.var(x, ddof=1) == 0 and np.var(y, ddof=1) == 0:
        return TestResult(NO_TEST)  # R: "data are essentially constant"
    res = stats.ttest_ind(x, y, equal_var=False)
    return TestResult(WELCH, float(res.statistic), float(res.df), float(res.pvalue))


def wilcoxon_test(x: np.ndarray, y: np.ndarray) -> TestResult:
    """Wilcoxon rank-sum test, as R's ``wilcox.test(x, y, exact = FALSE, correct = TRUE)``.

    ``statistic`` is R's W (the Mann–Whitney U of ``x``); the p-value is the normal approximation with the tie
    correction of the variance and a continuity correction of 0.5. "—" when an arm is empty or all values are
    equal.
    """
    if len(x) < 1 or len(y) < 1:
        return TestResult(NO_TEST)
    if np.all(np.concatenate([x, y]) == x[0]):
        return TestResult(NO_TEST)
    res = stats.mannwhitneyu(x, y, use_continuity=True, alternative="two-sided", method="asymptotic")
    return TestResult(WILCOXON, float(res.statistic), None, float(res.pvalue))


def kruskal_test(groups: list[np.ndarray]) -> TestResult:
    """Kruskal–Wallis rank-sum test, as R's ``kruskal.test(x ~ g)`` (χ² with k − 1 df, tie-corrected); "—" when a
    group is empty or all values are equal."""
    if any(len(g) < 1 for g in groups):
        return TestResult(NO_TEST)
    pooled = np.concatenate(groups)
    if np.all(pooled == pooled[0]):
        return TestResult(NO_TEST)
    res = stats.kruskal(*groups)
    return TestResult(KRUSKAL, float(res.statistic), float(len(groups) - 1), float(res.pvalue))


def _largest_vs_reference(smds: list[float | None]) -> float | None:
    """k > 2 arms: the largest |SMD| of an arm versus the reference (``None`` if any is undefined)."""
    if any(v is None for v in smds):
        return None
    return max(abs(float(v)) for v in smds)


# ---------------------------------------------------------------------------------------------------------------
# the table

def _check_inputs(patients: pd.DataFrame, arm_col: str, arms: list[str], variables: list[Variable]) -> list[str]:
    if not isinstance(patients, pd.DataFrame):
        raise TypeError("patients must be a pandas DataFrame")
    arms = [str(a) for a in arms]
    if len(arms) < 2 or len(set(arms)) != len(arms):
        raise ValueError(f"Table 1 compares two or more distinct arms, got {arms}")
    clash = [a for a in arms if a in FIXED_COLUMNS]
    if clash:
        raise ValueError(f"arm names may not be any of {FIXED_COLUMNS}: {clash}")
    if arm_col not in patients.columns:
        raise ValueError(f"patients has no arm column {arm_col!r}")
    unknown = sorted(set(patients[arm_col].astype("string").fillna("<missing>")) - set(arms))
    if unknown:
        raise ValueError(f"patients.{arm_col} has values that are not arms {arms}: {unknown}")
    names = [v.name for v in variables]
    if len(set(names)) != len(names):
        raise ValueError("each Table 1 variable may appear only once")
    absent = [n for n in names if n not in patients.columns]
    if absent:
        raise ValueError(f"patients has no column(s) {absent}")
    return arms


def _continuous(var: Variable, data: dict[str, pd.Series], arms: list[str]):
    values = {}
    for a in arms:
        raw = data[a]
        as_number = pd.to_numeric(raw, errors="coerce")
        if (raw.notna() & as_number.isna()).any():
            raise ValueError(f"Table 1 variable {var.name!r} is declared continuous but has non-numeric values")
        values[a] = as_number.astype(float)
    cells, numbers = {}, []
    for a in arms:
        v = values[a].dropna().to_numpy()
        n, missing = len(v), int(values[a].isna().sum())
        mean = float(np.mean(v)) if n else math.nan
        sd = float(np.std(v, ddof=1)) if n >= 2 else math.nan
        q1, med, q3 = quantile_type7(v, (0.25, 0.5, 0.75))
        if n == 0:
            cells[a] = DASH
        elif var.summary == "mean_sd":
            cells[a] = f"{_fmt(mean, var.digits)} ({_fmt(sd, var.digits)})"
        else:
            cells[a] = f"{_fmt(med, var.digits)} [{_fmt(q1, var.digits)}, {_fmt(q3, var.digits)}]"
        numbers.append({"variable": var.name, "level": None, "arm": a, "n": n, "missing": missing, "mean": mean,
                        "sd": sd, "median": float(med), "q1": float(q1), "q3": float(q3), "count": math.nan,
                        "percent": math.nan})
    groups = [values[a].dropna().to_numpy() for a in arms]
    if len(arms) == 2:
        x, y = groups
        test = welch_test(x, y) if var.summary == "mean_sd" else wilcoxon_test(x, y)
        smd = smd_continuous(x, y)
    else:
        test = kruskal_test(groups)
        smd = _largest_vs_reference([smd_continuous(g, groups[-1]) for g in groups[:-1]])
    rows = [{"level": None, **cells, "p": test.p, "test": test.test, "smd": smd}]
    return rows, numbers, test, smd


def _categorical(var: Variable, data: dict[str, pd.Series], arms: list[str]):
    as_text = {a: data[a].dropna().map(str) for a in arms}
    observed = sorted(set().union(*(set(t) for t in as_text.values())))
    if var.kind == "binary":
        # compared by value, so that 1 / 1.0 count for positive=True and "F" for positive="F"
        is_pos = {a: data[a].dropna().map(lambda v: bool(v == var.positive)) for a in arms}
        others = sorted({str(v) for a in arms for v in data[a].dropna()[~is_pos[a]]})
        if len(others) > 1:
            raise ValueError(f"Table 1 variable {var.name!r} is declared binary but has the values {observed}")
        levels = [str(var.positive)]
        counts = np.array([[int(is_pos[a].sum()), int((~is_pos[a]).sum())] for a in arms])  # arms × (pos, other)
        shown = counts[:, :1]
    else:
        levels = list(var.levels) if var.levels is not None else observed
        outside = sorted(set(observed) - set(levels))
        if outside:
            raise ValueError(f"Table 1 variable {var.name!r} has values outside its levels {levels}: {outside}")
        counts = np.array([[int((as_text[a] == lev).sum()) for lev in levels] for a in arms])
        shown = counts
    n_arm = counts.sum(axis=1)
    test = table1_test(counts.T) if np.all(n_arm > 0) else TestResult(NO_TEST)
    smds = [_smd_pair(var, counts[[i, len(arms) - 1]]) for i in range(len(arms) - 1)]
    smd = smds[0] if len(arms) == 2 else _largest_vs_reference(smds)
    numbers, rows = [], []
    for j, lev in enumerate(levels):
        for i, a in enumerate(arms):
            numbers.append({"variable": var.name, "level": lev, "arm": a, "n": int(n_arm[i]),
                            "missing": int(data[a].isna().sum()), "mean": math.nan, "sd": math.nan,
                            "median": math.nan, "q1": math.nan, "q3": math.nan, "count": int(shown[i, j]),
                            "percent": 100.0 * shown[i, j] / n_arm[i] if n_arm[i] else math.nan})
        rows.append({"level": lev, **{a: _fmt_count(int(shown[i, j]), int(n_arm[i])) for i, a in enumerate(arms)},
                     "p": None, "test": None, "smd": None})
    if not rows:  # no level at all (every value missing, no declared levels)
        rows.append({"level": None, **{a: DASH for a in arms}})
    rows[0].update({"p": test.p, "test": test.test, "smd": smd})
    return rows, numbers, test, smd


def _smd_pair(var: Variable, counts: np.ndarray) -> float | None:
    """SMD of two arms' count rows (arm, reference) of a binary or categorical variable."""
    n_arm = counts.sum(axis=1)
    if var.kind == "binary":
        return smd_binary(counts[0, 0] / n_arm[0], counts[1, 0] / n_arm[1]) if np.all(n_arm > 0) else None
    return smd_categorical(counts[:, counts.sum(axis=0) > 0]) if counts.sum() else None


def table1(patients: pd.DataFrame, arm_col: str, arms: list[str], variables: list[Variable]) -> Table1Result:
    """Baseline characteristics by arm with p-values (test named), SMDs and missing counts.

    Parameters
    ----------
    patients : pandas.DataFrame, shape (n_patients, ...)
        One row per patient: the column ``arm_col`` (every value one of ``arms``) and one column per variable.
        Continuous variables numeric (NaN/None = missing); binary variables holding ``positive`` or one other
        value (e.g. bool, 0/1, "F"/"M"); categorical variables any values (compared as text). The cohort's
        patients table (docs/protocol.md) maps to this directly: ``age``, ``sex``, ``antisynthetase``,
        ``smoking``, ``fvc_pct_pred``, ``dlco_pct_pred``, ``prednisone_mg``, ``follow_up_months``.
    arm_col : str
        Name of the arm column.
    arms : list of str, length 2 or more
        Arm order for the columns, the reference arm last; with two arms the SMD is ``arms[0]`` versus
        ``arms[1]`` (e.g. ``["AZA", "MMF"]``), with more the largest |SMD| of an arm versus the last.
    variables : list of Variable
        Rows, in order.

    Returns
    -------
    Table1Result
        See :class:`Table1Result` for the columns.

    Raises
    ------
    ValueError
        Unknown arm values, missing columns, a non-numeric continuous variable, a binary variable with more
        than two values, categorical values outside the declared levels.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"arm": ["AZA", "AZA", "MMF", "MMF"], "age": [50.0, 60.0, 40.0, 44.0],
    ...                    "sex": ["F", "M", "F", "F"]})
    >>> res = table1(df, "arm", ["AZA", "MMF"],
    ...              [Variable("age", "Age, years"), Variable("sex", "Female", kind="binary", positive="F")])
    >>> res.table[["variable", "AZA", "MMF", "test"]].values.tolist()
    [['age', '55.0 (7.1)', '42.0 (2.8)', 'Welch t-test'], ['sex', '1 (50.0%)', '2 (100.0%)', "Fisher's exact"]]
    """
    arms = _check_inputs(patients, arm_col, arms, variables)
    arm_values = patients[arm_col].astype("string")
    n = {a: int((arm_values == a).sum()) for a in arms}
    table_rows, number_rows, test_rows = [], [], []
    missing_by_arm: dict[str, dict[str, int]] = {}
    for var in variables:
        data = {a: patients.loc[(arm_values == a).to_numpy(), var.name] for a in arms}
        if var.kind == "continuous":
            rows, numbers, test, smd = _continuous(var, data, arms)
        else:
            rows, numbers, test, smd = _categorical(var, data, arms)
        missing_by_arm[var.name] = {a: int(data[a].isna().sum()) for a in arms}
        missing = sum(missing_by_arm[var.name].values())
        for i, row in enumerate(rows):
            table_rows.append({"variable": var.name, "label": var.shown_label, **row,
                               "missing": missing if i == 0 else None})
        number_rows.extend(numbers)
        test_rows.append({"variable": var.name, "test": test.test, "statistic": test.statistic, "df": test.df,
                          "p": test.p, "smd": smd})
    columns = ["variable", "label", "level", *arms, "p", "test", "smd", "missing"]
    table = pd.DataFrame(table_rows, columns=columns, dtype=object)
    numbers = pd.DataFrame(number_rows, columns=list(NUMBER_COLUMNS))
    tests = pd.DataFrame(test_rows, columns=list(TEST_COLUMNS), dtype=object)
    return Table1Result(tuple(arms), n, table, numbers, tests, missing_by_arm)


__all__ = ["Variable", "Table1Result", "table1", "quantile_type7", "smd_binary", "smd_categorical", "smd_continuous",
           "welch_test", "wilcoxon_test", "kruskal_test"]
