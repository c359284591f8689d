"""Input adapters: chosen by what the input is; load_registry reads through them, then validates; no circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from ildstudy.data import adapters
from ildstudy.data.adapters import ADAPTERS, InputAdapter, adapter_for, read_input, register_adapter
from ildstudy.data.profiles import load_profile
from ildstudy.data.registry import Registry
from ildstudy.errors import DataError, Problem

ROOT = Path(__file__).resolve().parents[1]


def test_dispatch():
    assert adapter_for("some/folder").name == "canonical"
    assert adapter_for(ROOT / "examples/profile/export", load_profile(ROOT / "examples/profile/profile.toml")).name \
        == "profile"
    assert adapter_for(ROOT / "examples/redcap", load_profile(ROOT / "examples/redcap/profile.toml")).name == "redcap"
    with pytest.raises(DataError):
        adapter_for("postgresql://host/db")


def test_a_new_adapter_plugs_in_without_library_changes(monkeypatch):
    class Toy:
        name = "toy"

        def matches(self, source, profile=None):
            return str(source).startswith("toy:")

        def read(self, source, profile=None):
            return Registry({}), [Problem(str(source), None, None, None, "toy registry is empty")]

    monkeypatch.setattr(adapters, "ADAPTERS", list(ADAPTERS))
    register_adapter(Toy())
    assert isinstance(Toy(), InputAdapter)
    registry, problems = read_input("toy:x")
    assert registry.tables == {} and problems[0].problem == "toy registry is empty"
    with pytest.raises(TypeError):
        register_adapter(object())


def test_load_registry_reads_and_validates_through_adapters(tmp_path):
    from ildstudy.data import load_registry

    with pytest.raises(DataError) as exc:
        load_registry(tmp_path / "missing")
    assert "does not exist" in str(exc.value)


def _imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / "src" / (module.replace(".", "/") + ".py")).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_registry_validate_circle():
    """registry.py (reading) no longer imports validate.py (checks), even lazily; load.py imports both."""
    assert "ildstudy.data.validate" not in _imports("ildstudy.data.registry")
    assert "ildstudy.data.registry" in _imports("ildstudy.data.validate")
    assert {"ildstudy.data.validate", "ildstudy.data.adapters"} <= _imports("ildstudy.data.load")
    from ildstudy.data import load_registry

    assert load_registry.__module__ == "ildstudy.data.load"
