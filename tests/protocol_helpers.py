"""Protocol text for tests: the built-in protocol with one table replaced."""

from __future__ import annotations

import re


def with_lung(text: str, lung: str) -> str:
    """Protocol text with its ``[lung_function]`` table (the built-in protocol has one) replaced by ``lung``."""
    text = re.sub(r"^\[lung_function\]\n(?:[^\[\n#].*\n)*", "", text, flags=re.M)
    assert not re.search(r"^\[lung_function\]", text, flags=re.M)
    return text + f"\n[lung_function]\n{lung}\n"
