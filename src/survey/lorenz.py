"""Concentration of victimization: Lorenz curves and the Gini coefficient with a design-based SE.

The weighted Gini of counts ``y`` (victimizations per respondent) over population size ``N`` and
total ``Y`` is ``G = A / (N Y) - 1`` with ``A = sum_k w_k (2 N_k - w_k) y_k`` and ``N_k`` the
cumulative weight up to unit ``k`` in increasing ``y``.  Grouping tied values (counts have many
ties), ``A = sum_g C_g^2 (y_g - y_{g+1})`` with ``C_g`` the cumulative weight through value ``g``
(and ``y_{G+1} = 0``), so the derivative of ``G`` with respect to the weight of a unit with value
``y_h`` is exact:

    u_k = [ 2 sum_{g >= h} C_g (y_g - y_{g+1}) - (G + 1)(Y + N y_k) ] / (N Y)

The design variance of the linearized scores ``w_k u_k`` is the Gini's variance (Taylor designs;
replicate designs recompute ``G`` on every replicate).  Over victims, the population is the
respondents with at least one victimization, a domain of the full design.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .design import ReplicateDesign
from .estimate import _cells, _df, _tq
from .ingest import SurveyData
from .variance import replicate_vcov

LORENZ_COLUMNS = ["crime_type", "over", "domain", "domain_value", "population_share", "victimization_share"]


def gini_value(y: np.ndarray, w: np.ndarray) -> float:
    """Weighted Gini coefficient of ``y`` (ties handled exactly)."""
    return _gini_scores(y, w)[0]


def _gini_scores(y: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """The Gini and its linearized variable ``u`` (derivative with respect to each weight)."""
    keep = w > 0
    if not keep.any():
        return np.nan, np.zeros_like(y)
    vals, inv = np.unique(y[keep], return_inverse=True)
    wg = np.bincount(inv, weights=w[keep], minlength=len(vals))
    c = np.cumsum(wg)
    n_tot = c[-1]
    y_tot = float(np.sum(w[keep] * y[keep]))
    if y_tot <= 0:
        return np.nan, np.zeros_like(y)
    if len(vals) == 1:  # one distinct value: no inequality (exactly 0, not rounding noise)
        return 0.0, np.zeros_like(y, dtype=float)
    delta = vals - np.append(vals[1:], 0.0)
    a = float(np.sum(c * c * delta))
    g = a / (n_tot * y_tot) - 1.0
    tail = np.cumsum((2 * c * delta)[::-1])[::-1]  # sum over g >= h
    u = np.zeros_like(y, dtype=float)
    u[keep] = (tail[inv] - (g + 1.0) * (y_tot + n_tot * y[keep])) / (n_tot * y_tot)
    return g, u


def gini(data: SurveyData, crime: str, over: str = "population", by: str | None = None,
         level: float = 0.95) -> pd.DataFrame:
    """Gini of victimizations of ``crime`` over the population or over victims, by domain.

    Columns: crime_type, over, <by>, estimate, se, ci_low, ci_high, df, n, weighted_n, n_cases
    (victims).  Respondents whose count is unknown are left out (a domain of their own).
    """
    if over not in ("population", "victims"):
        raise ValueError("over must be 'population' or 'victims'")
    design = data.design(data.unit_of(crime))
    y = design.data[f"k__{crime}"].to_numpy(dtype=float)
    keep = ~np.isnan(y)  # respondents with an unknown count are a domain of their own
    if over == "victims":
        keep &= design.data[f"victim__{crime}"].to_numpy() > 0
    out = gini_design(design, y, keep, by, level)
    out.insert(0, "over", over)
    out.insert(0, "crime_type", crime)
    return out


def gini_design(design, y: np.ndarray, keep: np.ndarray, by: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """Gini of ``y`` among the rows ``keep`` (a domain of the full design), per cell of ``by``.

    Columns: <by>, estimate, se, ci_low, ci_high, df (the domain design's), n, weighted_n,
    n_cases (rows with y > 0).
    """
    if not keep.all():
        design = design.subset(keep)
    y = np.nan_to_num(y)
    cell, keys, _ = _cells(design, by)
    G = len(keys)
    w_all = design.w
    est = np.full(G, np.nan)
    n = np.zeros(G)
    wn = np.zeros(G)
    ok = (cell >= 0) & (w_all > 0)
    n_cases = np.bincount(cell[ok & (y > 0)], minlength=G)
    if isinstance(design, ReplicateDesign):
        reps = np.full((G, design.n_replicates), np.nan)
        for g in range(G):
            r = np.flatnonzero(cell == g)
            est[g] = gini_value(y[r], w_all[r])
            n[g], wn[g] = int((w_all[r] > 0).sum()), w_all[r].sum()
            for j in range(design.n_replicates):
                reps[g, j] = gini_value(y[r], design.repw[r, j + 1])
        vcov = replicate_vcov(est, reps, design.scale, design.rscales, design.mse)
    else:
        rows, cols, vals = [], [], []
        for g in range(G):
            r = np.flatnonzero(cell == g)
            est[g], u = _gini_scores(y[r], w_all[r])
            n[g], wn[g] = int((w_all[r] > 0).sum()), w_all[r].sum()
            rows.append(r)
            cols.append(np.full(len(r), g))
            vals.append(w_all[r] * u)
        vcov = design._vcov(np.concatenate(rows), np.concatenate(cols), np.concatenate(vals), G)
    se = np.sqrt(np.clip(np.diag(vcov), 0, None))
    d = _df(design, None)
    q = _tq(level, d)
    out = keys.copy() if by else pd.DataFrame(index=range(1))
    out["estimate"], out["se"] = est, se
    out["ci_low"], out["ci_high"] = est - q * se, est + q * se
    out["df"], out["n"], out["weighted_n"] = d, n.astype(np.int64), wn
    out["n_cases"] = n_cases.astype(np.int64)
    return out


def lorenz(data: SurveyData, crime: str, over: str = "population", by: str | None = None,
           points: int = 101) -> pd.DataFrame:
    """Lorenz curve: share of victimizations held by the least victimized share of the
    population (or of victims), on ``points`` population shares, per domain (columns
    :data:`LORENZ_COLUMNS`)."""
    design = data.design(data.unit_of(crime))
    y = design.data[f"k__{crime}"].to_numpy(dtype=float)
    keep = ~np.isnan(y)
    if over == "victims":
        keep &= design.data[f"victim__{crime}"].to_numpy() > 0
    if not keep.all():
        design = design.subset(keep)
    y = np.nan_to_num(y)
    cell, keys, _ = _cells(design, by)
    grid = np.linspace(0, 1, points)
    parts = []
    for g in range(len(keys)):
        r = np.flatnonzero((cell == g) & (design.w > 0))
        order = np.argsort(y[r], kind="stable")
        yy, ww = y[r][order], design.w[r][order]
        p = np.concatenate([[0.0], np.cumsum(ww) / ww.sum()])
        total = np.sum(ww * yy)
        lz = np.concatenate([[0.0], np.cumsum(ww * yy) / total]) if total > 0 else np.zeros(len(p))
        parts.append(pd.DataFrame({
            "crime_type": crime, "over": over, "domain": by or "overall",
            "domain_value": str(keys[by].iloc[g]) if by else "all",
            "population_share": grid, "victimization_share": np.interp(grid, p, lz)}))
    return pd.concat(parts, ignore_index=True)[LORENZ_COLUMNS]
