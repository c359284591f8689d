"""Canonical registry tables: schema, readers, typing, validation, loading into a database."""

from ildstudy.data.registry import Registry, load_registry, read_registry
from ildstudy.data.schema import TABLES, TABLES_BY_NAME

__all__ = ["Registry", "TABLES", "TABLES_BY_NAME", "load_registry", "read_registry"]
