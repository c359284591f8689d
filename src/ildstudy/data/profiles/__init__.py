"""Mapping profiles: read a centre's own export (or a REDCap project) into the canonical tables.

See ``docs/inputs.md``. :func:`load_profile` reads and validates a profile TOML; :func:`read_with_profile`
applies it; :func:`infer_profile` drafts one from a folder of files.
"""

from ildstudy.data.profiles.apply import read_with_profile
from ildstudy.data.profiles.model import ColumnMap, Profile, TableMap, load_profile, parse_profile

__all__ = ["ColumnMap", "Profile", "TableMap", "load_profile", "parse_profile", "read_with_profile"]
