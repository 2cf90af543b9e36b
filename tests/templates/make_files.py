"""Synthetic SPSS files shaped like a CSEW-style and an ICVS/LACSI-style survey, for the spec
templates in ``specs/templates/`` (tests/test_templates.py).

Deterministic (numpy ``default_rng`` with a fixed seed; the same seed gives the same data) and
small (a few hundred respondents).  The data are invented: only the *shape* follows the surveys
(one adult respondent per household, design variables, respondent-level victimization items,
perception items, labelled codes, SPSS user-missing codes and skip patterns).

    python tests/templates/make_files.py OUTDIR        # writes csew-style.sav and icvs-style.sav

The tests do not commit these files: they call :func:`make_csew` / :func:`make_icvs` into
pytest's ``tmp_path`` and copy the template next to them (the templates point at
``csew-style.sav`` / ``icvs-style.sav`` in the spec's own folder).

Both functions return the data as written, *before* SPSS user-missing codes are set to NaN by
the reader (so the tests can compute every figure by hand from the original codes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

CSEW_SEED = 20190101
ICVS_SEED = 16104

# ---------------------------------------------------------------------------------------------
# CSEW-style: one adult per household; victim-form counts summed per crime type on the record
# ---------------------------------------------------------------------------------------------
CSEW_FILE = "csew-style.sav"
TOO_MANY = 97  # "too many to remember"
REFUSED = 99  # declared SPSS user-missing on the count items: read as NaN
CSEW_COUNTS = {  # variable: (crime type, share of victims, share of heavy repeat victims)
    "nburg": ("burglary", 0.16, 0.04),
    "ntfv": ("theft_from_vehicle", 0.14, 0.03),
    "ndamage": ("criminal_damage", 0.15, 0.04),
    "nassault": ("assault", 0.13, 0.05),
    "nrobbery": ("robbery", 0.06, 0.0),
}
COUNT_LABELS = {0: "None", TOO_MANY: "Too many to remember", REFUSED: "Refused"}
SAFE_LABELS = {1: "Very safe", 2: "Fairly safe", 3: "A bit unsafe", 4: "Very unsafe", 9: "Don't know"}
WORRY_LABELS = {1: "Very worried", 2: "Fairly worried", 3: "Not very worried", 4: "Not at all worried",
                9: "Don't know"}


def _repeat_counts(rng, n: int, p_victim: float, p_heavy: float) -> np.ndarray:
    """0 for non-victims; 1, 2, 3... (geometric) for victims, a heavy tail of repeat victims
    (8-40 incidents) and some 'too many to remember'."""
    victim = rng.random(n) < p_victim
    k = rng.geometric(0.55, n).astype(float)
    heavy = rng.random(n) < p_heavy
    k = np.where(heavy, rng.integers(8, 41, n), k)
    too_many = rng.random(n) < 0.05
    k = np.where(too_many, TOO_MANY, k)
    return np.where(victim, k, 0.0)


def csew_frame(n: int = 600, seed: int = CSEW_SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_strata, n_psu = 8, 5
    per_stratum = n // n_strata
    n = per_stratum * n_strata
    idx = np.arange(n)
    strata = idx // per_stratum + 1
    psu = (idx % per_stratum) // (per_stratum // n_psu) + 1
    psu = np.minimum(psu, n_psu)
    df = pd.DataFrame({
        "serial": (100000 + idx).astype(float),
        "stratum": strata.astype(float),
        "pointno": psu.astype(float),  # sampling point, numbered within stratum
        "region": ((strata + 1) // 2).astype(float),  # strata nested in 4 regions
    })
    df["sex"] = rng.choice([1.0, 2.0], n, p=[0.48, 0.52])
    age = rng.integers(16, 96, n).astype(float)
    age[rng.choice(n, 3, replace=False)] = np.nan  # age refused: system-missing
    df["age"] = age
    df["tenure"] = rng.choice([1.0, 2.0, 3.0, 4.0], n, p=[0.33, 0.30, 0.17, 0.20])
    nadults = rng.choice([1, 2, 3], n, p=[0.35, 0.50, 0.15])
    hh = np.round(1000 * rng.uniform(0.5, 1.5, n) * (1 + 0.15 * strata), 3)
    df["hhdwgt"] = hh  # household weight
    df["indivwgt"] = np.round(hh * nadults, 3)  # adult weight: household weight x adults
    for var, (_, p, heavy) in CSEW_COUNTS.items():
        df[var] = _repeat_counts(rng, n, p, heavy)
    for var in ("nburg", "nassault"):  # two refusals each
        df.loc[rng.choice(np.flatnonzero(df[var] == 0), 2, replace=False), var] = REFUSED
    # asked of everyone, including those who never walk alone after dark ("how safe would you feel")
    df["walkdark"] = rng.choice([1.0, 2.0, 3.0, 4.0, 9.0], n, p=[0.33, 0.40, 0.15, 0.08, 0.04])
    df["nevwalk"] = rng.choice([1.0, 2.0], n, p=[0.12, 0.88])
    df["wburgl"] = rng.choice([1.0, 2.0, 3.0, 4.0, 9.0], n, p=[0.10, 0.30, 0.40, 0.18, 0.02])
    df["wattack"] = rng.choice([1.0, 2.0, 3.0, 4.0, 9.0], n, p=[0.08, 0.25, 0.42, 0.23, 0.02])
    return df


def make_csew(folder: str | Path, n: int = 600, seed: int = CSEW_SEED) -> pd.DataFrame:
    """Write ``csew-style.sav`` into ``folder``; return the data as written."""
    df = csew_frame(n, seed)
    labels = {
        "serial": "Household serial number", "stratum": "Sampling stratum",
        "pointno": "Sampling point (PSU) within stratum", "region": "Region", "sex": "Sex",
        "age": "Age of respondent", "tenure": "Tenure", "hhdwgt": "Household weight",
        "indivwgt": "Individual (adult) weight",
        "nburg": "Number of burglaries (victim forms), last 12 months",
        "ntfv": "Number of thefts from vehicles, last 12 months",
        "ndamage": "Number of incidents of criminal damage, last 12 months",
        "nassault": "Number of assaults, last 12 months",
        "nrobbery": "Number of robberies, last 12 months",
        "walkdark": "How safe do you feel (would you feel) walking alone in this area after dark?",
        "nevwalk": "Never walks alone after dark",
        "wburgl": "How worried: having your home broken into and something stolen",
        "wattack": "How worried: being physically attacked by strangers",
    }
    value_labels = {
        "region": {1: "North", 2: "Midlands", 3: "London", 4: "South"},
        "sex": {1: "Male", 2: "Female"},
        "tenure": {1: "Owns outright", 2: "Buying with mortgage", 3: "Social rented", 4: "Private rented"},
        "walkdark": SAFE_LABELS,
        "nevwalk": {1: "Never walks alone after dark", 2: "Walks alone after dark"},
        "wburgl": WORRY_LABELS,
        "wattack": WORRY_LABELS,
        **{v: COUNT_LABELS for v in CSEW_COUNTS},
    }
    pyreadstat.write_sav(df, Path(folder) / CSEW_FILE, file_label="Synthetic CSEW-style respondent file",
                         column_labels=labels, variable_value_labels=value_labels,
                         missing_ranges={v: [REFUSED] for v in CSEW_COUNTS})
    return df


# ---------------------------------------------------------------------------------------------
# ICVS/LACSI-style: 5-year screener, 12-month follow-up, how many times, reported to police
# ---------------------------------------------------------------------------------------------
ICVS_FILE = "icvs-style.sav"
DONT_KNOW_TIMES = 98
ICVS_CRIMES = {  # prefix: (crime type, 5-year prevalence, share in the last 12 months)
    "burg": ("burglary", 0.22, 0.40),
    "car": ("car_theft", 0.12, 0.35),
    "rob": ("robbery", 0.15, 0.45),
    "asl": ("assault", 0.18, 0.45),
}
YES_NO_DK = {1: "Yes", 2: "No", 8: "Don't know"}
ICVS_SAFE = {1: "Very safe", 2: "Fairly safe", 3: "A bit unsafe", 4: "Very unsafe",
             5: "Never goes out alone after dark", 9: "Don't know"}
ICVS_WOULD = {1: "Very safe", 2: "Fairly safe", 3: "A bit unsafe", 4: "Very unsafe", 9: "Don't know"}


def icvs_frame(n: int = 500, seed: int = ICVS_SEED, skipped: str = "sysmis") -> pd.DataFrame:
    """``skipped``: how items not asked (skip pattern) are coded: "sysmis" (system-missing, as
    SPSS deliveries usually have them) or "zero" (the count item holds 0 for respondents not
    asked; the other skipped items stay system-missing)."""
    if skipped not in ("sysmis", "zero"):
        raise ValueError("skipped must be 'sysmis' or 'zero'")
    rng = np.random.default_rng(seed)
    n_strata, per_stratum = 5, n // 5
    n = n_strata * per_stratum
    idx = np.arange(n)
    strata = idx // per_stratum + 1
    df = pd.DataFrame({
        "respid": (1 + idx).astype(float),
        "strat": strata.astype(float),
        "cluster": (strata * 100 + (idx % per_stratum) // 20 + 1).astype(float),  # unique PSU codes
        "region": np.select([strata == 1, strata <= 3], [1.0, 2.0], 3.0),
        "townsize": rng.choice([1.0, 2.0, 3.0, 4.0, 5.0], n, p=[0.2, 0.2, 0.15, 0.25, 0.2]),
        "sex": rng.choice([1.0, 2.0], n),
        "age": rng.integers(16, 91, n).astype(float),
    })
    nadults = rng.choice([1, 2, 3, 4], n, p=[0.3, 0.45, 0.17, 0.08])
    hh = np.round(rng.uniform(200, 900, n) * (1 + 0.2 * strata), 3)
    df["hhwgt"] = hh
    df["perwgt"] = np.round(hh * nadults, 3)
    nan = np.nan
    for pre, (_, p5, p12) in ICVS_CRIMES.items():
        five = rng.choice([1.0, 2.0, 8.0], n, p=[p5, 0.99 - p5, 0.01])
        twelve = np.where(five == 1, rng.choice([1.0, 2.0, 8.0], n, p=[p12, 0.98 - p12, 0.02]), nan)
        times = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, DONT_KNOW_TIMES], n,
                           p=[0.45, 0.2, 0.1, 0.06, 0.05, 0.03, 0.03, 0.08])
        times = np.where(twelve == 1, times, 0.0 if skipped == "zero" else nan)
        police = np.where(five == 1, rng.choice([1.0, 2.0, 8.0], n, p=[0.45, 0.5, 0.05]), nan)
        df[f"{pre}5"], df[f"{pre}12"], df[f"{pre}n"], df[f"{pre}pol"] = five, twelve, times, police
    df["safedark"] = rng.choice([1.0, 2.0, 3.0, 4.0, 5.0, 9.0], n, p=[0.2, 0.35, 0.2, 0.1, 0.12, 0.03])
    df["safewould"] = np.where(df["safedark"] == 5,
                               rng.choice([1.0, 2.0, 3.0, 4.0, 9.0], n, p=[0.1, 0.2, 0.3, 0.35, 0.05]), nan)
    df["worryburg"] = rng.choice([1.0, 2.0, 3.0, 4.0, 9.0], n, p=[0.22, 0.3, 0.28, 0.17, 0.03])
    df["likburg"] = rng.choice([1.0, 2.0, 3.0, 8.0], n, p=[0.12, 0.3, 0.5, 0.08])
    return df


def make_icvs(folder: str | Path, n: int = 500, seed: int = ICVS_SEED, skipped: str = "sysmis") -> pd.DataFrame:
    """Write ``icvs-style.sav`` into ``folder``; return the data as written."""
    df = icvs_frame(n, seed, skipped)
    names = {"burg": "burglary (someone got into your home without permission and stole or tried to steal)",
             "car": "theft of a car, van or truck belonging to the household",
             "rob": "robbery (someone stole something from you by force or threat)",
             "asl": "assault or threat (personally attacked or threatened)"}
    labels = {"respid": "Respondent id (one respondent per household)", "strat": "Stratum",
              "cluster": "Primary sampling unit", "region": "Region", "townsize": "Size of town",
              "sex": "Sex", "age": "Age", "hhwgt": "Household weight", "perwgt": "Person weight",
              "safedark": "How safe do you feel walking alone in your area after dark?",
              "safewould": "(Never goes out) How safe would you feel walking alone in your area after dark?",
              "worryburg": "How worried are you that your home will be broken into?",
              "likburg": "Chances that someone will try to break into your home in the next 12 months"}
    value_labels = {
        "region": {1: "Capital", 2: "North", 3: "South"},
        "townsize": {1: "Under 10,000", 2: "10,000-50,000", 3: "50,000-100,000", 4: "100,000-1 million",
                     5: "Over 1 million"},
        "sex": {1: "Male", 2: "Female"},
        "safedark": ICVS_SAFE, "safewould": ICVS_WOULD,
        "worryburg": WORRY_LABELS,
        "likburg": {1: "Very likely", 2: "Likely", 3: "Not very likely", 8: "Don't know"},
    }
    for pre, what in names.items():
        labels[f"{pre}5"] = f"In the past five years: {what}?"
        labels[f"{pre}12"] = "Did this happen in the last 12 months?"
        labels[f"{pre}n"] = "How many times in the last 12 months?"
        labels[f"{pre}pol"] = "(Last time) did you or anyone else report it to the police?"
        value_labels[f"{pre}5"] = value_labels[f"{pre}12"] = value_labels[f"{pre}pol"] = YES_NO_DK
        value_labels[f"{pre}n"] = {0: "Not asked / none", DONT_KNOW_TIMES: "Don't know"}
    pyreadstat.write_sav(df, Path(folder) / ICVS_FILE, file_label="Synthetic ICVS/LACSI-style respondent file",
                         column_labels=labels, variable_value_labels=value_labels)
    return df


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    out.mkdir(parents=True, exist_ok=True)
    make_csew(out)
    make_icvs(out)
    print(f"wrote {out / CSEW_FILE} and {out / ICVS_FILE}")
