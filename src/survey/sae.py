"""Small-area estimation: the Fay-Herriot area-level model (EBLUP with Prasad-Rao MSE).

A national survey gives reliable direct estimates for large domains only.  For areas where the
direct estimate is too noisy (or missing), the Fay-Herriot model borrows strength from an
auxiliary file of area covariates known for every area (census shares, register or
police-recorded rates)::

    direct_i = theta_i + e_i,      e_i ~ N(0, psi_i)      psi_i = direct_se_i^2, taken as known
    theta_i  = x_i' beta + u_i,    u_i ~ N(0, sigma2_u)

:func:`fay_herriot` estimates ``sigma2_u`` by REML or ML (Fisher scoring, truncated at 0),
``beta`` by GLS, and returns for every area the EBLUP
``gamma_i direct_i + (1 - gamma_i) x_i' beta`` with ``gamma_i = sigma2_u / (sigma2_u + psi_i)``
and its estimated MSE (Prasad-Rao; Datta-Lahiri for ML).  Areas of the auxiliary file without a
direct estimate get the synthetic estimate ``x_i' beta``.  Formulas and choices are in
docs/small-areas.md.

:func:`from_indicator_table` takes the direct estimates of one indicator over one domain from
the indicator table (:data:`survey.indicators.TABLE_COLUMNS`) and joins an auxiliary area file
(:func:`read_auxiliary`); :func:`synthetic_auxiliary` builds such a file for the regions of the
synthetic survey from its population; :func:`publication_rule` flags and withholds EBLUPs on
their CV.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import EstimationError, SurveyError, SurveyWarning, column_not_found

RESULT_COLUMNS = ["area", "direct", "direct_se", "eblup", "mse", "rmse", "cv", "gamma", "synthetic",
                  "in_sample", "g1", "g2", "g3"]
"""Columns of :func:`fay_herriot`'s result (``eblup_benchmarked``/``mse_benchmarked`` are added
when a benchmark is given)."""


class SmallAreaError(SurveyError, ValueError):
    """Inputs of a small-area model that cannot be used (missing SE, duplicate areas...)."""


def _rows(mask, labels, limit: int = 5) -> str:
    idx = [str(v) for v in np.asarray(labels)[np.asarray(mask, bool)]]
    more = f", ... ({len(idx)} rows)" if len(idx) > limit else f" ({len(idx)} row{'s' if len(idx) != 1 else ''})"
    return ", ".join(idx[:limit]) + more


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------
def _numeric(df: pd.DataFrame, col: str, what: str, source: str) -> np.ndarray:
    if col not in df.columns:
        raise column_not_found(col, df.columns, what, source)
    v = pd.to_numeric(df[col], errors="coerce")
    bad = v.isna() & df[col].notna()
    if bad.any():
        raise SmallAreaError(f"{source}: column '{col}' ({what}) is not numeric in rows {_rows(bad, df.index)}")
    return v.to_numpy(dtype=float)


def _design_matrix(df: pd.DataFrame, covariates, intercept: bool, source: str, areas) -> tuple[np.ndarray, list]:
    covariates = [covariates] if isinstance(covariates, str) else list(covariates or [])
    cols, names = [], []
    if intercept:
        cols.append(np.ones(len(df)))
        names.append("(intercept)")
    for c in covariates:
        x = _numeric(df, c, "covariate", source)
        miss = ~np.isfinite(x)
        if miss.any():
            raise SmallAreaError(f"{source}: covariate '{c}' is missing or not finite for areas {_rows(miss, areas)}")
        cols.append(x)
        names.append(c)
    if not cols:
        raise SmallAreaError(f"{source}: no covariates and no intercept: the model has no fixed part")
    return np.column_stack(cols), names


def _check_rank(X: np.ndarray, names: list, source: str) -> None:
    """One-line error naming the covariates that are linear combinations of the others."""
    if X.shape[0] < X.shape[1] + 1:
        raise SmallAreaError(f"{source}: {X.shape[0]} areas with a direct estimate for {X.shape[1]} "
                             f"coefficients ({', '.join(names)}): need at least {X.shape[1] + 1}")
    scale = np.sqrt((X ** 2).sum(axis=0))
    Xs = X / np.where(scale > 0, scale, 1.0)
    if np.linalg.matrix_rank(Xs, tol=1e-9 * max(Xs.shape)) == X.shape[1]:
        return
    dependent, kept = [], []
    for j in range(X.shape[1]):  # columns that add nothing to the ones before them
        trial = kept + [j]
        if np.linalg.matrix_rank(Xs[:, trial], tol=1e-9 * max(Xs.shape)) < len(trial):
            dependent.append(names[j])
        else:
            kept.append(j)
    raise SmallAreaError(f"{source}: covariates are collinear on the {X.shape[0]} sampled areas: "
                         f"{', '.join(dependent)} is a linear combination of {', '.join(names[k] for k in kept)}")


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------
def _gls(A: float, y, X, psi):
    w = 1.0 / (A + psi)
    XtWX = X.T @ (w[:, None] * X)
    Q = np.linalg.inv(XtWX)
    beta = Q @ (X.T @ (w * y))
    return w, Q, beta


def _score_info(A: float, y, X, psi, method: str):
    """Score and expected information of sigma2_u (beta profiled out)."""
    w, Q, beta = _gls(A, y, X, psi)
    r = y - X @ beta
    Py = w * r  # P y = V^-1 (y - X beta_hat)
    yPPy = float(Py @ Py)
    if method == "ML":
        return -0.5 * w.sum() + 0.5 * yPPy, 0.5 * float((w ** 2).sum())
    # REML: tr(P) and tr(PP) with P = W - W X Q X' W
    QX2 = Q @ (X.T @ ((w ** 2)[:, None] * X))
    trP = w.sum() - np.trace(QX2)
    trPP = (w ** 2).sum() - 2.0 * np.trace(Q @ (X.T @ ((w ** 3)[:, None] * X))) + np.trace(QX2 @ QX2)
    return -0.5 * trP + 0.5 * yPPy, 0.5 * float(trPP)


def fit_variance(y, X, psi, method: str = "REML", tol: float = 1e-10, max_iter: int = 500,
                 start: float | None = None) -> tuple[float, int, bool]:
    """sigma2_u by Fisher scoring, projected on [0, inf).

    Returns ``(sigma2_u, iterations, at_zero)``.  A step that would go below 0 stops at 0; when
    the score at 0 points further down (the likelihood decreases in sigma2_u) the estimate is 0
    (the boundary maximum) and ``at_zero`` is True.
    """
    y, X, psi = np.asarray(y, float), np.asarray(X, float), np.asarray(psi, float)
    if start is None:  # moment-type start: residual variance of OLS minus the mean sampling variance
        b = np.linalg.lstsq(X, y, rcond=None)[0]
        res = y - X @ b
        start = max(float(res @ res) / max(len(y) - X.shape[1], 1) - float(psi.mean()), 0.1 * float(np.median(psi)))
    A = float(start)
    for it in range(1, max_iter + 1):
        s, info = _score_info(A, y, X, psi, method)
        new = max(A + s / info, 0.0)
        if new == 0.0 and A == 0.0:  # score <= 0 at the boundary: maximum at 0
            return 0.0, it, True
        if abs(new - A) <= tol * max(1.0, A):
            return new, it, new == 0.0
        A = new
    raise EstimationError(f"Fay-Herriot {method}: sigma2_u did not converge in {max_iter} Fisher scoring "
                          f"iterations (last value {A:.6g})")


def fay_herriot(df: pd.DataFrame, estimate: str = "direct", se: str = "direct_se", covariates=(),
                area: str = "area", method: str = "REML", benchmark: float | None = None,
                shares: str | None = None, intercept: bool = True, source: str = "small-area input",
                tol: float = 1e-10) -> pd.DataFrame:
    """Fay-Herriot EBLUPs and their estimated MSE, one row per area of ``df``.

    df          one row per area: the direct estimate and its SE (missing for areas without a
                sample: they get the synthetic estimate) and the covariates (required everywhere)
    method      "REML" (MSE g1 + g2 + 2 g3) or "ML" (adds the Datta-Lahiri bias term)
    benchmark   a national (or higher-level) direct estimate the areas should agree with: the
                EBLUPs are ratio-benchmarked so that ``sum(shares * eblup) == benchmark``;
                ``shares`` names the column of population shares (they are normalised to sum
                to 1 over all rows of ``df``).  Adds ``eblup_benchmarked`` and ``mse_benchmarked``
                (MSE plus the squared adjustment, an approximation).

    Returns :data:`RESULT_COLUMNS` with ``attrs``: sigma2_u, beta, beta_se (dicts by covariate
    name, "(intercept)" first), method, iterations, at_zero, m (areas in the fit),
    var_sigma2_u (2 / sum 1/(sigma2_u + psi)^2, used in g3), ml_bias (b_ML; NaN for REML),
    covariates.  When sigma2_u is estimated as 0 every EBLUP is the synthetic estimate and a
    :class:`~survey.errors.SurveyWarning` says so.  Columns g1, g2, g3: the Prasad-Rao terms
    (out of sample: 0, x'Qx, 0, and mse = sigma2_u + x'Qx).
    """
    method = str(method).upper()
    if method not in ("REML", "ML"):
        raise SmallAreaError(f"{source}: method must be REML or ML, not {method!r}")
    if area not in df.columns:
        raise column_not_found(area, df.columns, "area", source)
    d = df.reset_index(drop=True)
    areas = d[area].astype(str).to_numpy()
    dup = d[area].duplicated(keep=False).to_numpy()
    if dup.any():
        raise SmallAreaError(f"{source}: area column '{area}' has duplicate areas {_rows(dup, areas)}")
    y_all = _numeric(d, estimate, "direct estimate", source)
    se_all = _numeric(d, se, "standard error", source)
    has_y = np.isfinite(y_all)
    bad_se = has_y & ~(np.isfinite(se_all) & (se_all > 0))
    if bad_se.any():
        raise SmallAreaError(f"{source}: column '{se}' is missing, zero or negative for areas with a direct "
                             f"estimate: {_rows(bad_se, areas)}")
    X_all, names = _design_matrix(d, covariates, intercept, source, areas)
    if not has_y.any():
        raise SmallAreaError(f"{source}: column '{estimate}' has no direct estimate in {len(d)} rows")
    y, X, psi = y_all[has_y], X_all[has_y], se_all[has_y] ** 2
    _check_rank(X, names, source)

    A, iters, at_zero = fit_variance(y, X, psi, method, tol=tol)
    if at_zero:
        warnings.warn(f"{source}: sigma2_u estimated as 0 by {method} ({len(y)} areas): the model "
                      "fits the direct estimates within their sampling error, every EBLUP is the "
                      "synthetic (regression) estimate and the MSE is g2 + 2 g3", SurveyWarning, stacklevel=2)
    w, Q, beta = _gls(A, y, X, psi)
    synth = X_all @ beta
    m = len(y)

    out = pd.DataFrame({"area": d[area].to_numpy(), "direct": y_all, "direct_se": se_all})
    psi_all = np.where(has_y, se_all ** 2, np.nan)
    gamma = np.where(has_y, A / (A + np.where(has_y, psi_all, 1.0)), 0.0)
    eblup = np.where(has_y, gamma * np.nan_to_num(y_all) + (1 - gamma) * synth, synth)
    xQx = np.einsum("ij,jk,ik->i", X_all, Q, X_all)
    # variance of sigma2_u_hat (inverse expected information, the same for REML and ML to this order)
    sum_w2 = float((w ** 2).sum())
    var_A = 2.0 / sum_w2
    g1 = np.where(has_y, gamma * np.nan_to_num(psi_all), np.nan)
    g2 = np.where(has_y, (1 - gamma) ** 2 * xQx, xQx)
    psi0 = np.nan_to_num(psi_all)
    g3 = np.where(has_y, psi0 ** 2 / (A + np.where(has_y, psi0, 1.0)) ** 3 * var_A, np.nan)
    mse = g1 + g2 + 2 * g3
    bias = np.nan
    if method == "ML":  # Datta & Lahiri (2000): ML is biased downwards at order 1/m
        bias = -float(np.trace(Q @ (X.T @ ((w ** 2)[:, None] * X)))) / sum_w2
        mse = mse - bias * (1 - gamma) ** 2
    # areas without a sample: synthetic estimate, MSE sigma2_u + x' Q x (g2 with gamma = 0); for ML
    # sigma2_u is bias-corrected (sigma2_u - b_ML), as g1 is above
    mse = np.where(has_y, mse, A + xQx - (bias if method == "ML" else 0.0))
    out["eblup"] = eblup
    out["mse"] = mse
    out["rmse"] = np.sqrt(mse)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["cv"] = np.where(eblup != 0, out["rmse"] / np.abs(eblup), np.nan)
    out["gamma"] = gamma
    out["synthetic"] = synth
    out["in_sample"] = has_y
    out["g1"], out["g2"], out["g3"] = np.where(has_y, g1, 0.0), np.where(has_y, g2, xQx), np.where(has_y, g3, 0.0)

    if benchmark is not None:
        if shares is None:
            raise SmallAreaError(f"{source}: benchmark needs shares= (the column of population shares)")
        sh = _numeric(d, shares, "population share", source)
        bad = ~np.isfinite(sh) | (sh < 0)
        if bad.any() or sh.sum() <= 0:
            raise SmallAreaError(f"{source}: population shares '{shares}' missing or negative for areas "
                                 f"{_rows(bad, areas) if bad.any() else 'all (they sum to 0)'}")
        sh = sh / sh.sum()
        agg = float(sh @ eblup)
        if agg == 0:
            raise SmallAreaError(f"{source}: the share-weighted EBLUPs sum to 0: ratio benchmarking is undefined")
        ratio = float(benchmark) / agg
        out["eblup_benchmarked"] = eblup * ratio
        out["mse_benchmarked"] = mse + (eblup * ratio - eblup) ** 2
        out.attrs["benchmark_ratio"] = ratio

    out.attrs.update({
        "sigma2_u": float(A), "beta": dict(zip(names, map(float, beta))),
        "beta_se": dict(zip(names, map(float, np.sqrt(np.diag(Q))))), "method": method,
        "iterations": int(iters), "at_zero": bool(at_zero), "m": int(m), "var_sigma2_u": var_A,
        "ml_bias": bias, "covariates": names,
    })
    return out


# ---------------------------------------------------------------------------------------------
# inputs from the indicator table and an auxiliary file
# ---------------------------------------------------------------------------------------------
def read_auxiliary(path, area: str = "area") -> pd.DataFrame:
    """Read an auxiliary area file (CSV, one row per area): the area column kept as text."""
    p = Path(path)
    if not p.is_file():
        raise SmallAreaError(f"auxiliary file '{p}' not found")
    aux = pd.read_csv(p, dtype={area: str})
    if area not in aux.columns:
        raise column_not_found(area, aux.columns, "area", str(p))
    dup = aux[area].duplicated(keep=False).to_numpy()
    if dup.any():
        raise SmallAreaError(f"{p}: area column '{area}' has duplicate areas {_rows(dup, aux[area])}")
    miss = aux[area].isna().to_numpy()
    if miss.any():
        raise SmallAreaError(f"{p}: area column '{area}' is empty in {int(miss.sum())} rows")
    aux.attrs["source"] = str(p)
    return aux


def from_indicator_table(table: pd.DataFrame, auxiliary: pd.DataFrame, indicator: str, crime_type: str,
                         domain: str, area: str = "area", source: str = "indicator table") -> pd.DataFrame:
    """Direct estimates of one indicator and crime type over one domain, joined to the auxiliary
    file on ``domain_value == auxiliary[area]``.

    Areas of the auxiliary file without a row (or with a suppressed row) become out-of-sample
    areas (``direct`` missing).  Cells of the table that are not in the auxiliary file are an
    error (they could not be modelled).
    """
    for col in ("indicator", "crime_type", "domain", "domain_value", "estimate", "se"):
        if col not in table.columns:
            raise column_not_found(col, table.columns, "indicator table", source)
    if area not in auxiliary.columns:
        raise column_not_found(area, auxiliary.columns, "area", auxiliary.attrs.get("source", "auxiliary file"))
    sel = table[(table["indicator"] == indicator) & (table["crime_type"] == crime_type) & (table["domain"] == domain)]
    if sel.empty:
        raise SmallAreaError(f"{source}: no rows for indicator '{indicator}', crime type '{crime_type}', "
                             f"domain '{domain}'")
    sel = sel.assign(domain_value=sel["domain_value"].astype(str))
    dup = sel["domain_value"].duplicated(keep=False).to_numpy()
    if dup.any():
        raise SmallAreaError(f"{source}: domain '{domain}' has duplicate values {_rows(dup, sel['domain_value'])}")
    aux = auxiliary.assign(**{area: auxiliary[area].astype(str)})
    unknown = ~sel["domain_value"].isin(aux[area]).to_numpy()
    if unknown.any():
        raise SmallAreaError(f"{source}: domain '{domain}' values not in the auxiliary file's '{area}' column: "
                             f"{_rows(unknown, sel['domain_value'])}")
    keep = ["domain_value", "estimate", "se"] + [c for c in ("n", "n_cases", "weighted_base", "suppressed",
                                                             "measure") if c in sel.columns]
    d = aux.merge(sel[keep], how="left", left_on=area, right_on="domain_value").drop(columns="domain_value")
    if "suppressed" in d.columns:  # a withheld cell carries no usable direct estimate
        s = d["suppressed"].fillna(False).astype(bool)
        d.loc[s, ["estimate", "se"]] = np.nan
    return d.rename(columns={"estimate": "direct", "se": "direct_se"})


def synthetic_auxiliary(seed: int = 1, population_households: int = 100_000) -> pd.DataFrame:
    """Auxiliary file for the 8 regions of the synthetic survey, from its population.

    The population of ``survey synth --seed S`` (default population size 20 x the issued
    households: 100,000 for the default 5,000) is regenerated and summarised by region: number
    of households and their share (``share``), share urban, mean area deprivation score, share
    renting, and the share of households victimized by a household crime in the year before the
    reference period (``prior_rate``, a stand-in for a police-recorded or previous-wave rate).
    These are population values, as a census or register would give them.
    """
    from .synth import REGIONS, make_population

    hh = make_population(seed, population_households).households
    g = hh.groupby("region")
    aux = pd.DataFrame({
        "households": g.size(),
        "share_urban": g["urban"].apply(lambda s: float((s == 1).mean())),
        "deprivation": g["deprivation"].mean(),
        "share_renting": g["tenure"].apply(lambda s: float((s != 1).mean())),
        "prior_rate": g["prior"].apply(lambda s: 100.0 * float((s > 0).mean())),
    })
    aux.insert(0, "area", [REGIONS[int(r)] for r in aux.index])
    aux.insert(2, "share", aux["households"] / aux["households"].sum())
    aux.attrs["source"] = f"survey.sae.synthetic_auxiliary(seed={seed}, population_households={population_households})"
    return aux.reset_index(drop=True)


def publication_rule(result: pd.DataFrame, cv_bands=(15.0, 30.0), max_cv: float | None = 30.0) -> pd.DataFrame:
    """Reliability of model-based estimates from the EBLUP's CV (rmse / eblup, in %).

    ``reliability`` is high / moderate / low by ``cv_bands``; estimates with a CV above
    ``max_cv`` (None: never) are withheld (``suppressed``, value and MSE blanked).  Every row is
    labelled ``estimate_type`` "model-based (Fay-Herriot EBLUP)" or "model-based (synthetic)".
    """
    lo, hi = cv_bands
    if not (0 < lo <= hi):
        raise SmallAreaError(f"publication rule: cv_bands must be increasing and positive, not {cv_bands}")
    t = result.copy()
    cv = t["cv"] * 100
    t["estimate_type"] = np.where(t["in_sample"], "model-based (Fay-Herriot EBLUP)", "model-based (synthetic)")
    t["reliability"] = np.where(cv.isna(), "not estimable", np.where(cv <= lo, "high",
                                                                     np.where(cv <= hi, "moderate", "low")))
    sup = (cv > max_cv).to_numpy() if max_cv is not None else np.zeros(len(t), bool)
    t["suppressed"] = sup
    t["suppression_reason"] = np.where(sup, f"model CV above {max_cv:g}%" if max_cv is not None else "", "")
    for c in ("eblup", "mse", "rmse", "cv", "eblup_benchmarked", "mse_benchmarked"):
        if c in t.columns:
            t.loc[sup, c] = np.nan
    return t


SMALL_AREA_COLUMNS = ["survey", "period", "indicator", "crime_type", "crime_label", "unit", "measure", "domain",
                      "area", "estimate", "rmse", "cv", "estimate_type", "reliability", "suppressed",
                      "suppression_reason", "direct", "direct_se", "direct_cv", "gamma", "synthetic",
                      "in_sample", "se_source", "benchmarked", "method", "sigma2_u", "covariates", "model"]
"""Columns of :func:`small_area_table` (``small_areas.csv``): ``estimate`` is the model-based
estimate (the EBLUP, benchmarked when asked), ``rmse`` and ``cv`` its estimated root MSE and
CV; the direct estimate and its SE are kept for comparison."""


def small_area_table(table: pd.DataFrame, auxiliary: pd.DataFrame, indicator: str, crime_types, domain: str,
                     covariates, area: str = "area", method: str = "REML", cv_bands=(15.0, 30.0),
                     max_cv: float | None = 30.0, benchmark: bool = False, shares: str = "share",
                     smooth_variances: bool = False, source: str = "indicator table") -> pd.DataFrame:
    """Model-based estimates of ``indicator`` for each crime type over the areas of ``domain``:
    :func:`from_indicator_table`, :func:`fay_herriot`, :func:`publication_rule`, stacked into
    :data:`SMALL_AREA_COLUMNS`.

    benchmark: ratio-benchmark each crime type's EBLUPs to the table's overall direct estimate
    (domain "overall") with the auxiliary column ``shares`` as population shares (they must be
    shares of the indicator's unit: households for household crimes, persons for personal ones).
    smooth_variances: the sampling variances of the model are GVF variances instead of the
    direct ones: a proportion GVF (``survey.gvf.fit_table_proportions``) fitted on every cell
    of the indicator (same unit) in ``table``, evaluated at each area's direct estimate and
    weighted base (% indicators only); ``direct_se`` then holds the smoothed SE and
    ``se_source`` says so.
    """
    crime_types = [crime_types] if isinstance(crime_types, str) else list(crime_types)
    parts = []
    for c in crime_types:
        d = from_indicator_table(table, auxiliary, indicator, c, domain, area=area, source=source)
        se_source = "direct"
        if smooth_variances:
            from .gvf import fit_table_proportions

            unit = table.loc[(table["indicator"] == indicator) & (table["crime_type"] == c), "unit"]
            unit = unit.iloc[0] if "unit" in table.columns and len(unit) else None
            g = fit_table_proportions(table, indicator, unit)
            if "weighted_base" not in d.columns:
                raise SmallAreaError(f"{source}: smoothing variances needs the column 'weighted_base'")
            d["direct_se"] = np.where(d["direct"].notna(), g.se_proportion(d["direct"], d["weighted_base"],
                                                                             percent=True), np.nan)
            se_source = f"proportion GVF, b = {g.b:.4g} ({g.n} cells, R^2 {g.r2:.2f})"
        bench = None
        if benchmark:
            ov = table[(table["indicator"] == indicator) & (table["crime_type"] == c) & (table["domain"] == "overall")]
            if ov.empty or not np.isfinite(pd.to_numeric(ov["estimate"], errors="coerce")).all():
                raise SmallAreaError(f"{source}: no overall estimate of '{indicator}' for '{c}' to benchmark to")
            bench = float(ov["estimate"].iloc[0])
        label = f"{source}: {indicator} of {c} by {domain}"
        f = fay_herriot(d, covariates=covariates, area=area, method=method, benchmark=bench,
                        shares=shares if benchmark else None, source=label)
        attrs = dict(f.attrs)
        if benchmark:  # publish the benchmarked value and its (approximate) MSE
            f["eblup"], f["mse"] = f["eblup_benchmarked"], f["mse_benchmarked"]
            f["rmse"] = np.sqrt(f["mse"])
            f["cv"] = f["rmse"] / f["eblup"].abs()
        pub = publication_rule(f, cv_bands=cv_bands, max_cv=max_cv)
        rows = table[(table["indicator"] == indicator) & (table["crime_type"] == c) & (table["domain"] == domain)]
        first = rows.iloc[0] if len(rows) else pd.Series(dtype=object)
        out = pd.DataFrame({
            "survey": first.get("survey"), "period": first.get("period"), "indicator": indicator, "crime_type": c,
            "crime_label": first.get("crime_label", c), "unit": first.get("unit"), "measure": first.get("measure"),
            "domain": domain, "area": pub["area"], "estimate": pub["eblup"], "rmse": pub["rmse"], "cv": pub["cv"],
            "estimate_type": pub["estimate_type"], "reliability": pub["reliability"],
            "suppressed": pub["suppressed"], "suppression_reason": pub["suppression_reason"],
            "direct": pub["direct"], "direct_se": pub["direct_se"], "direct_cv": pub["direct_se"] / pub["direct"].abs(),
            "gamma": pub["gamma"], "synthetic": pub["synthetic"], "in_sample": pub["in_sample"],
            "se_source": se_source, "benchmarked": bool(benchmark), "method": attrs["method"],
            "sigma2_u": attrs["sigma2_u"],
            "covariates": " + ".join(attrs["covariates"]),
            "model": (f"Fay-Herriot area-level model, {attrs['method']}; sigma2_u = {attrs['sigma2_u']:.4g}"
                      + ("; estimated as 0: synthetic estimates" if attrs["at_zero"] else "")),
        })
        parts.append(out)
    return pd.concat(parts, ignore_index=True)[SMALL_AREA_COLUMNS]


MODEL_BASED = "model-based (Fay–Herriot)"
"""The ``method`` label of every row of :func:`publish` (``small_areas.csv``)."""

PUBLISHED_COLUMNS = ["indicator", "crime_type", "domain", "area", "area_label", "direct", "direct_se", "sampling_se",
                     "eblup", "mse", "rmse", "cv", "gamma", "method", "in_sample", "n", "reliability", "suppressed",
                     "flag_reason", "suppression_reason", "note"]
"""Columns of ``small_areas.csv`` (:func:`publish`), one row per area of the auxiliary file:

indicator, crime_type, domain  what is estimated, over which domain (the areas)
area, area_label   the area id (the domain's published value) and its label (the auxiliary
                   file's ``area_label`` column, else the id)
direct, direct_se  the published direct estimate and its design-based SE (blank when the
                   indicator table withheld the cell or the area has no sample)
sampling_se        the SE the model takes as known: direct_se, or the GVF-smoothed SE
eblup              the model-based estimate (EBLUP; synthetic x'beta out of sample;
                   benchmarked when asked); blank when withheld
mse, rmse, cv      its estimated MSE (Prasad-Rao; Datta-Lahiri for ML), root MSE and CV
                   (rmse / |eblup|, a fraction, as the indicator table's ``cv``)
gamma              the shrinkage factor sigma2_u / (sigma2_u + psi): weight of the direct estimate
method             always "model-based (Fay–Herriot)"
in_sample          the area has a direct estimate used by the model
n                  sample cases (unweighted base) of the area's direct estimate (0 out of sample)
reliability        the indicator table's publication rule (survey.quality) applied to the EBLUP's
                   CV and the area's sample cases
suppressed         withheld by that rule (eblup, mse, rmse, cv blank)
flag_reason, suppression_reason   the rule's reasons, worded as in the indicator table (an
                   area without sample cases is rated "no sample cases", as a table cell is)
note               why a value is withheld or flagged, synthetic estimates, benchmarking,
                   smoothing, the model's sigma2_u"""


def publish(table: pd.DataFrame, auxiliary: pd.DataFrame, indicator: str, crime_type: str, domain: str,
            covariates, rule: dict | None = None, area: str = "area", area_label: str | None = None,
            method: str = "REML", smooth_variances: str = "none", benchmark: bool = False,
            shares: str | None = None, source: str = "indicator table") -> pd.DataFrame:
    """Model-based estimates of one indicator and crime type over the areas of ``domain``, for
    publication (:data:`PUBLISHED_COLUMNS`): the direct estimates of the indicator table joined
    to the auxiliary file (:func:`from_indicator_table`), the Fay-Herriot model
    (:func:`fay_herriot`), then the indicator table's own publication rule ``rule``
    (``{"preset": ..., **params}``, as in ``indicators.meta.json``; :func:`survey.quality.apply_rule`)
    applied to each EBLUP with its root MSE as SE, its CV and the area's sample cases.

    A direct estimate withheld by the table, or with an SE of 0 (nothing to weigh it by), is not
    used: the area is modelled as out of sample.  ``smooth_variances``: "gvf" takes the sampling
    SEs from a proportion GVF fitted on the table (see :func:`small_area_table`).  ``benchmark``:
    ratio-benchmark to the table's overall direct estimate with the auxiliary column ``shares``.
    """
    from .quality import apply_rule

    d = from_indicator_table(table, auxiliary, indicator, crime_type, domain, area=area, source=source)
    notes: list[list[str]] = [[] for _ in range(len(d))]
    zero = (d["direct"].notna() & ~(d["direct_se"] > 0)).to_numpy()
    for i in np.flatnonzero(zero):
        notes[i].append("direct estimate with SE 0: not used by the model")
    d.loc[zero, ["direct", "direct_se"]] = np.nan
    direct_se = d["direct_se"].to_numpy(dtype=float)
    d["sampling_se"] = d["direct_se"]
    smoothing = ""
    if smooth_variances == "gvf":
        from .gvf import fit_table_proportions

        unit = None
        if "unit" in table.columns:
            u = table.loc[(table["indicator"] == indicator) & (table["crime_type"] == crime_type), "unit"]
            unit = u.iloc[0] if len(u) else None
        if "weighted_base" not in d.columns:
            raise SmallAreaError(f"{source}: smoothing variances needs the column 'weighted_base'")
        g = fit_table_proportions(table, indicator, unit)
        d["sampling_se"] = np.where(d["direct"].notna(), g.se_proportion(d["direct"], d["weighted_base"],
                                                                          percent=True), np.nan)
        smoothing = f"sampling SE from a proportion GVF (b = {g.b:.4g}, {g.n} cells)"
    elif smooth_variances not in (None, "none", False):
        raise SmallAreaError(f"{source}: smooth_variances must be gvf or none, not {smooth_variances!r}")
    bench = None
    if benchmark:
        ov = table[(table["indicator"] == indicator) & (table["crime_type"] == crime_type)
                   & (table["domain"] == "overall")]
        est = pd.to_numeric(ov["estimate"], errors="coerce")
        if ov.empty or not np.isfinite(est).all():
            raise SmallAreaError(f"{source}: no overall estimate of '{indicator}' for '{crime_type}' to benchmark to")
        bench = float(est.iloc[0])
    label = f"{source}: {indicator} of {crime_type} by {domain}"
    f = fay_herriot(d, estimate="direct", se="sampling_se", covariates=covariates, area=area, method=method,
                    benchmark=bench, shares=shares if benchmark else None, source=label)
    attrs = dict(f.attrs)
    if benchmark:
        f["eblup"], f["mse"] = f["eblup_benchmarked"], f["mse_benchmarked"]
        f["rmse"] = np.sqrt(f["mse"])
        with np.errstate(divide="ignore", invalid="ignore"):
            f["cv"] = np.where(f["eblup"] != 0, f["rmse"] / f["eblup"].abs(), np.nan)
    n = pd.to_numeric(d["n"], errors="coerce").fillna(0).astype(int) if "n" in d.columns else pd.Series(0, index=d.index)
    in_sample = f["in_sample"].to_numpy(dtype=bool)
    n = n.where(in_sample | n.gt(0), 0)
    n_cases = (pd.to_numeric(d["n_cases"], errors="coerce").fillna(0).astype(int) if "n_cases" in d.columns else n)
    wb = pd.to_numeric(d["weighted_base"], errors="coerce").fillna(0.0) if "weighted_base" in d.columns else n * 1.0
    rule = dict(rule or {})
    preset = rule.pop("preset", None) or "none"
    cells = pd.DataFrame({
        "indicator": indicator, "crime_type": crime_type, "domain": domain,
        "domain_value": f["area"].astype(str).to_numpy(), "estimate": f["eblup"].to_numpy(),
        "se": f["rmse"].to_numpy(), "ci_low": (f["eblup"] - 1.959963984540054 * f["rmse"]).to_numpy(),
        "ci_high": (f["eblup"] + 1.959963984540054 * f["rmse"]).to_numpy(), "cv": f["cv"].to_numpy(),
        "deff": np.nan, "n": n.to_numpy(), "n_cases": n_cases.to_numpy(), "weighted_base": wb.to_numpy()})
    rated = apply_rule(cells, preset, **rule)
    sup = rated["suppressed"].to_numpy(dtype=bool)
    labels = (auxiliary.set_index(auxiliary[area].astype(str))[area_label].astype(str)
              if area_label else None)
    for i in range(len(d)):
        if not in_sample[i]:
            notes[i].append("no usable direct estimate: synthetic estimate (regression on the covariates)")
        if sup[i]:
            notes[i].append(f"withheld: {rated['suppression_reason'].iloc[i]}")
        elif rated["flag_reason"].iloc[i]:
            notes[i].append(str(rated["flag_reason"].iloc[i]))
        if benchmark:
            notes[i].append("benchmarked to the overall direct estimate")
        if smoothing:
            notes[i].append(smoothing)
    model = (f"{attrs['method']}, sigma2_u = {attrs['sigma2_u']:.4g}"
             + (" (estimated as 0: every estimate is synthetic)" if attrs["at_zero"] else ""))
    out = pd.DataFrame({
        "indicator": indicator, "crime_type": crime_type, "domain": domain, "area": f["area"].astype(str),
        "area_label": [labels.get(a, a) if labels is not None else a for a in f["area"].astype(str)],
        "direct": f["direct"], "direct_se": np.where(zero, np.nan, direct_se), "sampling_se": f["direct_se"],
        "eblup": f["eblup"], "mse": f["mse"], "rmse": f["rmse"], "cv": f["cv"], "gamma": f["gamma"],
        "method": MODEL_BASED, "in_sample": in_sample, "n": n.to_numpy(),
        "reliability": rated["reliability"].to_numpy(), "suppressed": sup,
        "flag_reason": rated["flag_reason"].to_numpy(), "suppression_reason": rated["suppression_reason"].to_numpy(),
        "note": ["; ".join(x + [model]) for x in notes]})
    out.loc[sup, ["eblup", "mse", "rmse", "cv"]] = np.nan
    out.attrs.update(attrs)
    out.attrs["publication_rule"] = {"preset": preset, **rule}
    return out[PUBLISHED_COLUMNS]


def write_csv(frame: pd.DataFrame, path) -> Path:
    """Write a CSV atomically, text cells a spreadsheet would run as formulas neutralized
    (:func:`survey._safe_csv.write_safe_csv`)."""
    from ._safe_csv import write_safe_csv

    return write_safe_csv(frame, path)
