"""Load a registry: read it through its input adapter, then validate it across rows and tables.

This module sits above both :mod:`ildstudy.data.registry` (reading, typing) and :mod:`ildstudy.data.validate`
(cross-row checks), so neither imports the other.

>>> from ildstudy.data import load_registry                                       # doctest: +SKIP
>>> registry = load_registry("demo-output/registry")                               # doctest: +SKIP
>>> registry = load_registry("centre-export", profile="profile.toml")              # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ildstudy.data.adapters import read_input
from ildstudy.data.registry import Registry
from ildstudy.data.validate import validate_registry
from ildstudy.errors import DataError, Problem

if TYPE_CHECKING:
    import pandas as pd


def check_registry(source: str | Path, profile=None) -> tuple[Registry, list[Problem]]:
    """Read (through the matching adapter) and validate; return the registry and every problem."""
    registry, problems = read_input(source, profile)
    return registry, problems + validate_registry(registry)


def load_registry(source: str | Path, profile=None) -> Registry:
    """Read, type and validate a registry; raise :class:`DataError` listing every error.

    Parameters
    ----------
    source : path
        A folder of canonical tables, or (with ``profile``) a centre's export or REDCap project folder.
    profile : Profile or path, optional
        A mapping profile (:mod:`ildstudy.data.profiles`) or its TOML file.

    Returns
    -------
    Registry
        Typed tables; ``problems`` holds the warnings.
    """
    return _usable(*check_registry(source, profile))


def registry_from_frames(tables: dict[str, "pd.DataFrame"]) -> Registry:
    """Type and validate in-memory tables (cells as they would be written to CSV) as :func:`load_registry` does
    for files; raise :class:`DataError` listing every error. Used for simulated registries (power, recovery).
    """
    from ildstudy.data.coerce import coerce_table
    from ildstudy.data.readers import RawTable
    from ildstudy.data.schema import TABLES

    typed, problems = {}, []
    for spec in TABLES:
        table, found = coerce_table(RawTable(spec, Path(f"{spec.name}.csv"), tables[spec.name].reset_index(drop=True), 2))
        typed[spec.name] = table
        problems += found
    registry = Registry(typed)
    return _usable(registry, problems + validate_registry(registry))


def _usable(registry: Registry, problems: list[Problem]) -> Registry:
    """``registry`` with its warnings attached, or :class:`DataError` with every error."""
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise DataError(errors)
    return Registry(registry.tables, registry.files, tuple(p for p in problems if p.severity != "error"))
