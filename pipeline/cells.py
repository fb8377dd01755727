"""Spreadsheet-safe text cells (CSV / Excel formula injection), shared by the report exports and
the label queue: :func:`neutralise_cell` on the way out, :func:`restore_cell` when a filled CSV is
read back. Imports only the stage-free :mod:`pipeline.textio` (the line-break rule), so any stage
may use it without depending on another stage."""
from __future__ import annotations

import re
from typing import Any

import pandas as pd

from pipeline.textio import normalize_breaks

#: first characters that make Excel / LibreOffice / Sheets treat a cell as a formula
#: (OWASP CSV injection), plus their full-width forms which Excel also accepts.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")

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
    value = normalize_breaks(value, "\n")  # every break a spreadsheet or CSV reader splits at
    return _LINE_START_FORMULA.sub(lambda m: m.group(1) + "'", value)


_NEUTRALISED = re.compile("(^|\n)'(?=[" + re.escape("".join(FORMULA_PREFIXES)) + "])")


def restore_cell(value: Any) -> Any:
    """Undo :func:`neutralise_cell`'s apostrophes (a CSV read back, e.g. a filled label queue)."""
    return _NEUTRALISED.sub(lambda m: m.group(1), value) if isinstance(value, str) else value


def neutralise_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` with every text cell neutralised (other cells and list cells unchanged)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(neutralise_cell).astype(object)
    return out


