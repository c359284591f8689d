"""Input adapters: one small object per kind of input, chosen by what the input is, not by if/elif.

An :class:`InputAdapter` has a ``name``, says whether it ``matches`` an input (a folder, file or URL) and
``read``\\ s it into a :class:`~ildstudy.data.registry.Registry` and the list of every problem found
(errors and warnings; reading never raises for bad data). The registered adapters are tried in order:

- ``redcap`` -- a REDCap project read through a profile with a ``[redcap]`` section;
- ``profile`` -- a centre's own files read through a mapping profile (``--profile PROFILE.toml``);
- ``canonical`` -- a folder of canonical tables (``patients.csv``, ``pft.parquet``, ...).

Databases (DuckDB files, PostgreSQL URLs) are not read into memory: the cohort runs inside them
(:mod:`ildstudy.data.database`); an OMOP CDM is read into the canonical tables by :mod:`ildstudy.data.omop`
(``run --omop``). Add an adapter with :func:`register_adapter`.

>>> [a.name for a in ADAPTERS]
['redcap', 'profile', 'canonical']
>>> adapter_for("registry-folder").name
'canonical'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from ildstudy.data.registry import Registry, read_registry
from ildstudy.errors import DataError, Problem


@runtime_checkable
class InputAdapter(Protocol):
    """What every input adapter provides."""

    name: str

    def matches(self, source: str | Path, profile=None) -> bool:
        """Whether this adapter reads ``source`` (with the given profile, if any)."""

    def read(self, source: str | Path, profile=None) -> tuple[Registry, list[Problem]]:
        """The typed canonical tables and every problem found (never raises for bad data)."""


@dataclass(frozen=True)
class CanonicalFolder:
    """A folder with one canonical table per file (:func:`~ildstudy.data.registry.read_registry`)."""

    name: str = "canonical"

    def matches(self, source, profile=None) -> bool:
        return profile is None and "://" not in str(source)

    def read(self, source, profile=None):
        return read_registry(source)


@dataclass(frozen=True)
class MappedFiles:
    """A centre's own files read through a mapping profile (:mod:`ildstudy.data.profiles`)."""

    name: str = "profile"

    def matches(self, source, profile=None) -> bool:
        return profile is not None and getattr(profile, "redcap", None) is None

    def read(self, source, profile=None):
        from ildstudy.data.profiles.apply import read_with_profile

        return read_with_profile(profile, source)


@dataclass(frozen=True)
class RedcapProject:
    """A REDCap export (records + data dictionary) read through a profile with a ``[redcap]`` section."""

    name: str = "redcap"

    def matches(self, source, profile=None) -> bool:
        return profile is not None and getattr(profile, "redcap", None) is not None

    def read(self, source, profile=None):
        from ildstudy.data.profiles.apply import read_with_profile

        return read_with_profile(profile, source)


ADAPTERS: list[InputAdapter] = [RedcapProject(), MappedFiles(), CanonicalFolder()]


def register_adapter(adapter: InputAdapter, *, first: bool = True) -> None:
    """Add an adapter (tried before the built-in ones unless ``first=False``)."""
    if not isinstance(adapter, InputAdapter):
        raise TypeError("an input adapter needs name, matches() and read()")
    ADAPTERS.insert(0 if first else len(ADAPTERS), adapter)


def adapter_for(source: str | Path, profile=None) -> InputAdapter:
    """The first registered adapter that matches ``source``; :class:`DataError` if none does."""
    for adapter in ADAPTERS:
        if adapter.matches(source, profile):
            return adapter
    raise DataError(Problem(str(source), None, None, None,
                            "no input adapter reads this (give a registry folder, or a folder with --profile)"))


def read_input(source: str | Path, profile=None) -> tuple[Registry, list[Problem]]:
    """Read ``source`` with the adapter that matches it; ``profile`` is a :class:`Profile` or a TOML path."""
    if profile is not None and not hasattr(profile, "tables"):
        from ildstudy.data.profiles.model import load_profile

        profile = load_profile(profile)
    return adapter_for(source, profile).read(source, profile)
