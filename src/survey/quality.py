"""Reliability flags and publication (disclosure) rules for the indicator table.

Presets, each a plain function in :data:`RULES` (configurable through its parameters):

- ``bjs`` (NCVS): flag "interpret with caution" when an estimate rests on ``min_cases`` (10)
  or fewer sample cases or its CV exceeds ``max_cv`` (50%);
- ``ons``: suppress when the unweighted base is below ``min_base`` (50);
- ``cv_bands`` (INEGI and others): reliability high / moderate / low by CV thresholds
  (``cv_bands``, default 15% and 30%), suppress above the last band when ``suppress_low``;
- ``none``: reliability from the CV bands, nothing suppressed.

Whatever the rule, a cell without sample cases is rated "no sample cases", and a cell at its
bound with SE 0 (0% or 100% of a share, a rate or concentration at its floor, a Gini of 0),
which the indicator table gives no interval, is never rated high or reliable ("not estimable",
or "interpret with caution" under ``bjs``) and says why in ``flag_reason``.

Every rule also protects suppressed cells: within one partition (same indicator, crime type
and domain variable), when a single cell is suppressed and the other cells plus the overall
value would give it back (rates times weighted bases), the next smallest cell is suppressed too
("secondary").  Suppressed cells keep their reason and lose every statistic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .errors import SurveyError

STAT_COLUMNS = ["estimate", "se", "ci_low", "ci_high", "cv", "deff"]
BOUND_REASON = "estimate at its bound with SE 0: no interval"
NOT_ESTIMABLE = "not estimable: no finite estimate"


class PublicationError(SurveyError, ValueError):
    """Unknown preset or bad parameters."""


def _cv_band(cv: pd.Series, bands) -> pd.Series:
    lo, hi = bands
    out = np.where(cv.isna(), "not estimable",
                   np.where(cv * 100 <= lo, "high", np.where(cv * 100 <= hi, "moderate", "low")))
    return pd.Series(out, index=cv.index)


def bjs(table: pd.DataFrame, min_cases: int = 10, max_cv: float = 50.0, **_) -> pd.DataFrame:
    t = table.copy()
    few = t["n_cases"] <= min_cases
    noisy = t["cv"] * 100 > max_cv
    t["reliability"] = np.where(few | noisy, "interpret with caution", "reliable")
    t["flag_reason"] = np.where(few, f"{min_cases} or fewer sample cases",
                                np.where(noisy, f"CV above {max_cv:g}%", ""))
    t["suppressed"] = False
    t["suppression_reason"] = ""
    return t


def ons(table: pd.DataFrame, min_base: int = 50, cv_bands=(15.0, 30.0), **_) -> pd.DataFrame:
    t = table.copy()
    small = t["n"] < min_base
    t["reliability"] = _cv_band(t["cv"], cv_bands)
    t["flag_reason"] = ""
    t["suppressed"] = small.to_numpy()
    t["suppression_reason"] = np.where(small, f"unweighted base below {min_base}", "")
    return t


def cv_bands(table: pd.DataFrame, cv_bands=(15.0, 30.0), suppress_low: bool = False, **_) -> pd.DataFrame:
    t = table.copy()
    t["reliability"] = _cv_band(t["cv"], cv_bands)
    t["flag_reason"] = np.where(t["reliability"] == "low", f"CV above {cv_bands[1]:g}%", "")
    sup = (t["reliability"] == "low") & suppress_low
    t["suppressed"] = sup.to_numpy()
    t["suppression_reason"] = np.where(sup, f"CV above {cv_bands[1]:g}%", "")
    return t


def none(table: pd.DataFrame, cv_bands=(15.0, 30.0), **_) -> pd.DataFrame:
    t = table.copy()
    t["reliability"] = _cv_band(t["cv"], cv_bands)
    t["flag_reason"] = ""
    t["suppressed"] = False
    t["suppression_reason"] = ""
    return t


RULES = {"bjs": bjs, "ons": ons, "cv_bands": cv_bands, "none": none}


CROSS = " × "
"""Joins the parts of a crossed domain's value ("Female × 16-24"; survey.ingest.CROSS)."""


