"""Turn a matplotlib SVG file into markup that can sit inline in an HTML page.

matplotlib names clip paths and markers by hashes that repeat across figures (same axes box, same
marker), so several figures inlined in one page would share ids and borrow each other's clip paths.
:func:`inline_svg` drops the XML prolog, DOCTYPE and RDF metadata, prefixes every id (and every
reference to it) with a per-figure prefix, scopes matplotlib's global ``*{...}`` style rule to the
figure, and makes the root element scale with the page.

>>> svg = '<?xml version="1.0"?>\\n<svg width="10pt" height="5pt" viewBox="0 0 10 5"><defs>' \\
...       '<path id="m1"/></defs><use xlink:href="#m1"/></svg>'
>>> print(inline_svg(svg, "f1", "A figure").replace("><", ">\\n<"))
<svg id="f1" viewBox="0 0 10 5" class="fig-svg" role="img" aria-label="A figure">
<defs>
<path id="f1-m1"/>
</defs>
<use xlink:href="#f1-m1"/>
</svg>
"""

from __future__ import annotations

import re

from markupsafe import escape

_PROLOG = re.compile(r"<\?xml[^>]*\?>\s*", re.S)
_DOCTYPE = re.compile(r"<!DOCTYPE[^>]*>\s*", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)
_TAG = re.compile(r"<[^>]+>")  # text content cannot hold a raw '>' (matplotlib escapes it)
_ID = re.compile(r'(\sid=")([^"]+)(")')
_HREF = re.compile(r'((?:xlink:)?href=")#([^"]+)(")')
_URL = re.compile(r"url\(#([^)]+)\)")
_ROOT = re.compile(r"<svg\b([^>]*)>")
_SIZE = re.compile(r'\s(?:width|height)="[^"]*"')
_GLOBAL_STYLE = re.compile(r"(<style[^>]*>)\s*\*\s*\{")


def inline_svg(svg: str, prefix: str, label: str) -> str:
    """Inline-ready copy of ``svg`` whose ids all start with ``prefix + "-"``.

    Parameters
    ----------
    svg : the SVG document as matplotlib wrote it.
    prefix : a page-unique id for the figure (letters, digits, ``-``); also the root element's id.
    label : accessible name of the figure (escaped here).
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", prefix):
        raise ValueError(f"figure prefix must be letters, digits and '-': {prefix!r}")
    text = _METADATA.sub("", _DOCTYPE.sub("", _PROLOG.sub("", svg)))

    def rename(tag: re.Match) -> str:
        t = tag.group(0)
        t = _ID.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}{m.group(3)}", t)
        t = _HREF.sub(lambda m: f"{m.group(1)}#{prefix}-{m.group(2)}{m.group(3)}", t)
        return _URL.sub(lambda m: f"url(#{prefix}-{m.group(1)})", t)

    text = _TAG.sub(rename, text)
    text = _GLOBAL_STYLE.sub(lambda m: f"{m.group(1)}#{prefix} *{{", text)

    def root(m: re.Match) -> str:
        attrs = _SIZE.sub("", m.group(1))
        attrs = re.sub(r'\s(?:xmlns(?::xlink)?|version)="[^"]*"', "", attrs)
        return f'<svg id="{prefix}"{attrs} class="fig-svg" role="img" aria-label="{escape(label)}">'

    return _ROOT.sub(root, text, count=1).strip()
