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


# --- time bases: ns(...) and pl(...) calls, text only ------------------------------------------------

_TIME_CALL = re.compile(r"(?<![A-Za-z0-9_.])(?P<name>(?:splines::)?ns|pl)\(")
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?$")
_NS_ARGS = ("x", "df", "knots", "intercept", "Boundary.knots")
_PL_ARGS = ("x", "knots")


@dataclass(frozen=True, slots=True)
class TimeCall:
    """One ``ns(...)`` or ``pl(...)`` call of a formula.

    Attributes
    ----------
    kind : {"ns", "pl"}
    variable : str
        The column the basis is built on.
    df : int or None
    knots : tuple of float or None
        Interior knots as given (``ns`` with ``df`` computes them from the data).
    boundary_knots : tuple of float or None
    intercept : bool
    label : str
        The call as R deparses it, e.g. ``"ns(months, df = 3)"``: the prefix of its column names
        (``ns(months, df = 3)1``, ``ns(months, df = 3)2``, ...), as lme4 prints them.
    placeholder : str
        The function name the call is rewritten to for formulaic (``_ildstudy_time0``).
    """

    kind: str
    variable: str
    df: int | None
    knots: tuple[float, ...] | None
    boundary_knots: tuple[float, ...] | None
    intercept: bool
    label: str
    placeholder: str


def rewrite_time_calls(text: str, start: int = 0) -> tuple[str, tuple[TimeCall, ...]]:
    """Replace every ``ns(x, ...)`` / ``pl(x, knots = c(...))`` call by ``_ildstudy_timeN(x)``.

    R argument syntax is accepted: ``ns(months, df = 3)``, ``ns(months, knots = c(6, 18),
    Boundary.knots = c(0, 60))``, ``ns(months, 3)`` (positional as in R: x, df, knots,
    intercept, Boundary.knots), ``pl(months, knots = c(6, 12))`` or ``pl(months, c(6, 12))``.

    Parameters
    ----------
    text : str
        One side of a formula (fixed or random part).
    start : int
        Number of the first placeholder (so the fixed and random parts do not collide).

    Raises
    ------
    ModelError
        Unknown or repeated argument, a non-numeric value, or ``pl`` without knots. (``ns``
        without ``df`` and ``knots`` is allowed: no interior knots, as in R.)
    """
    calls: list[TimeCall] = []
    out, pos = [], 0
    while True:
        match = _TIME_CALL.search(text, pos)
        if match is None:
            break
        open_at = match.end() - 1
        close_at = _matching_paren(text, open_at)
        call = _time_call(match.group("name"), text[open_at + 1 : close_at], f"_ildstudy_time{start + len(calls)}",
                          text[match.start() : close_at + 1])
        calls.append(call)
        out.append(text[pos : match.start()])
        out.append(f"{call.placeholder}({call.variable})")
        pos = close_at + 1
    out.append(text[pos:])
    return "".join(out), tuple(calls)


