"""Canonical registry tables: schema, input adapters, readers, typing, validation, loading into a database."""

from ildstudy.data.load import check_registry, load_registry
from ildstudy.data.registry import Registry, read_registry
from ildstudy.data.schema import TABLES, TABLES_BY_NAME

__all__ = ["Registry", "TABLES", "TABLES_BY_NAME", "check_registry", "load_registry", "read_registry"]
