"""Victimization indicators with design-based inference, as one long indicator table.

Definitions follow docs/methods.md#indicator-definitions (UNODC-UNECE Manual, SDG metadata, BJS, ONS).  For crime type (or
group) *C* and domain *D*, on the design of the unit *C* is counted against (households or
persons), every estimate is computed on the full design with the domain indicator:

================================  ==================================================  =========
indicator                         estimator                                           unit
================================  ==================================================  =========
prevalence                        mean of ``victim__C``                               %
incidence                         mean of ``n__C``                                    per 1,000
concentration                     ratio ``sum w n__C / sum w victim__C``              ratio
repeat_victims                    ratio of victims with 2+ victimizations to victims  %
repeat_incidents                  share of victimizations suffered by repeat victims  %
multiple_victimization            victims of 2+ different types of a group / victims  %
reporting_rate                    victimizations reported / victimizations            %
reporting_rate_victims            victims who reported any / victims                  %
dark_figure                       100 - reporting_rate                                %
feeling_safe, worry, likert       mean of the perception item's 0/1 coding            %
================================  ==================================================  =========

Incidence = prevalence x concentration holds by construction (all three are ratios of the same
weighted totals).  Rates whose denominator is estimated are ratios of estimated totals with
linearized (or replicate) variance.  The table schema is :data:`TABLE_COLUMNS`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import SurveyError, SurveyWarning
from .ingest import SurveyData
from .quality import apply_rule

TABLE_COLUMNS = [
    "survey", "period", "indicator", "crime_type", "crime_label", "iccs", "unit", "domain", "domain_value",
    "estimate", "se", "ci_low", "ci_high", "df", "cv", "deff", "n", "n_cases", "weighted_base",
    "reliability", "flag_reason", "suppressed", "suppression_reason", "measure", "cap_rule", "definition",
    "sdg_indicator", "sdg_deviation", "numerator", "denominator",
]
"""The indicator table, one row per (indicator, crime type or item, domain, domain value):

survey, period      from the spec
indicator           see :data:`INDICATORS`
crime_type          crime type or group name (the item name for perception indicators)
crime_label, iccs   label and ICCS code (groups: the ICCS codes of their types, joined by +)
unit                household or person: what the rate is counted against
domain              domain variable ("overall" for the whole population)
domain_value        the domain's category ("all" for overall)
estimate, se        the estimate in the indicator's measure (%, per 1,000, ratio) and its SE
ci_low, ci_high     confidence interval at 95%, t on df: for % indicators the logit interval
                    (better coverage for small proportions); for incidence rates symmetric on
                    the log scale, for concentration on the log of (concentration - 1): both
                    are right-skewed (heavy-tailed counts); for the Gini the logit interval
                    (inside (0, 1)).  No interval (blank) for a cell at its bound with SE 0:
                    no sample case, a share of 0 or 100%, a rate or concentration at its floor
                    (see flag_reason)
df                  degrees of freedom of the interval: the design's (PSUs - strata; replicate
                    rank - 1) for overall rows; for % indicators by domain the domain's own
                    (PSUs - strata among its rows; replicate designs: rank of its rows of the
                    replicate weights - 1), as R's svyby + svyciprop; for incidence and
                    concentration on Taylor designs the smaller of the design's and the
                    Satterthwaite effective df of the cell's variance, (sum_h v_h)^2 /
                    sum_h v_h^2 / (n_h - 1) over the strata's contributions v_h (low when a few
                    strata carry the variance: survey.domain_batch.DomainBatch.effective_df)
cv                  coefficient of variation (se / estimate)
deff                Kish design effect
n                   unweighted base (respondent rows in the denominator of the cell)
n_cases             unweighted sample cases in the numerator (victims, reporters, positives)
weighted_base       estimated population of the denominator (households, persons, victims...)
reliability         reliability band or flag from the publication rule
flag_reason         why it is flagged (also: no sample case, or an estimate at its bound with
                    SE 0: no interval)
suppressed          the value is withheld (all statistics blank)
suppression_reason  why (primary rule, or secondary protection of another cell)
measure             %, per 1,000, ratio, index (Gini)
cap_rule            the series/cap rule applied to counts
definition          the indicator's definition, with the unit of count
sdg_indicator       SDG code where the indicator is an SDG indicator (16.1.3, 16.1.4, 16.3.1)
sdg_deviation       how this survey's measure differs from the global SDG definition
numerator           what the estimate counts, in words, on the row's unit (e.g. "households
                    victimized at least once"; for a count, what is counted)
