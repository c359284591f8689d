"""The study report: figures, the self-contained HTML report, and the exports.

>>> from ildstudy.report import write_report   # doctest: +SKIP
>>> write_report(result, Path("out"))           # report.html and figures/*.svg|png   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ildstudy.analysis.result import StudyResult

__all__ = ["write_report"]


def write_report(result: StudyResult, out_dir: Path) -> list[Path]:
    """Write ``report.html`` and ``figures/`` into ``out_dir``; see :func:`ildstudy.report.html.write_report`."""
    from ildstudy.report.html import write_report as _write

    return _write(result, out_dir)
