"""Command-line interface: ``ildstudy COMMAND``.

Exit codes: 0 success; 2 bad usage, data or protocol, an unusable ``--out``, or a failure of the
environment (disk full, read-only or permission denied: the operating system's reason is shown); one
line per problem on stderr, no traceback; 1 unexpected internal error. Set ``ILDSTUDY_DEBUG=1`` to see the traceback of an
internal error.
"""

from __future__ import annotations

import os
import sys

# One BLAS thread unless the user asks for more (set before numpy is imported). The models' matrix work is
# many small products (q x p blocks per patient); on a 2-core machine OpenBLAS's second thread spin-waits for
# a busy core and made each profiled-deviance evaluation 25-100x slower (2 ms -> 60-280 ms at 10k patients,
# a 10k-patient study 182 s; docs/benchmarks.md, "Whole study at scale").
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from ildstudy.errors import DataError, IldStudyError
from ildstudy.cli.app import app, err

# Each module registers its commands on ``app`` when imported.
from ildstudy.cli import data_commands, lmm_command, study_commands  # noqa: F401,E402
from ildstudy.cli import federated_commands  # noqa: F401,E402
from ildstudy.cli import import_command  # noqa: F401,E402
from ildstudy.cli import power_command  # noqa: F401,E402


def report_error(exc: IldStudyError) -> None:
    problems = getattr(exc, "problems", None)
    if isinstance(exc, DataError) and problems:
        for p in problems:
            err.print(f"ildstudy: {p.severity}: {p}", markup=False)
    else:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            err.print(f"ildstudy: error: {line}", markup=False)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return the exit code (used by tests and :func:`main`)."""
    try:
        app(args=argv, prog_name="ildstudy")  # standalone mode: usage errors, --help, exit codes
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except IldStudyError as exc:
        report_error(exc)
        return 2
    except OSError as exc:  # disk full, read-only, permission denied...: the environment, not a bug
        from ildstudy.report.outdir import os_reason

        err.print(f"ildstudy: error: {os_reason(exc)}", markup=False)
        return 2
    except KeyboardInterrupt:
        err.print("ildstudy: interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the one place that turns crashes into exit 1
        if os.environ.get("ILDSTUDY_DEBUG"):
            raise
        err.print(
            f"ildstudy: internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in ildstudy; rerun with ILDSTUDY_DEBUG=1 for the traceback and report it.",
            markup=False,
        )
        return 1
    return 0


def main() -> None:
    """Entry point of the ``ildstudy`` console script."""
    sys.exit(run())