denominator         what it is divided by ("households", "victimizations", "persons who
                    answered"; empty for counts and Gini indices).  Together with ``unit`` and
                    ``period`` (the reference period the units are counted over) they state
                    each indicator
"""


@dataclass(frozen=True)
class Indicator:
    label: str
    measure: str
    scale: float
    definition: str
    sdg: str = ""


INDICATORS: dict[str, Indicator] = {
    "prevalence": Indicator("Prevalence", "%", 100.0,
                            "Share of the population (persons or households) victimized at least once in the "
                            "reference period"),
    "incidence": Indicator("Incidence rate", "per 1,000", 1000.0,
                           "Victimizations in the reference period per 1,000 persons or households"),
    "concentration": Indicator("Concentration", "ratio", 1.0,
                               "Victimizations per victim (incidence / prevalence)"),
    "repeat_victims": Indicator("Repeat victims", "%", 100.0,
                                "Share of victims victimized two or more times in the reference period"),
    "repeat_incidents": Indicator("Victimizations against repeat victims", "%", 100.0,
                                  "Share of all victimizations suffered by victims with two or more"),
    "multiple_victimization": Indicator("Multiple victimization", "%", 100.0,
                                        "Share of victims who suffered two or more different crime types "
                                        "of the group"),
    "reporting_rate": Indicator("Reporting rate", "%", 100.0,
                                "Victimizations reported to the police / all victimizations (unit: "
                                "victimizations)", "16.3.1"),
    "reporting_rate_victims": Indicator("Reporting rate (victims)", "%", 100.0,
                                        "Victims who reported at least one victimization to the police / "
                                        "all victims (unit: victims)", "16.3.1"),
    "victimizations": Indicator("Victimizations", "count", 1.0,
                                "Estimated number of victimizations in the reference period (weighted total; "
                                "series and caps as in cap_rule)"),
    "victims": Indicator("Victims", "count", 1.0,
                         "Estimated number of persons or households victimized at least once in the reference "
                         "period (weighted total)"),
    "gini": Indicator("Gini of victimizations", "index", 1.0,
                      "Gini coefficient of victimizations over the population (0 = spread evenly, 1 = all "
                      "suffered by one respondent)"),
    "gini_victims": Indicator("Gini of victimizations among victims", "index", 1.0,
                              "Gini coefficient of victimizations over the victims"),
    "dark_figure": Indicator("Dark figure", "%", 100.0,
                             "Victimizations not reported to the police (100 - reporting rate)"),
    "feeling_safe": Indicator("Feeling safe", "%", 100.0,
                              "Respondents who feel very or fairly safe walking alone in their area after "
                              "dark / respondents who answered", "16.1.4"),
    "worry": Indicator("High worry", "%", 100.0, "Respondents very worried about the crime type"),
    "likelihood": Indicator("Perceived likelihood", "%", 100.0, "Respondents who think victimization likely"),
    "likert": Indicator("Likert item", "%", 100.0, "Respondents giving the item's positive answers"),
}

VICTIMIZATION_FAMILIES = ("prevalence", "incidence", "concentration", "repeat_victims", "repeat_incidents",
                          "multiple_victimization", "reporting_rate", "reporting_rate_victims", "dark_figure",
                          "victimizations", "victims", "gini", "gini_victims")

OVER_VICTIMIZATIONS = ("repeat_incidents", "reporting_rate", "dark_figure")
"""Families whose denominator is victimizations: their ``n`` is the sample victimizations (series
counted as the spec says, unweighted), ``weighted_base`` the estimated victimizations and
``n_cases`` the sample victimizations of the numerator (to repeat victims, reported, not
reported), so that case-count rules (BJS: 10 or fewer) fire on what the share is made of."""

_PARTS = {  # (numerator, denominator) per family; {u}: households or persons
    "prevalence": ("{u} victimized at least once", "{u}"),
    "incidence": ("victimizations", "{u}"),
    "concentration": ("victimizations", "victim {u}"),
    "repeat_victims": ("victim {u} victimized two or more times", "victim {u}"),
    "repeat_incidents": ("victimizations of victims victimized two or more times", "victimizations"),
    "multiple_victimization": ("victim {u} of two or more crime types of the group", "victim {u}"),
    "reporting_rate": ("victimizations reported to the police", "victimizations"),
    "reporting_rate_victims": ("victim {u} who reported at least one victimization to the police", "victim {u}"),
    "dark_figure": ("victimizations not reported to the police (or not known to be)", "victimizations"),
    "victimizations": ("victimizations", ""),
    "victims": ("{u} victimized at least once", ""),
    "gini": ("inequality of victimizations over the {u}", ""),
    "gini_victims": ("inequality of victimizations over the victim {u}", ""),
    "feeling_safe": ("{u} feeling very or fairly safe", "{u} who answered"),
    "worry": ("{u} very worried", "{u} who answered"),
    "likelihood": ("{u} who think victimization likely", "{u} who answered"),
    "likert": ("{u} giving the item's positive answers", "{u} who answered"),
}


def numerator_denominator(indicator: str, unit: str) -> tuple[str, str]:
    """The numerator and denominator of an indicator on its unit, in words."""
    num, den = _PARTS[indicator]
    u = {"household": "households", "person": "persons"}.get(unit, f"{unit}s")
    return num.format(u=u), den.format(u=u)


SDG_GLOBAL = {
    "16.1.3": "Proportion of population subjected to physical, psychological or sexual violence in the "
              "previous 12 months",
    "16.1.4": "Proportion of population that feel safe walking alone around the area they live after dark",
    "16.3.1": "Proportion of victims of violence in the previous 12 months who reported their victimization "
              "to competent authorities or other officially recognized conflict resolution mechanisms",
}


SRS_NOTE = ("design without strata or PSUs: standard errors assume simple random sampling with "
            "replacement of respondents, and are too small if the sample was clustered")
"""The note an indicator table carries (``attrs["notes"]``) when the spec declares no strata, PSUs
or replicate weights."""


class IndicatorError(SurveyError, ValueError):
    """An indicator cannot be computed for this survey (unknown crime type, domain...)."""


# ---------------------------------------------------------------------------------------------
def _cap_rule(data: SurveyData) -> str:
    v = data.spec.victimization
    if v is None:
        return ""
    parts = []
    if v.series is not None:
        s = v.series
        parts.append(f"series counted as {s.count}" + (f" capped at {s.cap:g}" if s.cap is not None else "")
                     + f", unknown = {s.unknown_value:g}")
    if v.cap.rule == "none":
        parts.append("no cap")
    elif v.cap.rule == "fixed":
        parts.append(f"cap {v.cap.value:g} per respondent and crime type")
    else:
        parts.append(f"cap at the weighted {v.cap.value:g}th percentile per crime type")
    return "; ".join(parts)


def _crime_meta(data: SurveyData, name: str) -> tuple[str, str, bool]:
    """Label, ICCS code(s) and whether it is 12-month violence (SDG 16.1.3 / 16.3.1)."""
    v = data.spec.victimization
    types = {t.name: t for t in v.types}
    members = [types[m] for m in v.members(name)]
    twelve = all(t.period.replace("-", " ").lower() in ("12 months", "12 month", "1 year", "one year")
                 for t in members)
    violent = all(t.violent for t in members) and twelve
    if name in types:
        t = types[name]
        return t.label or name, t.iccs or "", violent
    iccs = "+".join(dict.fromkeys(t.iccs for t in members if t.iccs))
    return name.replace("_", " ").capitalize(), iccs, violent


def _positive_counts(design, cols: list[str], by, weighted: bool = False) -> np.ndarray:
    """Per (cell, column), in result order: respondent rows with a positive value (weighted: their
    weight sum).  Cells as the estimators make them (cached on the design)."""
    from .estimate import _cells

    cell, keys, _ = _cells(design, by)
    G, k = len(keys), len(cols)
    r = np.flatnonzero((cell >= 0) & (design.w > 0))
    x = np.column_stack([design.data[c].to_numpy(dtype=float, na_value=np.nan)[r] for c in cols]) > 0
    idx = (cell[r][:, None] * k + np.arange(k)).ravel()[x.ravel()]
    wts = np.repeat(design.w[r], k)[x.ravel()] if weighted else None
    return np.bincount(idx, wts, minlength=G * k)


def _family_rows(data, design, family, estimates: pd.DataFrame, crimes: list[str], dom, n_cases, unit):
    ind = INDICATORS[family]
    out = estimates.copy()
    if ind.measure == "%":  # proportions: logit interval, t on the domain's df, as TABLE_COLUMNS documents
        from .domain_batch import domain_df
        from .estimate import _cells, proportion_ci

        if dom:  # each domain's own df (R's svyby + svyciprop: degf of the domain's subset design)
            _, keys, _ = _cells(design, dom)
            per_cell = dict(zip(keys[dom].astype(str), domain_df(design, dom)))
            out["df"] = out[dom].astype(str).map(per_cell).to_numpy(dtype=float)
        p = out["estimate"].to_numpy(dtype=float)
        lo, hi = proportion_ci(p, out["se"].to_numpy(dtype=float), 0.95, out["df"].to_numpy(dtype=float), "logit")
        # at 0 or 1 (no case, or every one a case) the SE is 0 and the logit undefined: no interval
        out["ci_low"], out["ci_high"] = lo, hi
    elif family in ("incidence", "concentration", "victimizations", "victims"):
        if "df_effective" in out:  # fewer df when a few strata carry the variance (heavy-tailed counts)
            dfe = out["df_effective"].to_numpy(dtype=float)
            out["df"] = np.where(np.isfinite(dfe), np.minimum(out["df"].to_numpy(dtype=float), np.maximum(dfe, 1.0)),
                                 out["df"].to_numpy(dtype=float))
        out["ci_low"], out["ci_high"] = _log_ci(out["estimate"].to_numpy(dtype=float),
                                                out["se"].to_numpy(dtype=float), out["df"].to_numpy(dtype=float),
                                                1.0 if family == "concentration" else 0.0)
    elif family in ("gini", "gini_victims"):
        out["ci_low"], out["ci_high"] = _gini_ci(out["estimate"].to_numpy(dtype=float),
                                                 out["se"].to_numpy(dtype=float), out["df"].to_numpy(dtype=float))
    return _label_rows(out, family, ind, crimes, n_cases, unit, dom)


def _label_rows(out: pd.DataFrame, family: str, ind, crimes, n_cases, unit: str, dom) -> pd.DataFrame:
    """The rows of one family's estimates (domain x crime type, crime type fastest) labelled and
    on the published scale: crime type, sample cases, scale, dark figure as 100 - reporting rate,
    indicator, unit, domain and value, weighted base (shared by the in-memory and streamed tables)."""
    k = len(crimes)
    out["crime_type"] = np.tile(np.asarray(crimes, dtype=object), len(out) // k)
    out["n_cases"] = n_cases
    for c in ("estimate", "se", "ci_low", "ci_high"):
        out[c] = out[c] * ind.scale
    if family == "dark_figure":
        out["estimate"], out["ci_low"], out["ci_high"] = 100 - out["estimate"], 100 - out["ci_high"], 100 - out["ci_low"]
        out["cv"] = out["se"] / out["estimate"].abs()
    out["indicator"] = family
    out["unit"] = unit
    out["domain"] = dom or "overall"
    out["domain_value"] = out[dom].astype(str) if dom else "all"
    out["weighted_base"] = out["weighted_n"]
    return out


def _gini_ci(g: np.ndarray, se: np.ndarray, df: np.ndarray, level: float = 0.95):
    """Interval of a Gini coefficient on the logit scale (delta method, t on df), inside (0, 1)
    as the coefficient (of non-negative counts); a Wald interval crosses 0 for small Ginis with
    large SEs.  A Gini of 0 or 1 (one distinct value: SE 0) has no interval (NaN)."""
    from .estimate import proportion_ci

    lo, hi = proportion_ci(g, se, level, df, "logit")
    ok = (g > 0) & (g < 1) & (se > 0)
    return np.where(ok, lo, np.nan), np.where(ok, hi, np.nan)


def _log_ci(est: np.ndarray, se: np.ndarray, df: np.ndarray, floor: float, level: float = 0.95):
    """Interval symmetric on the log scale of ``est - floor`` (delta method, t on df).

    Counts of victimizations are heavy-tailed: the estimates of rates and of victimizations per
    victim are right-skewed and their SE grows with them, so a symmetric interval misses mostly on
    the high side.  The log scale (rates, floor 0) and the log of the excess over one
    (concentration, which is at least 1 by construction) give intervals that extend further up.
    A cell at the floor (no victimization, or every victim once) has SE 0: no interval (NaN),
    an interval [floor, floor] would claim certainty.
    """
    from .estimate import _tq

    q = _tq(level, df)
    e = est - floor
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        f = np.exp(q * se / e)
        lo = np.where(e > 0, floor + e / f, np.where(se > 0, est - q * se, np.nan))
        hi = np.where(e > 0, floor + e * f, np.where(se > 0, est + q * se, np.nan))
    return lo, hi


def _victimization(data: SurveyData, unit: str, crimes: list[str], domains: list[str | None], families,
                  effective_df: str = "satterthwaite"):
    design = data.design(unit)
    ratios = _ratio_families(data, crimes, families)
    dfe = _effective_df_source(design, crimes, families, effective_df)
    rows = []
    for dom in domains:
        if {"prevalence", "incidence"} & set(families):
            cases = _positive_counts(design, [f"victim__{c}" for c in crimes], dom)
            for fam, cols in (("prevalence", "victim"), ("incidence", "n")):
                if fam in families:
                    est = design.mean([f"{cols}__{c}" for c in crimes], by=dom)
                    if fam == "incidence" and dfe is not None:
                        est["df_effective"] = dfe.estimate(dom)[0]["df_effective"].to_numpy()
                    rows.append(_family_rows(data, design, fam, est, crimes, dom, cases, unit))
        for family, num, den, case_cols in ratios:
            est = _ratio(design, num, den, dom)
            if family == "concentration" and dfe is not None:
                est["df_effective"] = dfe.estimate(dom)[1]["df_effective"].to_numpy()
            rows.append(_family_rows(data, design, family, est, crimes, dom, _positive_counts(design, case_cols, dom),
                                     unit))
    return rows


def _effective_df_source(design, crimes, families, effective_df: str = "satterthwaite"):
    """For the general path on a Taylor design: the effective df of incidence and concentration
    (the same as the batch path's); None for replicate and calibrated designs (their df)."""
    from .domain_batch import FamilyEstimator, Ratios, supported

    if not supported(design) or not {"incidence", "concentration"} & set(families):
        return None
    if any(design.data[f"n__{c}"].isna().all() for c in crimes):
        return None
    victim, n = [f"victim__{c}" for c in crimes], [f"n__{c}" for c in crimes]
    return FamilyEstimator(design, [Ratios("incidence", crimes, n, None, victim, effective_df=effective_df),
                                    Ratios("concentration", crimes, n, victim, victim, base="den",
                                           effective_df=effective_df)])


def _ratio_families(data: SurveyData, crimes: list[str], families) -> list[tuple]:
    """(family, numerators, denominators, case columns) of the ratio families, in table order."""
    inc_source = data.spec.victimization.source == "incidents"
    victim = [f"victim__{c}" for c in crimes]
    n = [f"n__{c}" for c in crimes]
    rv = [f"rv__{c}" for c in crimes]
    ratios = []
    if "concentration" in families:
        ratios.append(("concentration", n, victim, victim))
    if "repeat_victims" in families:
        ratios.append(("repeat_victims", rv, victim, rv))
    if "repeat_incidents" in families:
        ratios.append(("repeat_incidents", [f"ri__{c}" for c in crimes], n, rv))
    cols = set(data.respondents.columns)
    rep, vrep = [f"rep__{c}" for c in crimes], [f"vrep__{c}" for c in crimes]
    if inc_source and set(rep) <= cols:
        for fam in ("reporting_rate", "dark_figure"):
            if fam in families:
                ratios.append((fam, rep, n, vrep))
    if set(vrep) <= cols and "reporting_rate_victims" in families:
        ratios.append(("reporting_rate_victims", vrep, victim, vrep))
    return ratios


def _unit_rows_batch(data: SurveyData, unit: str, crimes: list[str], groups: list[str], domains, families,
                     effective_df: str = "satterthwaite"):
    """The victimization, multiple-victimization and Gini rows (three lists) of one unit through
    :mod:`survey.domain_batch` (Taylor designs): one pass over the weights per domain variable
    for every family, variances only.  Same rows, in the same order, as the general path."""
    from .domain_batch import FamilyEstimator, GiniBatch, Ratios

    design = data.design(unit)
    victim = [f"victim__{c}" for c in crimes]
    fams = []
    if "prevalence" in families:
        fams.append(Ratios("prevalence", crimes, victim, None, victim))
    if "incidence" in families:
        fams.append(Ratios("incidence", crimes, [f"n__{c}" for c in crimes], None, victim, effective_df=effective_df))
    for family, num, den, case_cols in _ratio_families(data, crimes, families):
        fams.append(Ratios(family, crimes, num, den, case_cols, base="den",
                           effective_df=effective_df if family == "concentration" else False))
    n_vic = len(fams)
    if groups and "multiple_victimization" in families:
        mv = [f"mv__{g}" for g in groups]
        fams.append(Ratios("multiple_victimization", groups, mv, [f"victim__{g}" for g in groups], mv, base="den"))
    rows: list[pd.DataFrame] = []
    multiple: list[pd.DataFrame] = []
    ginis: list[pd.DataFrame] = []
    if fams:
        fe = FamilyEstimator(design, fams)
        for dom in domains:
            frames = fe.estimate(dom)
            for fam, fr in zip(fams, frames):
                out = _family_rows(data, design, fam.name, fr, fam.items, dom, fr["n_cases"].to_numpy(), unit)
                (rows if fams.index(fam) < n_vic else multiple).append(out)
    for fam, over in (("gini", "population"), ("gini_victims", "victims")):
        if fam not in families:
            continue
        items = []
        for c in crimes:
            y = design.data[f"k__{c}"].to_numpy(dtype=float)
            keep = ~np.isnan(y)
            if over == "victims":
                keep &= design.data[f"victim__{c}"].to_numpy() > 0
            items.append((y, keep, float(design.df) if keep.all() else float(design.subset(keep).df)))
        gb = GiniBatch(design, items)
        for dom in domains:
            for c, g in zip(crimes, gb.estimate(dom)):
                g["cv"] = g["se"] / g["estimate"].abs()
                g["deff"] = np.nan
                g["variable"] = c
                ginis.append(_family_rows(data, design, fam, g.drop(columns=["n_cases"]), [c], dom,
                                          g["n_cases"].to_numpy(), unit))
    return rows, multiple, ginis


def _count_rows(data: SurveyData, unit: str, counted: list[str], screener: list[str], domains, families):
    """Victimizations and victims as estimated totals (BJS leads with them), per crime type or
    group and domain cell, on the full design: ``n__`` (incidence weighting) and ``victim__``.
    Prevalence-only types (a screener, no count) give victims only."""
    design = data.design(unit)
    rows = []
    for family, prefix, crimes in (("victimizations", "n", counted), ("victims", "victim", counted + screener)):
        if family not in families or not crimes:
            continue
        cols = [f"{prefix}__{c}" for c in crimes]
        for dom in domains:
            est = design.total(cols, by=dom)
            if family == "victims":
                cases = _positive_counts(design, [f"victim__{c}" for c in crimes], dom)
            else:
                cases = _cell_sums(design, [f"k__{c}" for c in crimes], dom)
            rows.append(_family_rows(data, design, family, est, crimes, dom, cases, unit))
    return rows


def _cell_sums(design, cols, by, weighted: bool = False) -> np.ndarray:
    """Per (cell, column), in result order: the sum of each column (a name, or an array over the
    design's rows) over the cell's respondent rows (weighted: times the weight); missing
    values count 0."""
    from .estimate import _cells

    cell, keys, _ = _cells(design, by)
    G, k = len(keys), len(cols)
    r = np.flatnonzero((cell >= 0) & (design.w > 0))
    x = np.column_stack([np.nan_to_num(_values(design, c)[r]) for c in cols])
    if weighted:
        x = x * design.w[r][:, None]
    idx = (cell[r][:, None] * k + np.arange(k)).ravel()
    return np.bincount(idx, x.ravel(), minlength=G * k)


def _values(design, c) -> np.ndarray:
    return c if isinstance(c, np.ndarray) else design.data[c].to_numpy(dtype=float, na_value=np.nan)


def _victimization_bases(data: SurveyData, unit: str, rows: list[pd.DataFrame], domains) -> None:
    """The base of the families over victimizations (:data:`OVER_VICTIMIZATIONS`), in place:
    ``n`` the sample victimizations (``k__``), ``weighted_base`` the estimated victimizations,
    ``n_cases`` the numerator's sample victimizations (of repeat victims, reported, not
    reported: ``krep__`` is the reported ones)."""
    design = data.design(unit)
    cols = set(design.data.columns)
    for out in rows:
        if not len(out) or out["indicator"].iloc[0] not in OVER_VICTIMIZATIONS:
            continue
        fam = out["indicator"].iloc[0]
        crimes = list(dict.fromkeys(out["crime_type"]))
        if not {f"k__{c}" for c in crimes} <= cols:
            continue
        dom = None if out["domain"].iloc[0] == "overall" else out["domain"].iloc[0]
        k = [_values(design, f"k__{c}") for c in crimes]
        n = _cell_sums(design, k, dom)
        if len(n) != len(out):
            continue
        out["n"] = np.rint(n).astype(np.int64)
        out["weighted_base"] = _cell_sums(design, [f"n__{c}" for c in crimes], dom, weighted=True)
        if fam == "repeat_incidents":
            num = _cell_sums(design, [kc * (kc >= 2) for kc in k], dom)
        elif {f"krep__{c}" for c in crimes} <= cols:
            num = _cell_sums(design, [f"krep__{c}" for c in crimes], dom)
            num = n - num if fam == "dark_figure" else num
        else:
            continue
        out["n_cases"] = np.rint(num).astype(np.int64)


def _ratio(design, num, den, by):
    """Ratios num_j / den_j; the base (n, weighted_n) is the rows with den > 0 (the victims)."""
    r = design.ratio(num, den, by=by)
    r["n"] = _positive_counts(design, den, by).astype(np.int64)
    r["weighted_n"] = _positive_counts(design, den, by, weighted=True)
    return r


def _multiple(data: SurveyData, unit: str, groups: list[str], domains):
    design = data.design(unit)
    rows = []
    num = [f"mv__{g}" for g in groups]
    den = [f"victim__{g}" for g in groups]
    for dom in domains:
        est = _ratio(design, num, den, dom)
        cases = _positive_counts(design, num, dom)
        rows.append(_family_rows(data, design, "multiple_victimization", est, groups, dom, cases, unit))
    return rows


def _gini_rows(data: SurveyData, unit: str, crimes, domains, family: str, over: str):
    from .lorenz import gini

    design = data.design(unit)
    rows = []
    for dom in domains:
        for c in crimes:
            g = gini(data, c, over=over, by=dom)
            g["cv"] = g["se"] / g["estimate"].abs()
            g["deff"] = np.nan
            g["variable"] = c
            rows.append(_family_rows(data, design, family, g.drop(columns=["crime_type", "over", "n_cases"]), [c],
                                     dom, g["n_cases"].to_numpy(), unit))
    return rows


def _perception(data: SurveyData, items, domains, method="auto"):
    from .domain_batch import FamilyEstimator, Ratios, supported

    design = data.design()
    unit = data.spec.files[data.spec.design.file].unit
    rows = []
    by_indicator: dict[str, list] = {}
    for item in items:
        by_indicator.setdefault(item.indicator, []).append(item)
    if method == "batch" or (method == "auto" and supported(design)):
        fams = [Ratios(ind, [i.name for i in its], [f"perc__{i.name}" for i in its], None,
                       [f"perc__{i.name}" for i in its]) for ind, its in by_indicator.items()]
        fe = FamilyEstimator(design, fams)
        per_dom = {dom: fe.estimate(dom) for dom in domains}
        for j, fam in enumerate(fams):
            for dom in domains:
                fr = per_dom[dom][j]
                rows.append(_family_rows(data, design, fam.name, fr, fam.items, dom, fr["n_cases"].to_numpy(), unit))
        return rows
    for indicator, its in by_indicator.items():
        cols = [f"perc__{i.name}" for i in its]
        names = [i.name for i in its]
        for dom in domains:
            est = design.mean(cols, by=dom)
            cases = _positive_counts(design, cols, dom)
            rows.append(_family_rows(data, design, indicator, est, names, dom, cases, unit))
    return rows


def indicator_table(data: SurveyData, crime_types=None, domains=None, indicators=None, publication=None,
                    method: str = "auto", by_victimization: bool = True, effective_df: str | None = None,
                    **publication_params) -> pd.DataFrame:
    """All indicators as one long table (columns :data:`TABLE_COLUMNS`).

    effective_df: the df of the incidence and concentration intervals on Taylor designs
    (default: the spec's ``publication.effective_df``, else Satterthwaite): "satterthwaite" (each stratum's variance term a chi-square on its PSUs minus 1) or
    "heavy_tailed" (fewer df where a stratum's PSU totals are heavier-tailed than normal; see
    :meth:`survey.domain_batch.DomainBatch.effective_df` and benchmarks/README.md for coverage).
    by_victimization: also the perception indicators (feeling safe, worry...) among victims and
    non-victims of each selected crime group (its types when the spec has no groups), as
    :func:`perception_by_victimization`: domain ``victim__<crime>``, values "victims" and
    "non-victims".

    crime_types: names of types and groups (default: every type and group of the spec).
    domains: domain names (default: every spec domain); "overall" is always included.
    indicators: families (default: all that the survey supports).
    publication: rule preset (default: the spec's), with its parameters (``min_base=``...).
    method: "auto" (Taylor designs without calibration through :mod:`survey.domain_batch`: one
    pass over the weights per domain variable for every family, variances only; other designs
    through the general estimators), "general" (always the general estimators: the same numbers,
    slower) or "batch".
    """
    if method not in ("auto", "general", "batch"):
        raise IndicatorError(f"method must be 'auto', 'general' or 'batch', not '{method}'")
    effective_df = effective_df or data.spec.publication.effective_df
    if effective_df not in ("satterthwaite", "heavy_tailed"):
        raise IndicatorError(f"effective_df must be 'satterthwaite' or 'heavy_tailed', not '{effective_df}'")
    t0 = time.perf_counter()
    spec = data.spec
    v = spec.victimization
    all_crimes = (data.crime_types + data.crime_groups) if v else []
    crimes = list(crime_types) if crime_types is not None else all_crimes
    bad = [c for c in crimes if c not in all_crimes]
    if bad:
        raise IndicatorError(f"unknown crime type(s) or group(s): {', '.join(bad)} (known: {', '.join(all_crimes)})")
    doms = list(domains) if domains is not None else list(spec.domains)
    bad = [d for d in doms if d not in spec.domains]
    if bad:
        raise IndicatorError(f"unknown domain(s): {', '.join(bad)} (known: {', '.join(spec.domains)})")
    dom_list: list[str | None] = [None] + doms
    families = list(indicators) if indicators is not None else list(INDICATORS)
    unknown = [f for f in families if f not in INDICATORS]
    if unknown:
        raise IndicatorError(f"unknown indicator(s): {', '.join(unknown)} (known: {', '.join(INDICATORS)})")
    rows = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SurveyWarning)
        rows = _all_rows(data, v, crimes, families, dom_list, spec, method, effective_df)
        items = [i for i in spec.perception if i.indicator in families]
        if by_victimization and v is not None and items and crimes:
            status = [c for c in crimes if c in v.groups] or [c for c in crimes if c in data.crime_types]
            rows += _perception(data, items, [f"victim__{c}" for c in status], method)
    if not rows:
        raise IndicatorError("no indicator could be computed for this selection")
    return _finish(data, rows, crimes, spec, publication, publication_params, t0,
                   sorted({str(w.message) for w in caught}))


def _all_rows(data, v, crimes, families, dom_list, spec, method="auto", effective_df="satterthwaite"):
    from .domain_batch import supported

    rows = []
    if v is not None and crimes:
        resp = data.respondents
        for unit in ("household", "person"):
            cs = [c for c in crimes if data.unit_of(c) == unit]
            if not cs:
                continue
            # prevalence-only types (a screener, no count): prevalence and reporting by victims
            counted = [c for c in cs if resp[f"n__{c}"].notna().any()]
            screener = [c for c in cs if c not in counted]
            vic_fams = [f for f in families if f in VICTIMIZATION_FAMILIES]
            udoms = [d for d in dom_list if d is None or not spec.domains[d].units or unit in spec.domains[d].units]
            groups = [c for c in counted if c in v.groups]
            batch = method == "batch" or (method == "auto" and supported(data.design(unit)))
            if batch and counted:
                vic, multiple, ginis = _unit_rows_batch(data, unit, counted, groups, udoms, families, effective_df)
            else:
                vic = _victimization(data, unit, counted, udoms, vic_fams, effective_df) if counted else []
                multiple = (_multiple(data, unit, groups, udoms)
                            if groups and "multiple_victimization" in families else [])
                ginis = []
                for fam, over in (("gini", "population"), ("gini_victims", "victims")):
                    if fam in families:
                        ginis += _gini_rows(data, unit, counted, udoms, fam, over)
            _victimization_bases(data, unit, vic, udoms)
            rows += vic
            rows += _count_rows(data, unit, counted, screener, udoms, families)
            for c in screener:  # one by one: reporting items may exist for some only
                rows += _victimization(data, unit, [c], udoms,
                                       [f for f in vic_fams if f in ("prevalence", "reporting_rate_victims")])
            # multiple victimization needs only the members' screeners (victims of 2+ types)
            screener_groups = [c for c in screener if c in v.groups and f"mv__{c}" in resp]
            if screener_groups and "multiple_victimization" in families:
                multiple += _multiple(data, unit, screener_groups, udoms)
            rows += multiple + ginis
    items = [i for i in spec.perception if i.indicator in families]
    if items:
        rows += _perception(data, items, dom_list, method)
    return rows


def _finish(data, rows, crimes, spec, publication, publication_params, t0, notes):
    v = spec.victimization
    table = pd.concat(rows, ignore_index=True)
    status = table["domain"].astype(str).str.startswith("victim__")
    if status.any():  # perceptions by victimization status: the victim__ column as a domain
        victim = pd.to_numeric(table.loc[status, "domain_value"], errors="coerce")
        table.loc[status, "domain_value"] = np.where(victim > 0, "victims", "non-victims")
    table["survey"] = spec.survey
    table["period"] = data.reference_period
    meta = {c: _crime_meta(data, c) for c in crimes} if v is not None else {}
    perc = {i.name: i for i in spec.perception}
    table["crime_label"] = [meta[c][0] if c in meta else (perc[c].label or c) for c in table["crime_type"]]
    table["iccs"] = [meta[c][1] if c in meta else "" for c in table["crime_type"]]
    table["measure"] = table["indicator"].map(lambda f: INDICATORS[f].measure)
    table["cap_rule"] = np.where(table["indicator"].isin(VICTIMIZATION_FAMILIES), _cap_rule(data), "")
    table["definition"] = table["indicator"].map(lambda f: INDICATORS[f].definition)
    parts = {k: numerator_denominator(*k) for k in set(zip(table["indicator"], table["unit"]))}
    table["numerator"] = [parts[k][0] for k in zip(table["indicator"], table["unit"])]
    table["denominator"] = [parts[k][1] for k in zip(table["indicator"], table["unit"])]
    sdg, dev = [], []
    for f, c in zip(table["indicator"], table["crime_type"]):
        code, deviation = _sdg(data, f, c, meta, perc)
        sdg.append(code)
        dev.append(deviation)
    table["sdg_indicator"] = sdg
    table["sdg_deviation"] = dev
    table = table.rename(columns={"weighted_n": "_wn"})
    preset = publication or spec.publication.preset
    params = dict(min_base=spec.publication.min_base, min_cases=spec.publication.min_cases,
                  max_cv=spec.publication.max_cv,
                  cv_bands=tuple(spec.publication.cv_bands) if spec.publication.cv_bands else None)
    params.update(publication_params)
    table = apply_rule(table, preset, **params)
    out = table[TABLE_COLUMNS].reset_index(drop=True)
    out.attrs["publication_rule"] = table.attrs.get("publication_rule")
    d = spec.design
    if d.replicate is None and not d.strata and not d.psu:
        notes = [SRS_NOTE] + list(notes)
    out.attrs["notes"] = notes  # e.g. respondents with a missing domain value (also in the accounting)
    out.attrs["seconds"] = time.perf_counter() - t0
    return out


def _sdg(data, family, crime, meta, perc) -> tuple[str, str]:
    if family in ("prevalence",) and crime in meta and meta[crime][2]:
        return "16.1.3", ("physical and sexual violence as measured by this survey's crime types; the global "
                          "indicator also covers psychological violence")
    if family in ("reporting_rate", "reporting_rate_victims") and crime in meta and meta[crime][2]:
        unit = "victimizations" if family == "reporting_rate" else "victims"
        return "16.3.1", (f"counted over {unit}; reports to the police only" if family == "reporting_rate"
                          else "reports to the police only")
    if family == "feeling_safe" and crime in perc:
        item = perc[crime]
        return item.sdg or "16.1.4", ""
    return "", ""


def perception_by_victimization(data: SurveyData, crime_types=None, publication=None,
                                **publication_params) -> pd.DataFrame:
    """Perception indicators (feeling safe, worry, Likert items) among the victims and the
    non-victims of each crime type or group, on the full design (victim status as the domain).

    The indicator table's columns (:data:`TABLE_COLUMNS`, intervals and publication rule as
    there): ``domain`` is ``victim__<crime>``, ``domain_value`` "victims" or "non-victims".
    crime_types: default the spec's groups (its types when it has none).
    """
    t0 = time.perf_counter()
    spec = data.spec
    if spec.victimization is None or not spec.perception:
        raise IndicatorError("perceptions by victimization need the spec's victimization and perception sections")
    known = data.crime_types + data.crime_groups
    crimes = list(crime_types) if crime_types is not None else (list(data.crime_groups) or list(data.crime_types))
    bad = [c for c in crimes if c not in known]
    if bad:
        raise IndicatorError(f"unknown crime type(s) or group(s): {', '.join(bad)} (known: {', '.join(known)})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SurveyWarning)
        rows = _perception(data, list(spec.perception), [f"victim__{c}" for c in crimes])
    return _finish(data, rows, [], spec, publication, publication_params, t0,
                   sorted({str(w.message) for w in caught}))


# ---------------------------------------------------------------------------------------------
# change and comparison
# ---------------------------------------------------------------------------------------------
COMPARISON_COLUMNS = ["indicator", "crime_type", "domain", "a", "b", "estimate_a", "estimate_b", "difference",
                      "se", "statistic", "df", "p_value", "ci_low", "ci_high", "significant", "method"]


def estimate(data: SurveyData, indicator: str, crime: str, by: str | None = None) -> pd.DataFrame:
    """One indicator for one crime type (or perception item) by one domain, as the engine's
    result (with ``attrs["vcov"]``, on the indicator's scale) — the building block of domain
    comparisons."""
    num, den = estimate_columns(indicator, crime)
    design = data.design() if den is None and num.startswith("perc__") else data.design(data.unit_of(crime))
    res = design.mean(num, by=by) if den is None else design.ratio(num, den, by=by)
    return on_indicator_scale(res, indicator)


def estimate_columns(indicator: str, crime: str) -> tuple[str, str | None]:
    """The derived columns of one indicator of :func:`estimate`: (numerator, denominator or
    None for a mean); a perception item's mean is over the design file's unit."""
    if indicator not in INDICATORS:
        raise IndicatorError(f"unknown indicator '{indicator}' (known: {', '.join(INDICATORS)})")
    if indicator in ("feeling_safe", "worry", "likelihood", "likert"):
        return f"perc__{crime}", None
    cols = {
        "prevalence": (f"victim__{crime}", None),
        "incidence": (f"n__{crime}", None),
        "concentration": (f"n__{crime}", f"victim__{crime}"),
        "repeat_victims": (f"rv__{crime}", f"victim__{crime}"),
        "repeat_incidents": (f"ri__{crime}", f"n__{crime}"),
        "multiple_victimization": (f"mv__{crime}", f"victim__{crime}"),
        "reporting_rate": (f"rep__{crime}", f"n__{crime}"),
        "dark_figure": (f"rep__{crime}", f"n__{crime}"),
        "reporting_rate_victims": (f"vrep__{crime}", f"victim__{crime}"),
    }
    if indicator not in cols:
        raise IndicatorError(f"indicator '{indicator}' has no domain comparison (a mean or ratio of the rows)")
    return cols[indicator]


def on_indicator_scale(res: pd.DataFrame, indicator: str) -> pd.DataFrame:
    """An engine result (mean or ratio, ``attrs["vcov"]``) on the indicator's scale (percent,
    per 1,000...; the dark figure as 100 minus the reporting rate), in place."""
    from .estimate import Covariance

    s = INDICATORS[indicator].scale
    v = np.asarray(res.attrs["vcov"]) * s * s
    for c in ("estimate", "se", "ci_low", "ci_high"):
        res[c] = res[c] * s
    if indicator == "dark_figure":
        res["estimate"], res["ci_low"], res["ci_high"] = 100 - res["estimate"], 100 - res["ci_high"], 100 - res["ci_low"]
    res.attrs["vcov"] = Covariance(v)
    return res


def domain_difference(data: SurveyData, indicator: str, crime: str, domain: str, a, b,
                      level: float = 0.95) -> pd.DataFrame:
    """Difference a - b between two categories of a domain of one survey, with the full
    covariance of the two domain estimates (t test on the design df)."""
    return difference_row(estimate(data, indicator, crime, by=domain), indicator, crime, domain, a, b, level)


def difference_row(res: pd.DataFrame, indicator: str, crime: str, domain: str, a, b,
                   level: float = 0.95) -> pd.DataFrame:
    """The row of :func:`domain_difference` (:data:`COMPARISON_COLUMNS`) from the estimate by
    ``domain`` (:func:`estimate`'s result, or the same streamed)."""
    from .contrast import difference

    labels = res[domain].astype(str).tolist()
    for x in (a, b):
        if str(x) not in labels:
            raise IndicatorError(f"domain '{domain}' has no category '{x}' (has {', '.join(labels)})")
    ia, ib = labels.index(str(a)), labels.index(str(b))
    d = difference(res, ia, ib, level=level).iloc[0]
    return pd.DataFrame([{
        "indicator": indicator, "crime_type": crime, "domain": domain, "a": str(a), "b": str(b),
        "estimate_a": res["estimate"].iloc[ia], "estimate_b": res["estimate"].iloc[ib],
        "difference": d["estimate"], "se": d["se"], "statistic": d["t"], "df": d["df"], "p_value": d["p_value"],
        "ci_low": d["ci_low"], "ci_high": d["ci_high"], "significant": bool(d["significant"]),
        "method": "domains of one survey: full covariance, t on design df",
    }], columns=COMPARISON_COLUMNS)


def compare_waves(before: pd.DataFrame, after: pd.DataFrame, level: float = 0.95, data_a: SurveyData | None = None,
                  data_b: SurveyData | None = None, samples: str = "auto") -> pd.DataFrame:
    """Change between two waves (indicator tables ``before`` and ``after``).

    Without the waves' microdata (``data_a``, ``data_b``), or when they share no PSU (same
    stratum and PSU codes) and no household (same key) -- independent samples --
    SE = sqrt(se1^2 + se2^2), z test.  When they overlap (a rotating panel), every indicator
    :func:`survey.change.wave_change` covers (prevalence, incidence, concentration, repeat
    shares, reporting rates, perception items) gets the SE of the stacked design, with the
    covariance carried by the shared PSUs (or households), t on its df; the few others keep the
    independent formula and say so.  ``method`` records which, row by row.

    ``samples``: ``auto`` (as above), ``independent`` (separate samples whose codes only happen to
    coincide: the independent formula whatever the codes, and ``method`` says it was declared) or
    ``overlapping`` (an error when the waves share no PSU and no household).

    Rows are matched on indicator, crime type, domain and domain value; suppressed cells give no
    comparison (NaN, not significant).
    """
    from scipy import stats

    keys = ["indicator", "crime_type", "domain", "domain_value"]
    m = before[keys + ["period", "estimate", "se", "suppressed"]].merge(
        after[keys + ["period", "estimate", "se", "suppressed"]], on=keys, suffixes=("_a", "_b"))
    diff = m["estimate_b"] - m["estimate_a"]
    se = np.sqrt(m["se_a"] ** 2 + m["se_b"] ** 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = diff / se
    p = 2 * stats.norm.sf(np.abs(z))
    q = stats.norm.ppf((1 + level) / 2)
    out = pd.DataFrame({
        "indicator": m["indicator"], "crime_type": m["crime_type"], "domain": m["domain"],
        "domain_value": m["domain_value"], "a": m["period_a"], "b": m["period_b"],
        "estimate_a": m["estimate_a"], "estimate_b": m["estimate_b"], "difference": diff, "se": se,
        "statistic": z, "df": np.inf, "p_value": p, "ci_low": diff - q * se, "ci_high": diff + q * se,
        "significant": (p < 1 - level) & ~(m["suppressed_a"] | m["suppressed_b"]),
        "method": "independent samples: SE = sqrt(se1^2 + se2^2), z test",
    })
    if data_a is None or data_b is None:
        return out
    from .change import overlap_method, sample_overlap

    if samples not in ("auto", "independent", "overlapping"):
        raise ValueError(f"compare_waves: samples must be auto, independent or overlapping, not {samples!r}")
    ov = sample_overlap(data_a, data_b)
    out["shared_psus"] = ov["shared_psus"] if ov["shared_psus"] is not None else 0
    out["shared_units"] = ov["shared_units"]
    if samples == "independent":
        out["method"] = ("independent samples (declared: compare.samples = independent): "
                         "SE = sqrt(se1^2 + se2^2), z test")
        return out
    if not ov["overlapping"]:
        if samples == "overlapping":
            raise SurveyError("compare.samples is 'overlapping' but the two waves share no PSU (same stratum and "
                              f"PSU codes) and no household key ({len(data_a.respondents)} and {len(data_b.respondents)} units)")
        return out
    if any(d.spec.design.replicate is not None for d in (data_a, data_b)):
        out["method"] = (f"{overlap_method(ov)}; replicate-weight designs: independent-samples formula "
                         "SE = sqrt(se1^2 + se2^2), z test (the covariance is left out: conservative when the "
                         "waves are positively correlated)")
        return out
    _overlapping_changes(out, m, data_a, data_b, level, overlap_method(ov))
    return out


def _overlapping_changes(out: pd.DataFrame, m: pd.DataFrame, a: SurveyData, b: SurveyData, level: float,
                         method: str) -> None:
    """Fill ``out`` (in place) with the stacked-design changes of :func:`survey.change.wave_change`
    wherever it covers the row and reproduces both tables' estimates (to 1e-6); the other rows
    keep the independent formula with a method that says why."""
    from .change import wave_change

    out["method"] = (f"{method}; this indicator is not on the stacked design: independent-samples formula "
                     "SE = sqrt(se1^2 + se2^2), z test (the covariance is left out)")
    missing = m["estimate_a"].isna() | m["estimate_b"].isna()
    out.loc[missing, "method"] = f"{method}; no estimate in both waves"
    done = pd.Series(False, index=out.index)
    cache: dict = {}  # the stacked design of each unit, built once
    for (ind, crime, dom), idx in out.groupby(["indicator", "crime_type", "domain"], sort=False).groups.items():
        try:
            wc = wave_change(a, b, ind, crime, domain=None if dom == "overall" else dom, level=level, _cache=cache)
        except (SurveyError, KeyError, ValueError):  # not on the stacked design (a crossed domain...)
            continue
        wc = wc.set_index(wc["domain_value"].astype(str))
        for i in idx:
            if missing.at[i]:
                continue
            dv = "all" if dom == "overall" else str(out.at[i, "domain_value"])
            if dv not in wc.index:
                continue
            r = wc.loc[dv]
            if not (np.isclose(r["estimate_a"], m.at[i, "estimate_a"], rtol=1e-6, atol=1e-9)
                    and np.isclose(r["estimate_b"], m.at[i, "estimate_b"], rtol=1e-6, atol=1e-9)):
                continue
            for c in ("se", "statistic", "df", "p_value", "ci_low", "ci_high"):
                out.at[i, c] = float(r[c])
            out.at[i, "difference"] = m.at[i, "estimate_b"] - m.at[i, "estimate_a"]
            out.at[i, "significant"] = bool(r["significant"]) and not (m.at[i, "suppressed_a"]
                                                                       or m.at[i, "suppressed_b"])
            out.at[i, "method"] = f"{method}: stacked design, t on its {r['df']:g} df"
            done.at[i] = True
    out.attrs["stacked_rows"] = int(done.sum())


def trend_table(tables: list[pd.DataFrame], level: float = 0.95, data: list | None = None,
                changes: list[pd.DataFrame] | None = None) -> pd.DataFrame:
    """Estimates across waves (one column per period) with the change from each wave to the next
    and whether it is significant; never judged by overlapping intervals.  ``data``: the waves'
    microdata, in the same order (overlapping waves are then compared on the stacked design,
    as :func:`compare_waves`); ``changes``: the :func:`compare_waves` results of the successive
    pairs when already computed (not recomputed)."""
    if len(tables) < 2:
        raise IndicatorError("a trend table needs at least two waves")
    keys = ["indicator", "crime_type", "domain", "domain_value"]
    wide = None
    for t in tables:
        period = str(t["period"].iloc[0])
        part = t[keys + ["estimate"]].rename(columns={"estimate": period})
        wide = part if wide is None else wide.merge(part, on=keys, how="outer")
    data = data if data is not None else [None] * len(tables)
    for k, ((a, b), (da, db)) in enumerate(zip(zip(tables[:-1], tables[1:]), zip(data[:-1], data[1:]))):
        c = changes[k] if changes is not None else compare_waves(a, b, level, data_a=da, data_b=db)
        pa, pb = str(a["period"].iloc[0]), str(b["period"].iloc[0])
        c = c[keys + ["difference", "p_value", "significant"]].rename(columns={
            "difference": f"change {pa}-{pb}", "p_value": f"p {pa}-{pb}", "significant": f"significant {pa}-{pb}"})
        wide = wide.merge(c, on=keys, how="left")
    return wide
