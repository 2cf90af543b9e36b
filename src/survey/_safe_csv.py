"""CSV files a spreadsheet can open safely: text cells that would start a formula get a leading
quote (the OWASP rule against CSV injection), the file is written atomically with ``\\n`` line
ends.  One helper for every CSV a run publishes (the semantic writers ``sae.write_csv``,
``evaluation.write_csv`` and the notebooks through ``survey.report.publish_csv``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ._atomic import atomic_write

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""Text starting with one of these is a formula to a spreadsheet (OWASP CSV injection)."""


def neutral_text(value):
    """A text cell a spreadsheet will not run: a leading quote before ``= + - @``, tab or CR
    (the OWASP rule).  Anything that is not text (numbers, missing values) is returned as is."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def neutral_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` whose text cells are :func:`neutral_text` (numeric columns untouched),
    for the CSV and Excel files the tool writes (Parquet keeps the values as they are)."""
    out = df.copy()
    for c in out.columns:
        col = out[c]
        if col.dtype == object or pd.api.types.is_string_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype):
            if isinstance(col.dtype, pd.CategoricalDtype):
                col = col.astype(object)
            if col.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_START)).any():
                out[c] = col.map(neutral_text)
    if any(isinstance(c, str) and c.startswith(FORMULA_START) for c in out.columns):
        out.columns = [neutral_text(c) for c in out.columns]
    return out


def write_safe_csv(frame: pd.DataFrame, path, index: bool = False) -> Path:
    """``frame`` as CSV at ``path``: text cells neutralized (:func:`neutral_frame`), ``\\n`` line
    ends, written atomically (a temporary sibling renamed onto ``path``).  Returns the path."""
    path = Path(path)
    atomic_write(path, neutral_frame(frame).to_csv(index=index, lineterminator="\n"))
    return path
