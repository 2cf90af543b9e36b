"""Generalized variance functions (GVFs): a smooth model of the variance of many estimates.

Statistical agencies (the BJS for the NCVS, the Census Bureau for the CPS) publish a few GVF
parameters instead of a standard error for every possible estimate: users compute the SE of any
total or proportion from the estimate itself.  The same models smooth the noisy variance
estimates of small domains before a Fay-Herriot model (:mod:`survey.sae`), which takes them as
known.

Forms (:func:`fit_gvf`), for estimated totals ``x`` with estimated relvariances
``relvar = (se / x)^2``:

``bjs``        relvar = a + b / x, by weighted least squares.  The default weights are
               iterative: the sampling variance of an estimated relvariance is roughly
               proportional to its square, so each pass weights the points by 1 / fitted^2
               (starting from ordinary least squares) until the parameters settle.
``loglinear``  log(relvar) = a + b log(x), by ordinary least squares on the log scale
               (a + b log x is the log of the predicted relvariance; no retransformation
               correction).

For a proportion ``p`` of a base total ``y`` (both estimated), the ``bjs`` form gives
``var(p) = b p (1 - p) / y`` (the relvariance of the numerator p y minus that of y, so ``a``
cancels): :meth:`GVF.se_proportion`.  :func:`fit_proportion_gvf` fits that ``b`` directly on
the SEs of proportions (as the indicator table has them).  Formulas: docs/small-areas.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import SurveyError

FORMS = ("bjs", "loglinear", "proportion")


class GVFError(SurveyError, ValueError):
    """Inputs a GVF cannot be fitted on (non-positive totals or relvariances, too few points)."""


@dataclass
class GVF:
    """A fitted GVF.  ``relvar(x)``, ``se_total(x)``, ``se_proportion(p, base)``."""

    form: str
    a: float
    b: float
    a_se: float
    b_se: float
    r2: float
    n: int
    iterations: int = 0
    weights: str = ""
    data: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)
    """One row per point: x, relvar, fitted, residual (relvar - fitted), weight; log_residual
    for the log-linear form."""

    def relvar(self, x):
        """Predicted relvariance of an estimated total ``x``."""
        x = np.asarray(x, dtype=float)
        if self.form == "bjs":
            return self.a + self.b / x
        if self.form == "loglinear":
            return np.exp(self.a + self.b * np.log(x))
        raise GVFError("a proportion GVF predicts SEs of proportions only (se_proportion)")

    def se_total(self, x):
        """Predicted SE of an estimated total ``x`` (NaN where the predicted relvariance is < 0)."""
        rv = np.asarray(self.relvar(x), dtype=float)
        with np.errstate(invalid="ignore"):
            return np.where(rv >= 0, np.abs(np.asarray(x, float)) * np.sqrt(np.maximum(rv, 0)), np.nan)

    def se_proportion(self, p, base, percent: bool = False):
        """Predicted SE of a proportion ``p`` of an estimated base total ``base``.

        bjs and proportion forms: ``sqrt(b / base * p (1 - p))`` (BJS's formula); log-linear:
        ``p sqrt(relvar(p base) - relvar(base))`` (NaN when that is negative).  ``percent``:
        p (and the result) in %.
        """
        p = np.asarray(p, dtype=float) / (100.0 if percent else 1.0)
        y = np.asarray(base, dtype=float)
        if self.form in ("bjs", "proportion"):
            v = self.b / y * p * (1 - p)
        else:
            v = p ** 2 * (self.relvar(p * y) - self.relvar(y))
        with np.errstate(invalid="ignore"):
            se = np.where(v >= 0, np.sqrt(np.maximum(v, 0)), np.nan)
        return se * (100.0 if percent else 1.0)

    def parameters(self) -> dict:
        return {"form": self.form, "a": self.a, "b": self.b, "a_se": self.a_se, "b_se": self.b_se,
                "r2": self.r2, "n": self.n, "iterations": self.iterations, "weights": self.weights}


def _check(x, relvar, what: str = "GVF"):
    x = np.asarray(x, dtype=float).ravel()
    rv = np.asarray(relvar, dtype=float).ravel()
    if x.shape != rv.shape:
        raise GVFError(f"{what}: {x.size} totals but {rv.size} relvariances")
    bad = ~(np.isfinite(x) & (x > 0))
    if bad.any():
        raise GVFError(f"{what}: totals x must be positive and finite ({int(bad.sum())} of {x.size} rows are not)")
    bad = ~(np.isfinite(rv) & (rv > 0))
    if bad.any():
        raise GVFError(f"{what}: relvariances must be positive and finite ({int(bad.sum())} of {rv.size} rows are not)")
    if x.size < 3:
        raise GVFError(f"{what}: at least 3 estimates are needed to fit 2 parameters ({x.size} given)")
    if np.unique(x).size < 2:
        raise GVFError(f"{what}: every estimate has the same total x = {x[0]:g}: a and b are not identified")
    return x, rv


def _wls(Z, y, w):
    Zw = Z * w[:, None]
    cov_unscaled = np.linalg.inv(Z.T @ Zw)
    coef = cov_unscaled @ (Zw.T @ y)
    resid = y - Z @ coef
    n, k = Z.shape
    s2 = float((w * resid ** 2).sum()) / max(n - k, 1)
    ybar = float((w * y).sum() / w.sum())
    tss = float((w * (y - ybar) ** 2).sum())
    r2 = 1.0 - float((w * resid ** 2).sum()) / tss if tss > 0 else np.nan
    return coef, np.sqrt(np.diag(cov_unscaled) * s2), resid, r2


def fit_gvf(x, relvar, form: str = "bjs", weights="iterative", max_iter: int = 100, tol: float = 1e-10) -> GVF:
    """Fit a GVF on estimated totals ``x`` and their estimated relvariances.

    weights (bjs form): "iterative" (1 / fitted^2, iterated from OLS), None (OLS), or an array
    of fixed weights.  R^2 is the weighted R^2 of relvar (bjs) or the R^2 of log relvar
    (loglinear); ``data`` holds the residuals.
    """
    if form not in ("bjs", "loglinear"):
        raise GVFError(f"GVF form must be 'bjs' or 'loglinear', not {form!r}")
    x, rv = _check(x, relvar)
    n = x.size
    if form == "loglinear":
        Z = np.column_stack([np.ones(n), np.log(x)])
        coef, se, resid, r2 = _wls(Z, np.log(rv), np.ones(n))
        fitted = np.exp(Z @ coef)
        data = pd.DataFrame({"x": x, "relvar": rv, "fitted": fitted, "residual": rv - fitted,
                             "log_residual": resid, "weight": 1.0})
        return GVF("loglinear", float(coef[0]), float(coef[1]), float(se[0]), float(se[1]), r2, n,
                   0, "ols on logs", data)
    Z = np.column_stack([np.ones(n), 1.0 / x])
    if isinstance(weights, str) and weights == "iterative":
        w = np.ones(n)
        coef, se, resid, r2 = _wls(Z, rv, w)
        it = 0
        while it < max_iter:
            it += 1
            fitted = Z @ coef
            floor = 1e-6 * float(np.median(rv))
            w = 1.0 / np.maximum(fitted, floor) ** 2
            w = w / w.mean()
            new, se, resid, r2 = _wls(Z, rv, w)
            done = np.all(np.abs(new - coef) <= tol * np.maximum(np.abs(coef), 1e-300))
            coef = new
            if done:
                break
        label = "iterative 1/fitted^2"
    else:
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=float).ravel()
        if w.shape != x.shape or not np.all(np.isfinite(w) & (w > 0)):
            raise GVFError(f"GVF: weights must be {n} positive numbers")
        coef, se, resid, r2 = _wls(Z, rv, w)
        it, label = 0, "ols" if weights is None else "fixed"
    data = pd.DataFrame({"x": x, "relvar": rv, "fitted": Z @ coef, "residual": resid, "weight": w})
    return GVF("bjs", float(coef[0]), float(coef[1]), float(se[0]), float(se[1]), r2, n, it, label, data)


def fit_proportion_gvf(p, se, base, percent: bool = False) -> GVF:
    """Fit ``var(p) = b p (1 - p) / base`` on estimated proportions, their SEs and base totals.

    With weights 1 / fitted^2 (variance of a variance estimate proportional to its square) the
    least-squares ``b`` is the mean of ``se^2 base / (p (1 - p))`` over the estimates; ``a`` is
    0 (it cancels for proportions).  Estimates with p of 0 or 1 carry no information and are
    an error (select them out).  R^2 is that of se^2 against the fitted variances with the same
    weights, around their weighted mean.
    """
    k = 100.0 if percent else 1.0
    p = np.asarray(p, dtype=float).ravel() / k
    v = (np.asarray(se, dtype=float).ravel() / k) ** 2
    y = np.asarray(base, dtype=float).ravel()
    if not (p.shape == v.shape == y.shape):
        raise GVFError(f"proportion GVF: {p.size} proportions, {v.size} SEs and {y.size} bases")
    bad = ~(np.isfinite(p) & (p > 0) & (p < 1))
    if bad.any():
        raise GVFError(f"proportion GVF: proportions must be strictly between 0 and {'100' if percent else '1'} "
                       f"({int(bad.sum())} of {p.size} rows are not)")
    bad = ~(np.isfinite(v) & (v > 0)) | ~(np.isfinite(y) & (y > 0))
    if bad.any():
        raise GVFError(f"proportion GVF: SEs and bases must be positive ({int(bad.sum())} of {p.size} rows are not)")
    if p.size < 2:
        raise GVFError(f"proportion GVF: at least 2 estimates are needed ({p.size} given)")
    z = p * (1 - p) / y
    ratios = v / z
    b = float(ratios.mean())
    b_se = float(ratios.std(ddof=1) / np.sqrt(p.size))
    fitted = b * z
    w = 1.0 / fitted ** 2
    vbar = float((w * v).sum() / w.sum())
    r2 = 1.0 - float((w * (v - fitted) ** 2).sum()) / float((w * (v - vbar) ** 2).sum())
    data = pd.DataFrame({"p": p, "base": y, "var": v, "fitted": fitted, "residual": v - fitted, "weight": w})
    return GVF("proportion", 0.0, b, 0.0, b_se, r2, int(p.size), 0, "1/fitted^2", data)


def relvariances(table: pd.DataFrame, indicators=("victimizations", "victims")) -> pd.DataFrame:
    """Points for a GVF of totals from an indicator table: rows of ``indicators`` (count rows)
    with a positive estimate and SE, not suppressed; columns x (the total) and relvar."""
    for col in ("indicator", "estimate", "se"):
        if col not in table.columns:
            raise GVFError(f"indicator table: column '{col}' not found ({len(table.columns)} columns)")
    t = table[table["indicator"].isin(list(indicators))]
    if "suppressed" in t.columns:
        t = t[~t["suppressed"].fillna(False).astype(bool)]
    t = t[(t["estimate"] > 0) & (t["se"] > 0)]
    out = t.assign(x=t["estimate"].astype(float), relvar=(t["se"] / t["estimate"]).astype(float) ** 2)
    return out


def fit_table_proportions(table: pd.DataFrame, indicator: str = "prevalence", unit: str | None = None) -> GVF:
    """A proportion GVF (:func:`fit_proportion_gvf`) on every usable cell of one % indicator of
    an indicator table: all crime types and domains (overall included), optionally one unit
    (household or person: their bases differ), estimates strictly between 0 and 100% with a
    positive SE, not suppressed."""
    for col in ("indicator", "estimate", "se", "weighted_base"):
        if col not in table.columns:
            raise GVFError(f"indicator table: column '{col}' not found ({len(table.columns)} columns)")
    t = table[table["indicator"] == indicator]
    if unit is not None and "unit" in t.columns:
        t = t[t["unit"] == unit]
    if "suppressed" in t.columns:
        t = t[~t["suppressed"].fillna(False).astype(bool)]
    t = t[(t["estimate"] > 0) & (t["estimate"] < 100) & (t["se"] > 0) & (t["weighted_base"] > 0)]
    if len(t) < 2:
        raise GVFError(f"indicator table: {len(t)} usable cells of '{indicator}'"
                       f"{f' ({unit})' if unit else ''} to fit a proportion GVF (need 2)")
    return fit_proportion_gvf(t["estimate"], t["se"], t["weighted_base"], percent=True)


def smooth_se(df: pd.DataFrame, gvf: GVF, estimate: str = "estimate", base: str | None = None,
              kind: str = "proportion", percent: bool = False) -> np.ndarray:
    """GVF-predicted SEs for the rows of ``df``, to use instead of their direct SEs (e.g. as the
    known sampling SEs of a Fay-Herriot model): totals from ``estimate``; proportions from
    ``estimate`` and the base total column ``base``."""
    if estimate not in df.columns:
        raise GVFError(f"smooth_se: column '{estimate}' not found ({len(df.columns)} columns)")
    if kind == "total":
        return gvf.se_total(df[estimate].to_numpy(dtype=float))
    if kind != "proportion":
        raise GVFError(f"smooth_se: kind must be 'total' or 'proportion', not {kind!r}")
    if base is None or base not in df.columns:
        raise GVFError(f"smooth_se: proportions need the base total column (base={base!r})")
    return gvf.se_proportion(df[estimate].to_numpy(dtype=float), df[base].to_numpy(dtype=float), percent=percent)
