"""Change between waves whose samples overlap (rotating panels), and the minimum detectable change.

:func:`survey.indicators.compare_waves` compares two published tables as independent samples:
SE = sqrt(se1^2 + se2^2).  Successive waves of a rotating panel (NCVS households stay in sample
for 3.5 years; a CSEW-style design may keep its PSUs) share PSUs or households, and their
estimates are correlated: positively for victimization, so treating them as independent
overstates the SE of the change and hides real changes.

:func:`wave_change` works from the two waves' microdata: it stacks them into one design on the
union of their rows, where a PSU present in both waves (same stratum and PSU codes) is one
cluster, and estimates both waves' indicators as ratios on that design.  The linearized
variance of the difference then includes the covariance carried by the shared PSUs:
Var(b - a) = Var(a) + Var(b) - 2 Cov(a, b), with Cov from the PSU totals of both waves' scores.
When the waves share no PSU, each wave keeps its own strata (the stacked variance is then
exactly the sum of the two variances) and the method says so.

:func:`sample_overlap` says whether two waves overlap at all: the number of first-stage PSUs
(same stratum and PSU codes) and of units (same household key) found in both; and
:func:`overlap_method` puts that in words (``"independent samples"`` or ``"overlapping samples:
covariance from N shared PSUs"``).  :func:`survey.indicators.compare_waves`, given the two
waves' microdata, uses it to choose between the independent formula and :func:`wave_change`.
Codes are matched as given: two independent samples that happen to number their PSUs the same
way are taken as overlapping (the stacked variance stays valid then -- a covariance estimated
between unrelated PSUs is centred on zero -- but the method text would overstate the panel).

:func:`minimum_detectable_change`: the smallest change in a proportion that a planned pair of
samples detects with a given power (ONS-style), from the design effect and the overlap.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import SurveyError
from .ingest import SurveyData

CHANGE_COLUMNS = ["indicator", "crime_type", "domain", "domain_value", "a", "b", "estimate_a", "estimate_b",
                  "difference", "se", "se_independent", "statistic", "df", "p_value", "ci_low", "ci_high",
                  "significant", "shared_psus", "method"]
"""One row per (indicator, crime type, domain cell): estimates of both waves (the indicator's
scale), the change b - a with its SE from the stacked design (``se``) and, for comparison, the
SE that independence would give (``se_independent``), t on the stacked design's df, the number
of PSUs in both waves and the method in words."""


class ChangeError(SurveyError, ValueError):
    """The waves cannot be compared (different specs, designs or unknown names)."""


_RATIOS = {  # indicator -> (numerator prefix, denominator prefix or None for a mean), scale
    "prevalence": ("victim", None, 100.0),
    "incidence": ("n", None, 1000.0),
    "concentration": ("n", "victim", 1.0),
    "repeat_victims": ("rv", "victim", 100.0),
    "repeat_incidents": ("ri", "n", 100.0),
    "reporting_rate": ("rep", "n", 100.0),
    "reporting_rate_victims": ("vrep", "victim", 100.0),
}
_PERCEPTION = ("feeling_safe", "worry", "likelihood", "likert")


def _columns(indicator: str, crime: str):
    if indicator in _PERCEPTION:
        return f"perc__{crime}", None, 100.0
    if indicator not in _RATIOS:
        raise ChangeError(f"wave_change: indicator '{indicator}' is not one of "
                          f"{', '.join(list(_RATIOS) + list(_PERCEPTION))}")
    num, den, scale = _RATIOS[indicator]
    return f"{num}__{crime}", (f"{den}__{crime}" if den else None), scale


def _unit_design_columns(data: SurveyData, unit: str):
    d = data.spec.design
    dunit = data.spec.files[d.file].unit
    strata = [d.strata] if isinstance(d.strata, str) else list(d.strata or [])
    psu = [d.psu] if isinstance(d.psu, str) else list(d.psu or [])
    return d.weight_for(unit, dunit), strata, psu[:1]


def _unit_key(data: SurveyData) -> list[str]:
    """The household key of a survey (the combined unit's key when rows are combined): the
    keys of its household file, else of the design file; [] when the respondents lack them."""
    files = data.spec.files
    cands = [f for f in files.values() if f.unit == "household"] + [files[data.spec.design.file]]
    for f in cands:
        key = list(f.combine.key) if f.combine is not None else list(f.keys)
        if key and all(k in data.respondents.columns for k in key):
            return key
    return []


def _keys(frame: pd.DataFrame, cols: list[str], keep: np.ndarray) -> set:
    if not cols:
        return set()
    return set(map(tuple, frame.loc[keep, cols].astype(str).drop_duplicates().to_numpy()))


def sample_overlap(a: SurveyData, b: SurveyData) -> dict:
    """What two waves have in common: ``shared_psus`` (first-stage PSUs with the same stratum and
    PSU codes among the respondents of both waves; None when the design has no PSU),
    ``shared_units`` (households with the same key in both), ``psus_a``/``psus_b``,
    ``units_a``/``units_b``, ``unit_key`` and ``overlapping`` (anything shared)."""
    d = a.spec.design
    strata = [d.strata] if isinstance(d.strata, str) else list(d.strata or [])
    psu = ([d.psu] if isinstance(d.psu, str) else list(d.psu or []))[:1]
    key = _unit_key(a)
    key_b = _unit_key(b)
    out = {"unit_key": key, "shared_psus": None, "psus_a": None, "psus_b": None}
    sets = []
    for w in (a, b):
        r = w.respondents
        keep = r["_respondent"].to_numpy(dtype=bool) if "_respondent" in r else np.ones(len(r), bool)
        sets.append((_keys(r, strata + psu, keep) if psu and all(c in r for c in strata + psu) else None,
                     _keys(r, key, keep) if key and key == key_b else set()))
    if sets[0][0] is not None and sets[1][0] is not None:
        out.update(shared_psus=len(sets[0][0] & sets[1][0]), psus_a=len(sets[0][0]), psus_b=len(sets[1][0]))
    out.update(shared_units=len(sets[0][1] & sets[1][1]), units_a=len(sets[0][1]), units_b=len(sets[1][1]))
    out["overlapping"] = bool(out["shared_psus"] or (out["shared_psus"] is None and out["shared_units"]))
    return out


def overlap_method(ov: dict) -> str:
    """The comparison method in words, from :func:`sample_overlap`."""
    if not ov["overlapping"]:
        return "independent samples"
    if ov["shared_psus"]:
        return f"overlapping samples: covariance from {ov['shared_psus']} shared PSUs"
    return (f"overlapping samples: covariance from {ov['shared_units']} shared households "
            f"(key {', '.join(ov['unit_key'])})")


def _stacked_base(a: SurveyData, b: SurveyData, unit: str):
    """The stacked design of two waves for one unit (module docstring), without the estimated
    columns: (stacked frame, design on the rows with a positive weight, shared PSUs, shared
    households).  The same for every indicator of the unit: :func:`wave_change` reuses it
    through its ``_cache``."""
    from .design import Design

    frames, psu_keys = [], []
    wcol, strata, psu = _unit_design_columns(a, unit)
    wcol_b, strata_b, psu_b = _unit_design_columns(b, unit)
    if (strata, psu) != (strata_b, psu_b):
        raise ChangeError(f"wave_change: the waves' designs differ (strata {strata} / {strata_b}, PSU {psu} / {psu_b})")
    for label, w, wc in (("a", a, wcol), ("b", b, wcol_b)):
        design = w.design(unit)
        r = w.respondents
        keep = np.asarray(design._in_domain()) if hasattr(design, "_in_domain") else r["_respondent"].to_numpy()
        f = pd.DataFrame({"_w": r[wc].to_numpy(dtype=float) * keep, "_wave": label})
        for c in strata + psu:
            f[c] = r[c].astype(str).to_numpy()
        frames.append(f)
        psu_keys.append(set(map(tuple, f[strata + psu].drop_duplicates().to_numpy())) if psu else set())
    shared = len(psu_keys[0] & psu_keys[1]) if psu else 0
    stacked = pd.concat(frames, ignore_index=True)
    cluster = psu[0] if psu else None
    shared_units = 0
    if not psu:  # no PSU: a household in both waves is the cluster that carries the covariance
        ov = sample_overlap(a, b)
        key = ov["unit_key"]
        shared_units = ov["shared_units"]
        if shared_units:
            ids = pd.concat([w.respondents[key].astype(str).agg("|".join, axis=1) for w in (a, b)],
                            ignore_index=True)
            stacked["_unit"] = ids.to_numpy()
            cluster = "_unit"
    if not shared and not shared_units:  # nothing in common: each wave its own strata (independent)
        for c in strata or []:
            stacked[c] = stacked[c] + "|" + stacked["_wave"]
        if not strata:
            stacked["_stratum"] = stacked["_wave"]
    st = strata or (["_stratum"] if "_stratum" in stacked else None)
    design = Design(stacked, weights="_w", strata=st if st else None, psu=cluster,
                    nest=False, lonely_psu=a.spec.design.lonely_psu)
    design = design.subset(stacked["_w"].to_numpy() > 0)
    return stacked, design, shared, shared_units


def wave_change(a: SurveyData, b: SurveyData, indicator: str, crime: str, domain: str | None = None,
                level: float = 0.95, _cache: dict | None = None) -> pd.DataFrame:
    """Change from wave ``a`` to wave ``b`` of one indicator (one crime type or perception item),
    overall or by a domain, with the covariance of overlapping samples (see the module).

    Both waves must be loaded through specs with the same design variables (strata and first-
    stage PSU codes that mean the same units in both waves); Taylor designs only.
    ``_cache``: a dict kept between calls on the same two waves (the stacked design is built
    once per unit).
    """
    from scipy import stats

    for w in (a, b):
        if w.spec.design.replicate is not None:
            raise ChangeError("wave_change: replicate-weight designs carry the covariance in their replicates "
                              "only when the replicates are built across waves; use Taylor designs here")
    unit = "person" if indicator in _PERCEPTION else a.unit_of(crime)
    num, den, scale = _columns(indicator, crime)
    for label, w in (("a", a), ("b", b)):
        for c in [num, den] + ([domain] if domain else []):
            if c is not None and c not in w.respondents.columns:
                raise ChangeError(f"wave_change: wave {label} has no column '{c}'")
    if _cache is not None and unit in _cache:
        stacked, base, shared, shared_units = _cache[unit]
    else:
        stacked, base, shared, shared_units = _stacked_base(a, b, unit)
        if _cache is not None:
            _cache[unit] = (stacked, base, shared, shared_units)
    cols = {}
    for label, w in (("a", a), ("b", b)):
        r = w.respondents
        y = r[num].to_numpy(dtype=float)
        x = r[den].to_numpy(dtype=float) if den else np.where(np.isnan(y), np.nan, 1.0)
        zeros = np.zeros(len(stacked) - len(r))
        first = label == "a"
        cols[f"_y{label}"] = np.concatenate([y, zeros] if first else [zeros, y])
        cols[f"_x{label}"] = np.concatenate([x, zeros] if first else [zeros, x])
    if domain:
        cols["_dom"] = np.concatenate([a.respondents[domain].astype(object).to_numpy(),
                                       b.respondents[domain].astype(object).to_numpy()])
    design = base._replace(data=stacked.assign(**cols))
    by = "_dom" if domain else None
    res = design.ratio(["_ya", "_yb"], ["_xa", "_xb"], by=by, level=level)
    V = np.asarray(res.attrs["vcov"], dtype=float)
    k = 2
    G = len(res) // k
    rows = []
    q = stats.t.ppf((1 + level) / 2, design.df)
    for g in range(G):
        ia, ib = g * k, g * k + 1
        if by and res[by].iloc[ia] != res[by].iloc[ib]:  # the layout is cell-major (checked)
            raise ChangeError("wave_change: unexpected result layout")
        ea, eb = res["estimate"].iloc[ia] * scale, res["estimate"].iloc[ib] * scale
        var = (V[ia, ia] + V[ib, ib] - 2 * V[ia, ib]) * scale * scale
        se = float(np.sqrt(max(var, 0.0)))
        se_ind = float(np.sqrt(V[ia, ia] + V[ib, ib]) * scale)
        diff = eb - ea
        t = diff / se if se > 0 else np.nan
        p = float(2 * stats.t.sf(abs(t), design.df)) if se > 0 else np.nan
        rows.append({
            "indicator": indicator, "crime_type": crime, "domain": domain or "overall",
            "domain_value": str(res[by].iloc[ia]) if by else "all",
            "a": a.reference_period, "b": b.reference_period, "estimate_a": ea, "estimate_b": eb,
            "difference": diff, "se": se, "se_independent": se_ind, "statistic": t, "df": float(design.df),
            "p_value": p, "ci_low": diff - q * se, "ci_high": diff + q * se,
            "significant": bool(p < 1 - level) if se > 0 else False, "shared_psus": shared,
            "method": (f"stacked design on the union of the waves: {shared} PSUs in both waves carry the "
                       "covariance of the two estimates, t on the stacked design's df") if shared else
                      (f"stacked design on the union of the waves: {shared_units} households in both waves "
                       "carry the covariance of the two estimates, t on the stacked design's df")
                      if shared_units else
                      ("no PSU in both waves: independent samples (each wave its own strata), "
                       "SE = sqrt(se1^2 + se2^2)"),
        })
    return pd.DataFrame(rows, columns=CHANGE_COLUMNS)


def minimum_detectable_change(p: float, n_a: int, n_b: int | None = None, deff: float = 1.0,
                              overlap: float = 0.0, correlation: float = 0.0, alpha: float = 0.05,
                              power: float = 0.8, two_sided: bool = True) -> float:
    """Smallest change in a proportion ``p`` (0-1) that samples of ``n_a`` and ``n_b`` respondents
    detect with probability ``power`` at level ``alpha``: (z_alpha + z_beta) x SE of the change,
    with each wave's variance ``deff p (1 - p) / n`` and, for a share ``overlap`` of the sample
    in both waves with correlation ``correlation`` between their answers, the covariance
    ``overlap x correlation x sqrt(V_a V_b)`` taken off twice.  In the proportion's units."""
    from scipy import stats

    n_b = n_a if n_b is None else n_b
    checks = {"p": 0 < p < 1, "n_a": n_a > 1, "n_b": n_b > 1, "deff": deff > 0, "overlap": 0 <= overlap <= 1,
              "correlation": -1 <= correlation <= 1, "alpha": 0 < alpha < 1, "power": 0 < power < 1}
    bad = [k for k, ok in checks.items() if not ok]
    if bad:
        raise ChangeError(f"minimum_detectable_change: {bad[0]} is out of range")
    va, vb = deff * p * (1 - p) / n_a, deff * p * (1 - p) / n_b
    var = va + vb - 2 * overlap * correlation * np.sqrt(va * vb)
    za = stats.norm.ppf(1 - alpha / 2 if two_sided else 1 - alpha)
    zb = stats.norm.ppf(power)
    return float((za + zb) * np.sqrt(var))
