"""Linear combinations of estimates with their full covariance (as R ``svycontrast`` on
``svyby(..., covmat=TRUE)``), and differences between domains (between independent waves:
``survey.indicators.compare_waves``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .errors import EstimationError

CONTRAST_COLUMNS = ["contrast", "estimate", "se", "t", "df", "p_value", "ci_low", "ci_high", "significant"]


def _row_positions(result: pd.DataFrame, sel) -> np.ndarray:
    """Row positions selected by an int position, a by-value, or a dict {column: value}."""
    if isinstance(sel, (int, np.integer)):
        return np.array([int(sel)])
    if isinstance(sel, dict):
        mask = np.ones(len(result), dtype=bool)
        for col, val in sel.items():
            if col not in result.columns:
                raise EstimationError(f"contrast: column '{col}' not in the result")
            mask &= (result[col] == val).to_numpy()
    else:
        by_cols = [c for c in result.columns if c not in _STAT_COLS]
        if len(by_cols) != 1:
            raise EstimationError("contrast: select rows with a dict {column: value} when there are several by columns")
        mask = (result[by_cols[0]] == sel).to_numpy()
    pos = np.flatnonzero(mask)
    if pos.size != 1:
        raise EstimationError(f"contrast: selection {sel!r} matches {pos.size} rows, need exactly 1")
    return pos


_STAT_COLS = {"variable", "level", "estimate", "se", "ci_low", "ci_high", "df", "cv", "deff", "n",
              "n_missing", "weighted_n"}


def _summary(name, est, var, df, level):
    se = float(np.sqrt(max(var, 0.0)))
    t = est / se if se > 0 else np.nan
    if np.isfinite(df):
        p = 2 * stats.t.sf(abs(t), df)
        q = stats.t.ppf((1 + level) / 2, df)
    else:
        p = 2 * stats.norm.sf(abs(t))
        q = stats.norm.ppf((1 + level) / 2)
    return pd.DataFrame([{
        "contrast": name, "estimate": est, "se": se, "t": t, "df": df, "p_value": p,
        "ci_low": est - q * se, "ci_high": est + q * se, "significant": bool(p < 1 - level),
    }], columns=CONTRAST_COLUMNS)


def contrast(result: pd.DataFrame, coefficients, name: str = "contrast", level: float = 0.95,
             df: float | None = None) -> pd.DataFrame:
    """Linear combination ``sum_j c_j * estimate_j`` with SE from the full covariance.

    ``coefficients``: a vector aligned with the rows of ``result``, or a dict mapping a row
    selector (int position, by-value, or {column: value}) to its coefficient.
    Columns: contrast, estimate, se, t, df, p_value, ci_low, ci_high, significant.
    """
    vcov = result.attrs.get("vcov")
    if vcov is None:
        raise EstimationError("contrast: the result carries no covariance (attrs['vcov'])")
    vcov = np.asarray(vcov, dtype=float)
    if len(vcov) != len(result):
        raise EstimationError("contrast: the result was filtered after estimation; contrast the full result")
    c = np.zeros(len(result))
    if isinstance(coefficients, dict):
        for sel, coef in coefficients.items():
            c[_row_positions(result, sel)] += coef
    else:
        c = np.asarray(coefficients, dtype=float)
        if c.shape != (len(result),):
            raise EstimationError(f"contrast: {c.size} coefficients for {len(result)} rows")
    est = float(c @ result["estimate"].to_numpy())
    var = float(c @ vcov @ c)
    d = float(result["df"].iloc[0]) if df is None else float(df)
    return _summary(name, est, var, d, level)


def difference(result: pd.DataFrame, a, b, level: float = 0.95, df: float | None = None) -> pd.DataFrame:
    """Difference between two rows (domains) of one result, ``a - b``, with the full covariance.

    ``a``/``b``: a by-value (one by column), a dict {column: value}, or a row position.
    """
    c = np.zeros(len(result))
    c[_row_positions(result, a)] += 1.0
    c[_row_positions(result, b)] -= 1.0
    return contrast(result, c, name=f"{a} - {b}", level=level, df=df)