def _lines(t: pd.DataFrame):
    """The partitions a published margin makes additive: each domain variable's cells (with the
    overall value); for a crossed domain also each row, column (and layer) of its table, whose
    margin is the part's own domain (sex x age: the age cells of one sex add up to that sex)."""
    keys = ["indicator", "crime_type", "domain"]
    cells = t[t["domain"] != "overall"]
    for _, grp in cells.groupby(keys, sort=False, dropna=False):
        yield grp
        values = grp["domain_value"].astype(str)
        if not values.str.contains(CROSS, regex=False).all():
            continue
        parts = values.str.split(CROSS, regex=False)
        k = parts.str.len().max()
        if (parts.str.len() != k).any():
            continue
        for j in range(k):
            rest = parts.map(lambda p, j=j: CROSS.join(p[:j] + p[j + 1:]))
            for _, line in grp.groupby(rest.to_numpy(), sort=False):
                if len(line) < len(grp):
                    yield line


def _secondary(t: pd.DataFrame) -> pd.DataFrame:
    """Suppress a second cell where one suppressed cell could be recovered from the others of a
    partition and its published margin (see :func:`_lines`), until no partition has exactly one
    withheld cell."""
    for _ in range(50):
        changed = False
        for grp in _lines(t):
            grp = t.loc[grp.index]
            sup = grp["suppressed"].to_numpy()
            if sup.sum() != 1 or len(grp) < 2:
                continue
            # the others (published) + the margin would give the suppressed cell back
            candidates = grp[~grp["suppressed"]].sort_values(["n", "weighted_base"])
            protected = grp[grp["suppressed"]]["domain_value"].iloc[0]
            victim = candidates.index[0]
            t.loc[victim, "suppressed"] = True
            t.loc[victim, "suppression_reason"] = f"secondary suppression (protects {protected})"
            changed = True
        if not changed:
            break
    return t


def apply_rule(table: pd.DataFrame, preset: str = "none", **params) -> pd.DataFrame:
    """Reliability, flags and suppression for an indicator table (see the module docstring)."""
    if preset not in RULES:
        raise PublicationError(f"publication preset must be one of {', '.join(RULES)}, not '{preset}'")
    params = {k: v for k, v in params.items() if v is not None}
    t = RULES[preset](table, **params)
    # a cell with no sample case has no sampling variance to show (and no interval): say so
    # whatever the rule
    none_seen = (t["n_cases"] == 0).to_numpy()
    t.loc[none_seen, "reliability"] = "no sample cases"
    t.loc[none_seen & (t["flag_reason"] == ""), "flag_reason"] = "no sample case: the SE of 0 is not a measure of precision"
    # nor does a cell at its bound with SE 0 (every victim a repeat victim, every victimization
    # reported, every victim once): no interval, never rated as precise
    bound = (~none_seen & (t["se"] == 0) & t["estimate"].notna() & t["ci_low"].isna()).to_numpy()
    if bound.any():
        t.loc[bound, "reliability"] = t.loc[bound, "reliability"].replace(
            {"reliable": "interpret with caution", "high": "not estimable", "moderate": "not estimable",
             "low": "not estimable"})
        t.loc[bound & (t["flag_reason"] == ""), "flag_reason"] = BOUND_REASON
    # an estimate that is not a finite number (a Gini of a cell without victims, a ratio with a
    # zero denominator) is never published as a value: withheld, whatever the rule
    est = pd.to_numeric(t["estimate"], errors="coerce").to_numpy(dtype=float)
    invalid = ~np.isfinite(est) & ~t["suppressed"].to_numpy(dtype=bool)
    if invalid.any():
        t.loc[invalid, "suppressed"] = True
        t.loc[invalid, "suppression_reason"] = NOT_ESTIMABLE
        t.loc[invalid, "reliability"] = "not estimable"
    t = _secondary(t)
    sup = t["suppressed"].to_numpy(dtype=bool)
    for c in STAT_COLUMNS:
        if c in t.columns:
            t.loc[sup, c] = np.nan
    t.attrs["publication_rule"] = {"preset": preset, **params}
    return t
