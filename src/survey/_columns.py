"""Small helpers to pull validated arrays out of a DataFrame (shared by designs and estimators)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import EstimationError, column_not_found


def as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def column(data: pd.DataFrame, name: str, what: str = "variable") -> pd.Series:
    if name not in data.columns:
        raise column_not_found(name, data.columns, what)
    return data[name]


def numeric(data: pd.DataFrame, name: str, what: str = "analysis variable") -> np.ndarray:
    """A column as float64 with NaN for missing; a clear error when it is not numeric."""
    s = column(data, name, what)
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = s.cat.categories
        if pd.api.types.is_numeric_dtype(cats.dtype):
            return s.astype(float).to_numpy()
        raise EstimationError(
            f"{what} '{name}' is categorical ({len(cats)} levels); use proportion() for its levels"
        )
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype(float).to_numpy()
    if not pd.api.types.is_numeric_dtype(s.dtype):
        conv = pd.to_numeric(s, errors="coerce")
        bad = int((conv.isna() & s.notna()).sum())
        if bad:
            raise EstimationError(
                f"{what} '{name}' is not numeric: {bad} of {len(s)} rows hold non-numeric values"
            )
        s = conv
    return s.to_numpy(dtype=float, na_value=np.nan)


def codes(s: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Sorted factor codes (-1 for missing) and the levels, keeping categorical order."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        c = s.cat.remove_unused_categories()
        return c.cat.codes.to_numpy().astype(np.int64), c.cat.categories
    code, uniq = pd.factorize(s, sort=True, use_na_sentinel=True)
    return code.astype(np.int64), pd.Index(uniq)
