"""Text summary of an :class:`~ildstudy.lmm.results.LmmFit`, laid out like lmerTest's ``summary``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from ildstudy.lmm.results import LmmFit


def format_summary(fit: LmmFit) -> str:
    """Return the summary as one string (the CLI prints it)."""
    lines = []
    how = "REML" if fit.method == "REML" else "maximum likelihood"
    lines.append(f"Linear mixed model fit by {how}. t-tests use Satterthwaite's method [ildstudy]")
    lines.append(f"Formula: {fit.formula}")
    lines.append("")
    if fit.method == "REML":
        lines.append(f"REML criterion at convergence: {fit.criterion:.1f}")
    else:
        lines.append(_table(
            ["AIC", "BIC", "logLik", "deviance", "df.resid"],
            [[f"{fit.aic:.1f}", f"{fit.bic:.1f}", f"{fit.loglik:.1f}", f"{fit.criterion:.1f}",
              str(fit.n_obs - fit.n_parameters)]],
        ))
    lines.append("")
    lines.append("Scaled residuals:")
    if fit.residuals.size:
        quantiles = np.quantile(fit.residuals / fit.residual_sd, [0, 0.25, 0.5, 0.75, 1])
        lines.append(_table(["Min", "1Q", "Median", "3Q", "Max"], [[f"{v:.4f}" for v in quantiles]]))
    else:  # fitted in the database from per-group sums: the rows never left it
        lines.append("  (not available: the model was fitted from per-patient sums computed in the database)")
    lines.append("")
    lines.append("Random effects:")
    re = fit.random_effects
    rows = []
    for i, term in enumerate(re.terms):
        corr = " ".join(_fmt_corr(re.corr[i, j]) for j in range(i))
        rows.append([re.group if i == 0 else "", term, _sig(re.sd[i] ** 2), _sig(re.sd[i]), corr])
    rows.append(["Residual", "", _sig(fit.residual_sd**2), _sig(fit.residual_sd), ""])
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] if len(re.terms) > 1 else [])
    lines.append(_table(header, [r[: len(header)] for r in rows], left=2))
    lines.append(f"Number of obs: {fit.n_obs}, groups:  {re.group}, {fit.n_groups}")
    if fit.n_dropped:
        lines.append(f"({fit.n_dropped} observation(s) deleted due to missingness)")
    lines.append("")
    lines.append("Fixed effects:")
    fe = fit.fixed_effects
    body = [
        [r.term, _sig(r.estimate, 4), _sig(r.se, 4), f"{r.df:.3f}", f"{r.t:.3f}", _fmt_p(r.p), _stars(r.p)]
        for r in fe.itertuples(index=False)
    ]
    lines.append(_table(["", "Estimate", "Std. Error", "df", "t value", "Pr(>|t|)", ""], body, left=1))
    lines.append("---")
    lines.append("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
    if fit.singular or not fit.converged or fit.messages:
        lines.append("")
        for message in fit.messages:
            lines.append(message)
    optimum = fit.optimizer
    lines.append("")
    lines.append(
        f"optimizer ({optimum.method}) converged={fit.converged} after {optimum.evaluations} evaluations; "
        f"theta = [{', '.join(f'{v:.6g}' for v in fit.theta)}]"
    )
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]], left: int = 0) -> str:
    """Right-aligned columns except the first ``left`` ones, like R's print of a data frame."""
    cols = list(zip(header, *rows))
    widths = [max(len(str(c)) for c in col) for col in cols]
    def fmt(row: list[str]) -> str:
        cells = [str(c).ljust(w) if i < left else str(c).rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return " ".join(cells).rstrip()
    return "\n".join([fmt(header)] + [fmt(r) for r in rows])


def _sig(value: float, digits: int = 5) -> str:
    if not np.isfinite(value):
        return "NaN"
    return f"{value:.{digits}g}"


def _fmt_corr(value: float) -> str:
    return "NaN" if not np.isfinite(value) else f"{value:.2f}"


def _fmt_p(p: float) -> str:
    if not np.isfinite(p):
        return "NaN"
    return "< 2e-16" if p < 2e-16 else f"{p:.3g}"


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""