def _matching_paren(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if depth == 0:
            return i
    raise ModelError(f"unbalanced parentheses in {text[open_at:]!r}")


def _time_call(function: str, inner: str, placeholder: str, original: str) -> TimeCall:
    kind = "ns" if function.endswith("ns") else "pl"
    names = _NS_ARGS if kind == "ns" else _PL_ARGS
    args = [a.strip() for a in _split_top_level(inner, ",")]
    if not args or not args[0]:
        raise ModelError(f"{original!r}: the first argument must be a column, e.g. {kind}(months, ...)")
    given: dict[str, str] = {}
    for i, arg in enumerate(args):
        key, value = _named_arg(arg)
        if key is None:
            if i >= len(names):
                raise ModelError(f"{original!r}: too many arguments (allowed: {', '.join(names)})")
            key = names[i]
        if key not in names:
            raise ModelError(f"{original!r}: unknown argument {key!r} (allowed: {', '.join(names)})")
        if key in given:
            raise ModelError(f"{original!r}: argument {key!r} given twice")
        given[key] = value
    variable = _strip_backticks(given["x"])
    if not _NAME.match(variable):
        raise ModelError(f"{original!r}: the first argument must be a column name, got {variable!r}")
    df = None
    if "df" in given:
        df_value = _number(given["df"], original, "df")
        if df_value != int(df_value) or df_value < 1:
            raise ModelError(f"{original!r}: df must be a positive whole number, got {given['df']!r}")
        df = int(df_value)
    knots = _numbers(given["knots"], original, "knots") if "knots" in given else None
    boundary = _numbers(given["Boundary.knots"], original, "Boundary.knots") if "Boundary.knots" in given else None
    if boundary is not None and len(boundary) != 2:
        raise ModelError(f"{original!r}: Boundary.knots must be c(lower, upper)")
    intercept = False
    if "intercept" in given:
        if given["intercept"] not in ("TRUE", "FALSE", "T", "F"):
            raise ModelError(f"{original!r}: intercept must be TRUE or FALSE")
        intercept = given["intercept"] in ("TRUE", "T")
    if kind == "pl" and not knots:
        raise ModelError(f"{original!r}: pl() needs knots, e.g. pl(months, knots = c(6, 12))")
    parts = [variable] + [f"{k} = {_r_deparse(v)}" if _named_arg(a)[0] else _r_deparse(v)
                          for (k, v), a in zip(list(given.items())[1:], args[1:])]
    label = f"{function}({', '.join(parts)})"
    return TimeCall(kind=kind, variable=variable, df=df, knots=knots, boundary_knots=boundary,
                    intercept=intercept, label=label, placeholder=placeholder)


def _named_arg(arg: str) -> tuple[str | None, str]:
    depth = 0
    for i, char in enumerate(arg):
        depth += char in "(["
        depth -= char in ")]"
        if char == "=" and depth == 0 and arg[i + 1 : i + 2] != "=" and arg[i - 1 : i] not in ("<", ">", "!", "="):
            return arg[:i].strip(), arg[i + 1 :].strip()
    return None, arg.strip()


def _number(value: str, original: str, name: str) -> float:
    value = value.strip()
    if not _NUMBER.match(value):
        raise ModelError(f"{original!r}: {name} must be a number, got {value!r}")
    return float(value.rstrip("L"))


def _numbers(value: str, original: str, name: str) -> tuple[float, ...]:
    value = value.strip()
    if value.startswith("c(") and value.endswith(")"):
        items = [v for v in _split_top_level(value[2:-1], ",")]
        return tuple(_number(v, original, name) for v in items if v.strip())
    return (_number(value, original, name),)


def _r_deparse(value: str) -> str:
    """Print an argument value as R's ``deparse`` does: numbers canonical, ``c(a, b)`` with ", "."""
    value = value.strip()
    if value.startswith("c(") and value.endswith(")"):
        return "c(" + ", ".join(_r_deparse(v) for v in _split_top_level(value[2:-1], ",")) + ")"
    if _NUMBER.match(value):
        return r_number(value)
    return value


def r_number(value: str | float) -> str:
    """A number as R's ``deparse`` prints it (15 significant digits; ``1e+05`` when shorter).

    Examples
    --------
    >>> [r_number(v) for v in ("3", "6.0", "0.5", "100000", "3L", "1e-3")]
    ['3', '6', '0.5', '1e+05', '3L', '0.001']
    """
    text = str(value).strip()
    if text.endswith("L"):
        return text
    x = float(text)
    if x == 0:
        return "0"
    fixed = f"{x:.15g}"
    if "e" in fixed:  # %.15g switched to exponent: render the fixed form to compare widths
        fixed = _positional(float(fixed))
    mantissa, exponent = f"{x:.14e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    exp = int(exponent)
    sci = f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return sci if len(sci) < len(fixed) else fixed


def _positional(x: float) -> str:
    from decimal import Decimal

    return format(Decimal(repr(x)).normalize(), "f")
