"""The few exception classes ildstudy raises for problems a user can fix.

The CLI turns every :class:`IldStudyError` into one line per problem on stderr and exit code 2;
anything else is an internal error (exit 1).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in the input, located as precisely as possible.

    ``row`` is the 1-based line number in the file as a spreadsheet or editor shows it
    (the header is line 1, the first data row line 2); ``None`` when the problem concerns
    the whole file or column.
    """

    file: str
    row: int | None
    column: str | None
    value: str | None
    problem: str
    severity: str = "error"  # "error" | "warning"

    def location(self) -> str:
        loc = self.file
        if self.row is not None:
            loc += f":{self.row}"
        if self.column:
            loc += f": {self.column}"
        return loc

    def __str__(self) -> str:
        val = f" {self.value!r}" if self.value not in (None, "") else ""
        loc = self.location()
        return f"{loc}:{val} {self.problem}" if loc else f"{val.strip()} {self.problem}".strip()


class IldStudyError(Exception):
    """Base class of user-facing errors (bad data, bad protocol, bad usage)."""


class DataError(IldStudyError):
    """The registry cannot be used; carries every problem found."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(file="", row=None, column=None, value=None, problem=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ProtocolError(IldStudyError):
    """The protocol file is invalid; the message names the key."""


class ModelError(IldStudyError):
    """A model cannot be specified or fitted as asked (bad formula, missing column, ...)."""


class CohortError(IldStudyError):
    """The cohort is empty, an arm is empty, or an arm is too small for a step (e.g. the mixed models).

    ``attrition`` is the attrition table built so far (a pandas DataFrame, or ``None``), so that the CLI can
    write it even though the study cannot run; ``step`` names the cohort step or analysis step that emptied
    or starved the cohort.
    """

    def __init__(self, message: str, *, attrition=None, step: str | None = None):
        super().__init__(message)
        self.attrition = attrition
        self.step = step


class OutputError(IldStudyError):
    """An output path cannot be used (it is an input, a user's folder or file, read-only, full disk, ...)."""


class EnvironmentFailure(IldStudyError):
    """The operating system refused something (disk full, permission denied, ...); the message gives its reason."""
