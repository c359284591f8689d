"""Parse ``y ~ fixed + (terms | group)`` mixed-model formulas and print column names as R does.

This module is text only: it splits an lme4-style formula into its response, fixed-effects part,
random-effects part and grouping factor, and translates formulaic's column names
(``arm[T.AZA]``, ``Intercept``) into R's (``armAZA``, ``(Intercept)``). It never touches data or
numbers; :mod:`ildstudy.lmm.design` turns a parsed formula into matrices.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ildstudy.errors import ModelError

_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")
_LEVEL_PART = re.compile(r"^(?P<var>.+?)\[(?:T\.)?(?P<level>.*)\]$")


@dataclass(frozen=True, slots=True)
class MixedFormula:
    """An lme4-style formula with exactly one random-effects term.

    Attributes
    ----------
    text : str
        The formula as given (whitespace normalised).
    response : str
        Name of the response column.
    fixed : str
        Right-hand side of the fixed part, in formulaic/R syntax (``"1"`` if only an intercept).
    random : str
        Left side of the bar in ``(random | group)``, e.g. ``"1 + months"``; formulaic adds the
        intercept unless it is removed with ``0 +`` or ``- 1``, exactly as R does.
    group : str
        Name of the grouping column.
    """

    text: str
    response: str
    fixed: str
    random: str
    group: str


def parse_formula(formula: str) -> MixedFormula:
    """Split ``y ~ fixed + (terms | group)`` into its parts.

    Parameters
    ----------
    formula : str
        An lme4 formula with one random-effects term, e.g.
        ``"Reaction ~ Days + (Days | Subject)"`` or ``"fvc ~ months*arm + age + (1 + months | id)"``.

    Returns
    -------
    MixedFormula

    Raises
    ------
    ModelError
        If there is no ``~``, no or more than one ``( ... | group)`` term, a ``||`` term, an
        unbalanced parenthesis, or the response/group is not a plain column name.

    Examples
    --------
    >>> f = parse_formula("Reaction ~ Days + (Days | Subject)")
    >>> (f.response, f.fixed, f.random, f.group)
    ('Reaction', 'Days', 'Days', 'Subject')
    """
    if not isinstance(formula, str) or not formula.strip():
        raise ModelError("formula is empty; expected something like 'y ~ x + (1 | group)'")
    text = " ".join(formula.split())
    if text.count("~") != 1:
        raise ModelError(f"formula {text!r} must contain exactly one '~' (response ~ terms)")
    lhs, rhs = (part.strip() for part in text.split("~"))
    if not lhs:
        raise ModelError(f"formula {text!r} has no response on the left of '~'")
    lhs = _strip_backticks(lhs)
    if not _NAME.match(lhs):
        raise ModelError(f"formula {text!r}: the response must be a column name, got {lhs!r}")
    _check_parentheses(text)
    bars = _bar_terms(rhs)
    if not bars:
        raise ModelError(
            f"formula {text!r} has no random-effects term; add one such as '(1 | group)' "
            "or '(1 + time | group)'"
        )
    if len(bars) > 1:
        raise ModelError(
            f"formula {text!r} has {len(bars)} random-effects terms; ildstudy fits one grouping "
            "factor, e.g. '(1 + time | group)'"
        )
    start, stop = bars[0]
    inner = rhs[start + 1 : stop - 1]
    if "||" in inner:
        raise ModelError(f"formula {text!r}: uncorrelated '||' terms are not supported; use '|'")
    random, group = (part.strip() for part in inner.split("|"))
    group = _strip_backticks(group)
    if not _NAME.match(group):
        raise ModelError(
            f"formula {text!r}: the grouping factor must be one column name, got {group!r}"
        )
    if not random:
        raise ModelError(f"formula {text!r}: nothing on the left of '|' in the random term")
    fixed = _remove_term(rhs, start, stop)
    return MixedFormula(text=text, response=lhs, fixed=fixed or "1", random=random, group=group)


def r_column_name(formulaic_name: str) -> str:
    """Translate one formulaic model-matrix column name into the name R prints.

    ``Intercept`` becomes ``(Intercept)``; a factor part ``arm[T.AZA]`` (treatment contrast) or
    ``arm[AZA]`` (full-rank coding) becomes ``armAZA``; interaction parts are joined with ``:``.

    Examples
    --------
    >>> r_column_name("months:arm[T.AZA]")
    'months:armAZA'
    >>> r_column_name("Intercept")
    '(Intercept)'
    """
    if formulaic_name == "Intercept":
        return "(Intercept)"
    return ":".join(_r_part(part) for part in _split_top_level(formulaic_name, ":"))


def _r_part(part: str) -> str:
    match = _LEVEL_PART.match(part)
    if match is None:
        return part
    return f"{match.group('var')}{match.group('level')}"


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside brackets/parentheses (factor levels may contain ':')."""
    parts, depth, current = [], 0, []
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _strip_backticks(name: str) -> str:
    return name[1:-1] if len(name) > 1 and name[0] == name[-1] == "`" else name


def _check_parentheses(text: str) -> None:
    depth = 0
    for char in text:
        depth += char == "("
        depth -= char == ")"
        if depth < 0:
            break
    if depth != 0:
        raise ModelError(f"formula {text!r} has unbalanced parentheses")


def _bar_terms(rhs: str) -> list[tuple[int, int]]:
    """Spans ``(start, stop)`` of top-level parenthesised groups that contain a top-level ``|``."""
    spans, depth, start = [], 0, 0
    has_bar = False
    for i, char in enumerate(rhs):
        if char == "(":
            if depth == 0:
                start, has_bar = i, False
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0 and has_bar:
                spans.append((start, i + 1))
        elif char == "|" and depth == 1:
            has_bar = True
    return spans


def _remove_term(rhs: str, start: int, stop: int) -> str:
    """Remove ``rhs[start:stop]`` and the ``+`` joining it to its neighbours."""
    before, after = rhs[:start].rstrip(), rhs[stop:].lstrip()
    joined_before, joined_after = before.endswith("+"), after.startswith("+")
    if (before and not joined_before) or (after and not joined_after):
        raise ModelError(
            f"the random-effects term {rhs[start:stop]!r} must be added with '+' to the fixed terms"
        )
    before = before[:-1].rstrip() if joined_before else before
    after = after[1:].lstrip() if joined_after else after
    return " + ".join(part for part in (before, after) if part)
