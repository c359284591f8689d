"""Byte-reproducible XLSX files: openpyxl stamps the save time into the workbook and its ZIP entries.

Used by the registry generator (``synth``) and the study exports (``report``), so it sits below both layers.
"""

from __future__ import annotations

import io
import re
import zipfile

_CORE_TIMES = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")


def deterministic_xlsx(data: bytes, fixed: tuple[int, int, int, int, int, int]) -> bytes:
    """The same XLSX workbook with ``dcterms:created``/``dcterms:modified`` and every ZIP entry time set to
    ``fixed`` (year, month, day, hour, minute, second)."""
    stamp = "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z".format(*fixed).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = _CORE_TIMES.sub(rb"\g<1>" + stamp + rb"\g<2>", content)
            entry = zipfile.ZipInfo(info.filename, date_time=fixed)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = info.external_attr
            dst.writestr(entry, content)
    return out.getvalue()
