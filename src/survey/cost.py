"""Cost of crime and cost-benefit of prevention programmes.

Cost of crime.  With ``T_k`` the estimated population total of crimes of type ``k`` (the sum
over respondents of their victimization counts, weighted) and ``c_k`` its unit cost, the total
cost is the linear combination ``C = sum_k c_k T_k``.  Its variance uses the full covariance
``V`` of the totals (the same respondents report several crime types, so the totals are
correlated): ``Var(C) = c' V c``; the covariance comes from the engine (``design.total``,
``attrs["vcov"]``: Taylor linearization or replicates).  Intervals: t on the design degrees of
freedom.  Domains (``by=``): a cost per domain, each with its own ``c' V c`` on the joint
covariance of all domains' totals.

Unit costs: a CSV with columns ``crime_type, unit_cost, currency, price_year, source`` (one
row per crime type, one currency and one price year in a table).  The shipped table
``survey/data/unit_costs_home_office_2018.csv`` holds the Home Office's 2015/16 costs per crime
(GBP; see survey/data/README.md for what has and has not been checked against the report).
Unit costs are taken as known constants: their own uncertainty is not in the SEs.

Cost-benefit of a programme (``cost_benefit``): crimes averted ``A = -effect x exposed``
(``effect`` the estimated change in crimes per unit of the treated population after the start,
e.g. a difference-in-differences of incidents per household; ``exposed`` the number of treated
units, times the number of periods), benefit ``B = A x unit cost`` (or ``sum_k`` over crime
types with the effects' covariance), net benefit ``B - programme cost`` and benefit-cost ratio
``B / programme cost``; SEs by the delta method (linear in the effects, so exact given the
effect's variance), intervals with t on the effect's degrees of freedom.

Several years (``discounted_cost_benefit``): costs ``P_t`` and exposed units ``N_t`` in years
``t = 0, 1, ..., T-1`` (year 0 the first year, not discounted), the effect ``tau`` (one for
every year, or ``tau_t`` per year with their covariance), discount factors
``d_t = (1 + r)^-t``: present value of the benefit ``PVB = sum_t d_t (-tau_t) N_t c``, of the
costs ``PVC = sum_t d_t P_t``, net present value ``PVB - PVC`` and ratio ``PVB / PVC``.  PVB
is a linear combination of the effects, ``g' tau`` with ``g_t = -d_t N_t c``, so its
design-based variance is ``g' V g`` exactly.  The default rate, 3.5% a year, is the standard
social time preference rate of HM Treasury's Green Book (the central government guidance on
appraisal and evaluation) for the first 30 years; offices use their own government's rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .errors import SurveyError

__all__ = ["load_unit_costs", "cost_of_crime", "cost_benefit", "cost_benefit_from_did", "CostError",
           "UNIT_COST_COLUMNS", "HOME_OFFICE_2018", "discount_factors", "discounted_cost_benefit",
           "GREEN_BOOK_RATE"]

UNIT_COST_COLUMNS = ["crime_type", "unit_cost", "currency", "price_year", "source"]
HOME_OFFICE_2018 = Path(__file__).resolve().parent / "data" / "unit_costs_home_office_2018.csv"
GREEN_BOOK_RATE = 0.035
"""Default discount rate: HM Treasury Green Book social time preference rate (3.5% a year)."""


class CostError(SurveyError, ValueError):
    """A unit-cost table or a cost computation is not usable."""


def load_unit_costs(path: str | Path | pd.DataFrame | None = None) -> pd.DataFrame:
    """A unit-cost table (default: the shipped Home Office 2018 table), checked: the five
    columns present, unit costs numeric and >= 0, crime types unique and not empty, one currency
    and one price year."""
    if isinstance(path, pd.DataFrame):
        tab, name = path.copy(), "unit cost table"
    else:
        p = Path(path) if path is not None else HOME_OFFICE_2018
        if not p.is_file():
            raise CostError(f"unit cost table '{p}' is not a file")
        tab, name = pd.read_csv(p, dtype={"crime_type": str, "currency": str, "price_year": str, "source": str}), str(p)
    missing = [c for c in UNIT_COST_COLUMNS if c not in tab.columns]
    if missing:
        raise CostError(f"{name}: missing column(s) {', '.join(missing)} (needs {', '.join(UNIT_COST_COLUMNS)}; "
                        f"{len(tab)} rows)")
    cost = pd.to_numeric(tab["unit_cost"], errors="coerce")
    bad = int((cost.isna() | (cost < 0) | ~np.isfinite(cost.fillna(0))).sum())
    if bad:
        raise CostError(f"{name}: unit_cost is missing, not a number or negative in {bad} of {len(tab)} rows")
    tab["unit_cost"] = cost.astype(float)
    ct = tab["crime_type"].astype("string").str.strip()
    if ct.isna().any() or (ct == "").any():
        raise CostError(f"{name}: crime_type is empty in {int((ct.isna() | (ct == '')).sum())} of {len(tab)} rows")
    dup = ct[ct.duplicated()].unique()
    if len(dup):
        raise CostError(f"{name}: crime_type repeated: {', '.join(map(str, dup[:5]))} ({len(tab)} rows)")
    tab["crime_type"] = ct.astype(str)
    for col in ("currency", "price_year"):
        vals = tab[col].astype(str).unique()
        if len(vals) != 1:
            raise CostError(f"{name}: one {col} per table, found {', '.join(vals)} ({len(tab)} rows); convert first")
    return tab.reset_index(drop=True)


def _tq(level, df):
    return stats.t.ppf((1 + level) / 2, df) if np.isfinite(df) else stats.norm.ppf((1 + level) / 2)


def cost_of_crime(design, counts: dict, unit_costs=None, by=None, level: float = 0.95) -> pd.DataFrame:
    """Total cost of crime with a design-based SE (module docstring).

    counts: ``{crime_type: count column}``, e.g. ``{"burglary_dwelling": "n_burglary"}``; each
        crime type must be in the unit-cost table.
    unit_costs: a path, DataFrame or None (the shipped Home Office 2018 table).
    by: an optional domain column (one cost per domain).

    Returns one row per (domain,) crime type and a ``crime_type == "total"`` row: crimes
    (estimated total), crimes_se, unit_cost, cost, se, ci_low, ci_high, df, currency,
    price_year.  ``attrs["vcov_totals"]``: the covariance of the totals used.
    """
    tab = load_unit_costs(unit_costs).set_index("crime_type")
    if not counts:
        raise CostError("cost_of_crime: no crime type given (counts={crime_type: column})")
    unknown = [k for k in counts if k not in tab.index]
    if unknown:
        raise CostError(f"cost_of_crime: crime type(s) {', '.join(unknown)} not in the unit cost table "
                        f"({len(tab)} rows: {', '.join(tab.index[:8])}...)")
    types = list(counts)
    cols = [counts[k] for k in types]
    if len(set(cols)) != len(cols):
        raise CostError("cost_of_crime: the same count column is given for two crime types")
    res = design.total(cols, by=by, level=level)
    v = np.asarray(res.attrs["vcov"], dtype=float)
    c_of = {counts[k]: float(tab.loc[k, "unit_cost"]) for k in types}
    ctype = {counts[k]: k for k in types}
    res = res.reset_index(drop=True)
    cvec = res["variable"].map(c_of).to_numpy(float)
    keys = [by] if isinstance(by, str) else (list(by) if by is not None else [])
    groups = res.groupby(keys, sort=False, observed=True).indices if keys else {None: np.arange(len(res))}
    cur, year = tab["currency"].iloc[0], tab["price_year"].iloc[0]
    rows = []
    for g, idx in groups.items():
        idx = np.asarray(idx)
        key = dict(zip(keys, g if isinstance(g, tuple) else (g,))) if keys else {}
        df = float(res.loc[idx, "df"].min())
        q = _tq(level, df)
        for i in idx:
            cost, se = cvec[i] * res.loc[i, "estimate"], cvec[i] * res.loc[i, "se"]
            rows.append({**key, "crime_type": ctype[res.loc[i, "variable"]], "crimes": res.loc[i, "estimate"],
                         "crimes_se": res.loc[i, "se"], "unit_cost": cvec[i], "cost": cost, "se": se,
                         "ci_low": cost - q * se, "ci_high": cost + q * se, "df": df})
        c = np.zeros(len(res))
        c[idx] = cvec[idx]
        total = float(c @ res["estimate"].to_numpy())
        se = float(np.sqrt(max(c @ v @ c, 0.0)))
        rows.append({**key, "crime_type": "total", "crimes": float(res.loc[idx, "estimate"].sum()),
                     "crimes_se": float(np.sqrt(max(np.ones(len(idx)) @ v[np.ix_(idx, idx)] @ np.ones(len(idx)), 0))),
                     "unit_cost": np.nan, "cost": total, "se": se, "ci_low": total - q * se,
                     "ci_high": total + q * se, "df": df})
    out = pd.DataFrame(rows)
    out["currency"], out["price_year"] = cur, year
    out.attrs["vcov_totals"] = v
    out.attrs["coefficients"] = cvec
    return out


def cost_benefit(effect, programme_cost: float, exposed: float, unit_cost, se=None, vcov=None, df: float = np.inf,
                 level: float = 0.95, crime_type=None, currency: str = "", price_year: str = "") -> pd.DataFrame:
    """Cost-benefit of a programme from its estimated effect (module docstring).

    effect: change in crimes per exposed unit (negative = fewer crimes); a number, or one per
        crime type (then ``unit_cost`` has one per type and ``vcov`` their covariance, or ``se``
        independent SEs).
    programme_cost: the programme's cost (same currency and price year as the unit costs).
    exposed: treated units x periods over which the effect runs.
    Returns rows crimes_averted, benefit, net_benefit, benefit_cost_ratio: estimate, se,
    ci_low, ci_high, df, method.
    """
    eff = np.atleast_1d(np.asarray(effect, dtype=float))
    cost = np.atleast_1d(np.asarray(unit_cost, dtype=float))
    if cost.shape != eff.shape:
        raise CostError(f"cost_benefit: {eff.size} effect(s) and {cost.size} unit cost(s)")
    if vcov is None:
        if se is None:
            raise CostError("cost_benefit: give se= (or vcov=) of the effect")
        vcov = np.diag(np.atleast_1d(np.asarray(se, dtype=float)) ** 2)
    vcov = np.atleast_2d(np.asarray(vcov, dtype=float))
    if vcov.shape != (eff.size, eff.size):
        raise CostError(f"cost_benefit: vcov is {vcov.shape}, need {(eff.size, eff.size)}")
    if not programme_cost > 0:
        raise CostError(f"cost_benefit: programme_cost must be positive, not {programme_cost}")
    if not exposed > 0:
        raise CostError(f"cost_benefit: exposed must be positive, not {exposed}")
    g_avert = -exposed * np.ones(eff.size)
    g_benefit = -exposed * cost
    averted = float(g_avert @ eff)
    benefit = float(g_benefit @ eff)
    v_avert = float(g_avert @ vcov @ g_avert)
    v_benefit = float(g_benefit @ vcov @ g_benefit)
    q = _tq(level, df)
    rows = []
    for name, est, var in (("crimes_averted", averted, v_avert), ("benefit", benefit, v_benefit),
                           ("net_benefit", benefit - programme_cost, v_benefit),
                           ("benefit_cost_ratio", benefit / programme_cost, v_benefit / programme_cost ** 2)):
        s = float(np.sqrt(max(var, 0.0)))
        rows.append({"quantity": name, "estimate": est, "se": s, "ci_low": est - q * s, "ci_high": est + q * s,
                     "df": df, "method": "delta method (linear in the effect; unit and programme costs fixed)"})
    out = pd.DataFrame(rows)
    out["programme_cost"], out["exposed"] = programme_cost, exposed
    out["currency"], out["price_year"] = currency, price_year
    if crime_type is not None:
        out["crime_type"] = ", ".join(np.atleast_1d(crime_type).astype(str))
    return out


def cost_benefit_from_did(result, crime_type: str, programme_cost: float, exposed: float, unit_costs=None,
                          estimand: str | None = None, level: float = 0.95) -> pd.DataFrame:
    """``cost_benefit`` for one crime type from a ``survey.evaluation.did`` result: its effect
    (``did`` for a linear model of crimes per unit; ``att_prevalence`` for a logistic model of
    victims, then 'crimes' are victims), SE and df, and the unit cost of ``crime_type``."""
    tab = load_unit_costs(unit_costs).set_index("crime_type")
    if crime_type not in tab.index:
        raise CostError(f"cost_benefit_from_did: crime type '{crime_type}' not in the unit cost table ({len(tab)} rows)")
    eff = result.effects.set_index("estimand")
    key = estimand or ("did" if "did" in eff.index else "att_prevalence")
    if key not in eff.index:
        raise CostError(f"cost_benefit_from_did: estimand '{key}' not in the result ({', '.join(eff.index)})")
    row = eff.loc[key]
    return cost_benefit(row["effect"], programme_cost, exposed, tab.loc[crime_type, "unit_cost"], se=row["se"],
                        df=float(row["df"]), level=level, crime_type=crime_type,
                        currency=tab.loc[crime_type, "currency"], price_year=tab.loc[crime_type, "price_year"])


def discount_factors(years: int, rate: float = GREEN_BOOK_RATE) -> np.ndarray:
    """``(1 + rate)^-t`` for ``t = 0 .. years-1`` (the first year is not discounted)."""
    if not (isinstance(years, (int, np.integer)) and years >= 1):
        raise CostError(f"discount_factors: years must be a whole number >= 1, not {years!r}")
    if not (np.isfinite(rate) and 0 <= rate < 1):
        raise CostError(f"discount rate must be a number in [0, 1), not {rate!r}")
    return (1.0 + rate) ** -np.arange(years, dtype=float)


def _per_year(value, name: str, years: int | None) -> np.ndarray:
    v = np.atleast_1d(np.asarray(value, dtype=float))
    if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all():
        raise CostError(f"discounted_cost_benefit: {name} must be finite numbers, one per year ({v.size} given)")
    if years is not None and v.size not in (1, years):
        raise CostError(f"discounted_cost_benefit: {name} has {v.size} values for {years} years")
    return v


def discounted_cost_benefit(effect, programme_cost, exposed, unit_cost: float, se=None, vcov=None,
                            df: float = np.inf, rate: float = GREEN_BOOK_RATE, level: float = 0.95,
                            crime_type=None, currency: str = "", price_year: str = "") -> pd.DataFrame:
    """Cost-benefit over several years, discounted to present values (module docstring).

    programme_cost: the cost in each year (a list; a number: all in year 0).
    exposed: units exposed in each year (a list, same length; a number: year 0 only, unless
        programme_cost has several years, then the same number every year).
    effect: change in crimes per exposed unit and year: one number for every year (with ``se``)
        or one per year (with their covariance ``vcov``, e.g. event-study effects).
    unit_cost: value of one crime (same currency and price year as the costs).
    rate: discount rate a year (default 3.5%, the Green Book's).
    Returns rows crimes_averted (undiscounted), benefit (present value), programme_cost (present
    value, known), net_benefit (net present value), benefit_cost_ratio: estimate, se, ci_low,
    ci_high, df, method; with ``years`` and ``discount_rate``.
    """
    costs = _per_year(programme_cost, "programme_cost", None)
    n_exp = _per_year(exposed, "exposed", None)
    years = max(costs.size, n_exp.size)
    if costs.size not in (1, years) or n_exp.size not in (1, years):
        raise CostError(f"discounted_cost_benefit: programme_cost has {costs.size} years and exposed {n_exp.size}")
    if costs.size == 1 and years > 1:
        costs = np.concatenate([costs, np.zeros(years - 1)])
    if n_exp.size == 1 and years > 1:
        n_exp = np.repeat(n_exp, years)
    if (costs < 0).any() or not costs.sum() > 0:
        raise CostError("discounted_cost_benefit: programme costs must be >= 0 and their total positive")
    if (n_exp <= 0).any():
        raise CostError("discounted_cost_benefit: exposed must be positive in every year")
    if not (np.isfinite(unit_cost) and unit_cost >= 0):
        raise CostError(f"discounted_cost_benefit: unit_cost must be a finite number >= 0, not {unit_cost!r}")
    d = discount_factors(years, rate)
    eff = _per_year(effect, "effect", years)
    if vcov is None:
        if se is None:
            raise CostError("discounted_cost_benefit: give se= (or vcov=) of the effect")
        s_ = _per_year(se, "se", eff.size)
        vcov = np.diag(np.broadcast_to(s_, eff.shape) ** 2)
    vcov = np.atleast_2d(np.asarray(vcov, dtype=float))
    if vcov.shape != (eff.size, eff.size):
        raise CostError(f"discounted_cost_benefit: vcov is {vcov.shape}, need {(eff.size, eff.size)}")
    if eff.size == 1:  # one effect for every year: the coefficients add up over the years
        g_avert = np.array([-n_exp.sum()])
        g_benefit = np.array([-unit_cost * float(d @ n_exp)])
    else:
        g_avert = -n_exp
        g_benefit = -unit_cost * d * n_exp
    averted = float(g_avert @ eff)
    benefit = float(g_benefit @ eff)
    pv_cost = float(d @ costs)
    v_avert = float(g_avert @ vcov @ g_avert)
    v_benefit = float(g_benefit @ vcov @ g_benefit)
    q = _tq(level, df)
    rows = []
    how = (f"present values at {100 * rate:g}% a year over {years} year(s); linear in the effect "
           "(design-based SE sqrt(g'Vg)); unit and programme costs fixed")
    for name, est, var in (("crimes_averted", averted, v_avert), ("benefit", benefit, v_benefit),
                           ("programme_cost", pv_cost, 0.0), ("net_benefit", benefit - pv_cost, v_benefit),
                           ("benefit_cost_ratio", benefit / pv_cost, v_benefit / pv_cost ** 2)):
        s = float(np.sqrt(max(var, 0.0)))
        rows.append({"quantity": name, "estimate": est, "se": s, "ci_low": est - q * s, "ci_high": est + q * s,
                     "df": df, "method": how})
    out = pd.DataFrame(rows)
    out["years"], out["discount_rate"] = years, rate
    out["currency"], out["price_year"] = currency, price_year
    if crime_type is not None:
        out["crime_type"] = ", ".join(np.atleast_1d(crime_type).astype(str))
    out.attrs["discount_factors"] = d
    return out
