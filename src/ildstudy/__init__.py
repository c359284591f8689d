"""ildstudy: retrospective treatment-comparison studies on ILD registries."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ildstudy")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
