"""Untrusted text stays text.

Minutes come from outside the project, so every string taken from them is
- escaped for HTML by Jinja2 autoescape (templates) and :func:`plot_text` (plotly
  renders its labels as pseudo-HTML, so they are entity-escaped before they reach it);
- embedded in ``<script type="application/json">`` only through :func:`script_json`,
  which escapes ``<``, ``>`` and ``&`` so no ``</script>`` can close the block;
- neutralised against spreadsheet formula injection (:func:`neutralise_cell`) in CSV
  and Excel exports;
- escaped for Markdown (:func:`md_text`) so pasted briefings do not turn into links or HTML.
"""
from __future__ import annotations

import html
import json
import re
from typing import Any

import pandas as pd

#: first characters that make Excel / LibreOffice / Sheets treat a cell as a formula
#: (OWASP CSV injection), plus their full-width forms which Excel also accepts.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
#: control characters openpyxl refuses to write
_ILLEGAL_XLSX = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
EXCEL_MAX_CELL = 32767


#: every line break a spreadsheet (or a CSV reader) may start a new line or row at
_BREAKS = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
#: a formula prefix at the start of the cell or of any line inside it
_LINE_START_FORMULA = re.compile("(^|\n)(?=[" + re.escape("".join(FORMULA_PREFIXES)) + "])")


def neutralise_cell(value: Any) -> Any:
    """Make a text cell safe to open in a spreadsheet.

    Line breaks of every kind become ``\n`` (so the CSV writer quotes the cell: a lone CR
    left unquoted starts a new row in LibreOffice), and *every* line that would start a
    formula gets an apostrophe, not only the first: an importer that splits the cell at
    its line breaks still finds no formula. Numbers are left alone (``-3`` as a number is
    data, not a formula)."""
    if not isinstance(value, str):
        return value
    value = _BREAKS.sub("\n", value)
    return _LINE_START_FORMULA.sub(lambda m: m.group(1) + "'", value)


def _cell_text(value: Any) -> Any:
    """Lists become ``a; b``; dicts become JSON text."""
    if isinstance(value, (list, tuple)):
        return "; ".join(str(v) for v in value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)) and getattr(value, "ndim", 0) == 1:
        return "; ".join(str(v) for v in value.tolist())
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def safe_frame(df: pd.DataFrame, excel: bool = False) -> pd.DataFrame:
    """A copy of ``df`` safe to export: list cells joined, text cells neutralised
    (and, for Excel, control characters removed and cells truncated to Excel's limit)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            vals = out[col].map(_cell_text)
            if excel:
                vals = vals.map(lambda v: _ILLEGAL_XLSX.sub("", v)[:EXCEL_MAX_CELL] if isinstance(v, str) else v)
            out[col] = vals.map(neutralise_cell).astype(object)
    out.columns = [neutralise_cell(str(c)) for c in out.columns]
    return out


def plot_text(value: Any) -> str:
    """Text for a plotly label / hover / tick: entity-escaped so plotly shows it literally."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return html.escape(str(value), quote=True)


def script_json(obj: Any) -> str:
    """JSON safe to place inside ``<script type="application/json">``."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_default)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def script_code(js: str) -> str:
    """Trusted library code (plotly.js) inside ``<script>``: never let it close the tag."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.I)


#: Markdown/HTML markup characters escaped in text from the minutes (``_`` and ``#`` are left:
#: intraword underscores are not emphasis and input never starts a line)
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|!])")


def md_text(value: Any) -> str:
    """Text for Markdown: one line, markup characters backslash-escaped."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    s = " ".join(str(value).split())
    return _MD_SPECIAL.sub(r"\\\1", s)


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if np.isnan(o) else float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (pd.Timestamp,)):
        return o.isoformat()
    return str(o)
