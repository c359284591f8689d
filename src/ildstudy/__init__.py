"""ildstudy: retrospective treatment-comparison studies on ILD registries.

The front door (each name is imported on first use, so ``import ildstudy`` stays cheap)::

    >>> import ildstudy                                                        # doctest: +SKIP
    >>> result = ildstudy.run_study("huapaya2019", "demo-output/registry")     # doctest: +SKIP
    >>> ildstudy.write_outputs(result, "my-study")                              # doctest: +SKIP
    >>> fit = ildstudy.fit_lmm("fvc ~ months + (1 + months | patient)", frame)  # doctest: +SKIP
"""

from importlib import import_module as _import_module
from importlib.metadata import PackageNotFoundError as _PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("ildstudy")
except _PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

#: public name -> (module, attribute), imported lazily by :func:`__getattr__`
_LAZY = {
    "run_study": ("ildstudy.analysis.study", "run_study"),
    "write_outputs": ("ildstudy.report.outputs", "write_study_outputs"),
    "fit_lmm": ("ildstudy.lmm", "fit_lmm"),
    "load_registry": ("ildstudy.data", "load_registry"),
    "load_protocol": ("ildstudy.protocol", "load_protocol"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ildstudy' has no attribute {name!r}") from None
    value = getattr(_import_module(module), attr)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({n for n in globals() if not n.startswith("_")} | set(__all__))
