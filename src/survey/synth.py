"""A synthetic national victimization survey with KNOWN TRUTH.

``survey synth --out DIR --households N --seed S`` builds a finite population, draws a stratified
two-stage cluster sample from it and writes the sample as linked SPSS files, together with the
population values of the indicators (the truth) that estimates and intervals should cover.

Population (:func:`make_population`)
    8 regions x urban/rural = 16 strata; areas (the PSUs) with sizes in households and an area
    deprivation score; households (tenure, cars, adults, children) and every adult aged 16+
    (age, sex).  Victimization in the 12-month reference period is a gamma-Poisson (negative
    binomial) risk model: the log-rate of each crime type is linear in age, sex, tenure, area
    deprivation, urban and prior-year victimization; a shared frailty per household and per
    person (gamma, mean 1) and a type-specific frailty with a small shape make counts
    overdispersed, so a small share of victims suffer most incidents and victims of one type
    are more often victims of another.  Household types are counted per household, personal
    types per adult (at most MAX_COUNT = 30 of one type in the year).  Every incident has a crime code, a
    reported-to-police code and a month.
    Perceptions (feeling safe after dark, worry about burglary and about violence) are ordered
    logits of sex, age, deprivation and victimization in the period.

Incidents outside the reference period
    The incident file also holds incidents a respondent places outside the 12 months: month 0
    (before the period: about 8% of prior-year victims telescope one incident in) and month 13
    (after the period, in the interview month: about 1% of in-period incidents have a later
    twin).  Code 99 ("insufficient information to code") is a person incident of no type.  None
    of these is in the truth; a spec excludes them with ``month < 1 or month > 12`` and
    ``ignore_codes: [99]``.

Sample (:func:`draw_sample`)
    Stage 1: in each stratum, systematic PPS of areas on their size in households, the areas
    ordered by deprivation (implicit stratification); areas whose probability would exceed 1
    are taken with certainty.  PSUs are allocated to strata in proportion to households.
    Stage 2: SRS of ``households_per_psu`` households per area.  Design weights are the exact
    inverse inclusion probabilities (the design is self-weighting within a stratum).  Households
    respond with a probability that depends on region, urban and tenure; the weights are adjusted
    within classes stratum x tenure (tenure is recorded for every issued address, by interviewer
    observation; thin classes are collapsed within the stratum).  One adult is selected at random
    per responding household: person weight = household weight x number of adults.  Replicate
    weights (JKn, grouped when there are many PSUs, or Rao-Wu bootstrap) redo the non-response
    adjustment in every replicate.

Streaming (:func:`synth_streamed` and :func:`synth_screener_streamed`, what ``survey synth`` runs)
    The population is never held whole: the area frame is built first (sizes, deprivation,
    quintiles: one row per PSU), both stages of selection are drawn on it (households are stored
    by area, so a sampled household is a position), and only then are the households, adults
    and incidents generated, CHUNK_HOUSEHOLDS (250,000) households of consecutive areas at a
    time; each chunk gives up its sampled households (with their adults and incidents; for the
    screener variant also their 5-year status and screener values) and adds its totals per
    domain cell (units, victims, incidents, reported, answers, 5-year victims...) to the truth,
    and is dropped.  Memory is the sample plus one chunk; time is linear in the population.
    Every argument, the output folder, and the population's size against the sample are checked
    before any household exists.  :func:`make_population` concatenates the same chunks, and the
    in-memory API (:func:`draw_sample`, :func:`draw_screener_sample`) walks a population built
    whole chunk by chunk through the same code (:func:`_walk`), so it gives exactly the streamed
    sample; :func:`truth_table` and :func:`screener_truth` on it give the streamed truth (the
    same counts; capped reported incidents summed in another order, equal to about 1e-15).
    The first chunk goes on with the frame's random stream and chunk k > 0 has its own stream;
    the type of a telescoped incident is drawn with the chunk's mean rates, and so is the
    screener's 5-year status (chunk 0 from the screener's stream, chunk k > 0 from its own).
    A population of at most 250,000 households is therefore the one generated whole before
    streaming existed (the same files, byte for byte, for both variants); a larger one is a
    different draw of the same model and design.

Files (:func:`write_sample`, :func:`write_truth`)
    ``households.sav`` (every issued household, ``resp`` 1/2), ``persons.sav`` (one respondent
    per responding household), ``incidents.sav`` (incidents of those respondents and of their
    households; a household crime carries the pid of the household's respondent), with variable
    and value labels; ``truth.csv`` (long table) and ``truth.json``
    (seed, sizes, coefficients, definitions); ``replicates.csv`` when replicate weights are
    written.  The ``.sav`` header timestamp is fixed so that a seed gives byte-identical files.

Screener variant (``--variant screener``, :func:`synth_screener`)
    The survey most national offices run instead of the NCVS: the same population and design,
    but one file, ``respondents.sav``, one respondent per responding household, answering for
    the household (burglary, vehicle theft: household weight) and for themselves (assault,
    robbery, perceptions: person weight).  Per crime type: a 12-month and a 5-year screener
    (1 yes, 2 no, 7 refused, 8 don't know, 9 no answer; 7-9 declared SPSS user-missing), "how
    many times" (97 = too many to remember, only for 10+ true victimizations; the spec caps at
    10) and "reported to the police" for 12-month victims.  Non-answers are drawn at random
    whatever the true answer (missing completely at random), so the truth is estimable with
    them left out of the base.  Feeling safe after dark has a "never goes out" code (5) with a
    follow-up ``safewould``.  The region item carries value labels for 30 regions, 8 present.
    ``--no-design`` leaves out strata and PSU (weights only).  ``truth.csv`` holds every
    indicator of :func:`truth_table` for the four types and two groups (counts capped at 10)
    and the 5-year prevalence (``<type>_5y``).  The 5-year status of a unit is its 12-month
    status or a draw for the EARLIER_YEARS before, at the chunk's mean 12-month count of the
    type times the unit's frailty (see Streaming); it is streamed like the main variant.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._atomic import check_target, is_ours, recover, replace_dir
from .errors import SurveyError

__all__ = [
    "CrimeType", "CRIME_TYPES", "GROUPS", "Population", "Sample", "make_population", "draw_sample",
    "truth_table", "write_sample", "write_truth", "synth", "synth_streamed", "main",
    "ScreenerSample", "draw_screener_sample", "screener_truth", "synth_screener", "synth_screener_streamed",
    "screener_victims_5y", "SCREENER_TYPES",
    "SCREENER_GROUPS",
]

# =============================================================================================
# Codes and labels
# =============================================================================================
REGIONS = {1: "North", 2: "North West", 3: "North East", 4: "Central", 5: "East", 6: "Capital",
           7: "South East", 8: "South West"}
REGION_SHARE = np.array([0.09, 0.13, 0.10, 0.16, 0.11, 0.15, 0.15, 0.11])
URBAN_SHARE = np.array([0.70, 0.85, 0.78, 0.80, 0.62, 0.97, 0.74, 0.58])
REGION_DEPRIVATION = np.array([0.30, 0.25, 0.35, 0.10, -0.25, 0.15, -0.45, -0.20])
REGION_RESPONSE = np.array([0.10, 0.0, 0.10, 0.0, 0.05, -0.45, -0.10, 0.10])

URBAN = {1: "Urban", 2: "Rural"}
TENURE = {1: "Owner", 2: "Social renter", 3: "Private renter"}
SEX = {1: "Male", 2: "Female"}
CARS = {0: "None", 1: "One", 2: "Two or more"}
RESP = {1: "Responded", 2: "Non-response"}
DEPRIVATION_Q = {1: "1 Least deprived", 2: "2", 3: "3", 4: "4", 5: "5 Most deprived"}
YES_NO = {1: "Yes", 2: "No", 8: "Don't know", 9: "Refused"}
SAFE = {1: "Very safe", 2: "Fairly safe", 3: "A bit unsafe", 4: "Very unsafe", 8: "Don't know", 9: "Refused"}
WORRY = {1: "Very worried", 2: "Fairly worried", 3: "Not very worried", 4: "Not at all worried",
         8: "Don't know", 9: "Refused"}
MONTH = {0: "Before the reference period", **{m: f"Month {m}" for m in range(1, 13)},
         13: "After the reference period (interview month)"}
AGE_BANDS = (16, 25, 35, 45, 55, 65, 75)
AGE_BAND_LABELS = ("16-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+")
MAX_AGE = 95
MAX_COUNT = 30  # most incidents of one type a unit can suffer in the period (a survey's top code)

UNCODEABLE = 99  # an incident with too little information to code: counted in no type
UNCODEABLE_LABEL = "Insufficient information to code"
UNCODEABLE_RATE = 0.003  # per adult and year
TELESCOPE_BEFORE = 0.08  # share of prior-year victims who report one incident in month 0
TELESCOPE_AFTER = 0.01  # share of in-period incidents with a twin in month 13
POLICE_DONT_KNOW, POLICE_REFUSED = 0.02, 0.005
ITEM_DONT_KNOW, ITEM_REFUSED = 0.012, 0.004

COVARIATES = ("intercept", "age10", "male", "social_renter", "private_renter", "deprivation", "urban", "prior")


@dataclass(frozen=True)
class CrimeType:
    """One crime type of the survey: its codes and the risk model that generates it.

    ``codes``: (code, label, share of the type's incidents, probability reported to police).
    ``coef``: log-rate coefficients (see :data:`COVARIATES`; ``age10`` is (age - 45) / 10, of the
    household reference person for household types; ``prior`` is prior-year victimization).
    ``shape``: shape of the type-specific gamma frailty (mean 1): smaller = more repeats.
    """

    name: str
    label: str
    iccs: str
    unit: str  # household | person
    codes: tuple
    coef: dict
    shape: float
    violent: bool = False
    exposure: str | None = None  # household column that multiplies the rate (vehicles)

    def coefficients(self) -> dict:
        return {k: float(self.coef.get(k, 0.0)) for k in COVARIATES}


def _c(**kw) -> dict:
    return kw


CRIME_TYPES: tuple[CrimeType, ...] = (
    CrimeType("burglary", "Domestic burglary", "0501", "household",
              ((11, "Burglary with entry", 0.6, 0.78), (12, "Attempted burglary", 0.4, 0.45)),
              _c(intercept=-4.47, age10=-0.08, social_renter=0.45, private_renter=0.35, deprivation=0.35,
                 urban=0.30, prior=0.8), shape=0.3),
    CrimeType("vehicle_theft", "Theft of or from a vehicle", "05021", "household",
              ((21, "Theft of a vehicle", 0.2, 0.92), (22, "Theft from a vehicle", 0.8, 0.40)),
              _c(intercept=-4.0, age10=-0.10, social_renter=0.10, private_renter=0.20, deprivation=0.30,
                 urban=0.40, prior=0.6), shape=0.4, exposure="vehicles"),
    CrimeType("other_household_theft", "Other household theft", "050229", "household",
              ((31, "Other household theft", 1.0, 0.25),),
              _c(intercept=-4.16, age10=-0.05, social_renter=0.20, private_renter=0.25, deprivation=0.20,
                 urban=0.15, prior=0.6), shape=0.3),
    CrimeType("vandalism", "Criminal damage", "0504", "household",
              ((41, "Vandalism to a vehicle", 0.55, 0.25), (42, "Vandalism to the home", 0.45, 0.35)),
              _c(intercept=-3.47, age10=-0.05, social_renter=0.35, private_renter=0.10, deprivation=0.35,
                 urban=0.20, prior=0.7), shape=0.2),
    CrimeType("assault", "Assault", "02011", "person",
              ((51, "Assault with injury", 0.45, 0.55), (52, "Assault without injury", 0.55, 0.35)),
              _c(intercept=-4.58, age10=-0.35, male=0.65, social_renter=0.40, private_renter=0.30,
                 deprivation=0.35, urban=0.20, prior=0.9), shape=0.2, violent=True),
    CrimeType("threats", "Threats of violence", "02012", "person",
              ((53, "Threats of violence", 1.0, 0.25),),
              _c(intercept=-4.45, age10=-0.20, male=0.20, social_renter=0.30, private_renter=0.20,
                 deprivation=0.25, urban=0.15, prior=0.8), shape=0.2),
    CrimeType("robbery", "Robbery", "0401", "person",
              ((61, "Robbery", 1.0, 0.55),),
              _c(intercept=-7.10, age10=-0.35, male=0.50, social_renter=0.30, private_renter=0.30,
                 deprivation=0.35, urban=0.80, prior=0.7), shape=0.5, violent=True),
    CrimeType("personal_theft", "Theft from the person", "050221", "person",
              ((62, "Theft from the person", 1.0, 0.30),),
              _c(intercept=-5.42, age10=-0.15, male=-0.10, private_renter=0.20, deprivation=0.10,
                 urban=0.70, prior=0.5), shape=0.6),
    CrimeType("sexual_violence", "Sexual violence", "0301", "person",
              ((71, "Sexual assault", 0.7, 0.15), (72, "Rape or attempted rape", 0.3, 0.20)),
              _c(intercept=-4.85, age10=-0.45, male=-2.0, social_renter=0.30, private_renter=0.30,
                 deprivation=0.20, urban=0.10, prior=0.9), shape=0.2, violent=True),
    CrimeType("fraud", "Fraud", "0701", "person",
              ((81, "Fraud", 1.0, 0.12),),
              _c(intercept=-3.18, age10=0.0, male=0.10, deprivation=-0.10, urban=0.10, prior=0.5), shape=0.3),
)
GROUPS: dict[str, tuple[str, ...]] = {
    "household": tuple(t.name for t in CRIME_TYPES if t.unit == "household"),
    "personal": tuple(t.name for t in CRIME_TYPES if t.unit == "person"),
    "violent": tuple(t.name for t in CRIME_TYPES if t.violent),
}
CRIME_CODES = {code: label for t in CRIME_TYPES for code, label, _, _ in t.codes} | {UNCODEABLE: UNCODEABLE_LABEL}
HOUSEHOLD_FRAILTY_SHAPE = 0.3  # shared by the household's crimes and (times the person frailty) its adults
PERSON_FRAILTY_SHAPE = 0.5

# perception: latent ordered logits (higher = less safe / more worried), thresholds give 4 codes
PERCEPTION = {
    "safedark": dict(coef=dict(female=0.95, age10=0.15, deprivation=0.35, urban=0.35, violent_victim=0.9,
                               personal_victim=0.3, household_victim=0.4, prior=0.3),
                     cuts=(-0.1, 2.0, 3.2)),
    "worryburg": dict(coef=dict(female=0.25, age10=0.05, deprivation=0.30, urban=0.20, burglary_victim=1.3,
                                household_victim=0.4, social_renter=0.2, private_renter=0.1, prior=0.3),
                      cuts=(-0.55, 1.35, 3.05)),
    "worryviol": dict(coef=dict(female=0.55, age10=-0.05, deprivation=0.35, urban=0.30, violent_victim=1.2,
                                personal_victim=0.3, prior=0.3),
                      cuts=(-0.25, 1.65, 3.25)),
}
RESPONSE_COEF = dict(intercept=1.25, urban=-0.35, social_renter=-0.15, private_renter=-0.55)

_SALT_POPULATION = 0x5E1F0001
_SALT_SAMPLE = 0x5E1F0002
FIXED_SAV_DATE = (b"01 Jan 25", b"00:00:00")  # header timestamp written into every .sav


# =============================================================================================
# Data classes
# =============================================================================================
@dataclass
class Population:
    """A finite population.

    areas        one row per area (PSU): psu, stratum, region, urban, households, deprivation
                 (score, mean 0 and sd 1 over households), depriv_q (household-weighted quintile)
    households   hhid (1..N, stored by area), psu, stratum, region, urban, deprivation, depriv_q,
                 tenure, nadults, nchild, hhsize, cars, prior (household crime in the year before),
                 frailty (the shared gamma frailty)
    persons      every adult 16+ (children are only counted in nchild): hhid, pid (1..nadults),
                 sex, age, prevvict, safedark, worryburg, worryviol, prior, frailty
    incidents    every incident, in or outside the reference period: incid, hhid, pid (0 for a
                 household crime), crimecode, month (0-13), police, crime_type, unit, in_period
                 (months 1-12 and a crime type: what the truth counts)
    coefficients the risk model of each crime type (see :data:`COVARIATES`)
    counts       crime type -> in-period victimizations per household or per adult
    info         seed, sizes and parameters
    """

    areas: pd.DataFrame
    households: pd.DataFrame
    persons: pd.DataFrame
    incidents: pd.DataFrame
    coefficients: pd.DataFrame
    counts: dict = field(repr=False)  # name -> in-period count per unit (households or persons)
    info: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"Population(seed={self.info.get('seed')}, households={len(self.households)}, "
                f"persons={len(self.persons)}, areas={len(self.areas)}, incidents={len(self.incidents)})")


@dataclass
class Sample:
    """A sample: ``households`` (every issued household, respondents and non-respondents),
    ``persons`` (one selected adult per responding household), ``incidents`` (theirs) and
    ``info`` (design summary; replicate method, scale and rscales)."""

    households: pd.DataFrame
    persons: pd.DataFrame
    incidents: pd.DataFrame
    info: dict = field(default_factory=dict)
    replicates: pd.DataFrame | None = None

    def __repr__(self) -> str:
        rep = self.info.get("replicate")
        return (f"Sample(seed={self.info.get('seed')}, households={len(self.households)}, "
                f"respondents={len(self.persons)}, incidents={len(self.incidents)}, "
                f"replicates={rep['n_replicates'] if rep else 0})")


# =============================================================================================
# Helpers
# =============================================================================================
def _largest_remainder(total: int, shares: np.ndarray, minimum: int = 0) -> np.ndarray:
    """Integers proportional to ``shares`` summing to ``total`` (each at least ``minimum``)."""
    shares = np.asarray(shares, dtype=float)
    base = np.full(shares.size, minimum, dtype=np.int64)
    rest = total - base.sum()
    if rest < 0:
        raise SurveyError(f"cannot allocate {total} units to {shares.size} cells with at least {minimum} each")
    q = rest * shares / shares.sum()
    out = np.floor(q).astype(np.int64)
    left = int(rest - out.sum())
    if left:
        order = np.argsort(-(q - out), kind="stable")[:left]
        out[order] += 1
    return base + out


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _categorical(rng, probs: np.ndarray, n: int | None = None, u=None) -> np.ndarray:
    """Draws of 0..k-1 with probabilities ``probs`` (a vector, or one row per draw)."""
    probs = np.asarray(probs, dtype=float)
    if u is None:
        u = rng.random(n if probs.ndim == 1 else probs.shape[0])
    if probs.ndim == 1:
        return np.searchsorted(np.cumsum(probs) / probs.sum(), u, side="right")
    cum = np.cumsum(probs, axis=1)
    cum /= cum[:, -1:]
    return (u[:, None] >= cum[:, :-1]).sum(axis=1)


def _gamma1(rng, shape: float, n: int) -> np.ndarray:
    """Gamma frailty with mean 1 and variance 1/shape."""
    return rng.gamma(shape, 1.0 / shape, n)


def _ordinal(rng, latent: np.ndarray, cuts, reverse: bool) -> np.ndarray:
    """Ordered logit codes 1..4 (``reverse``: code 1 is the highest latent) with 8/9 sprinkled in."""
    y = latent + rng.logistic(size=latent.size)
    k = (y[:, None] > np.asarray(cuts)[None, :]).sum(axis=1)
    code = (4 - k) if reverse else (1 + k)
    u = rng.random(latent.size)
    code = np.where(u < ITEM_DONT_KNOW, 8, np.where(u < ITEM_DONT_KNOW + ITEM_REFUSED, 9, code))
    return code.astype(np.int8)


def _age_band(age: np.ndarray) -> np.ndarray:
    """Index 0..6 of AGE_BANDS."""
    return np.searchsorted(np.asarray(AGE_BANDS), age, side="right") - 1


# =============================================================================================
# Population
# =============================================================================================
CHUNK_HOUSEHOLDS = 250_000  # households generated at a time (whole areas): memory is bounded by this


def _make_frame(seed: int, n_households: int, mean_area_size: float = 160.0,
                min_area_size: int = 60) -> tuple[pd.DataFrame, np.random.Generator]:
    """The area frame (one row per PSU) of a population of ``n_households``: cheap (no households),
    so that the sample can be selected, and argument errors found, before the households exist.
    Returns the frame and the random stream, which goes on with the first chunk of households."""
    n_households = int(n_households)
    if n_households < 2_000:
        raise SurveyError(f"population households must be at least 2,000, not {n_households}")
    rng = np.random.default_rng([_SALT_POPULATION, int(seed)])
    region = np.repeat(np.arange(1, 9), 2)
    urban = np.tile([1, 2], 8)
    share = REGION_SHARE[region - 1] * np.where(urban == 1, URBAN_SHARE[region - 1], 1 - URBAN_SHARE[region - 1])
    n_h = _largest_remainder(n_households, share, minimum=40)
    stratum = np.arange(1, 17)
    a_h = np.maximum(3, np.rint(n_h / mean_area_size).astype(np.int64))
    a_stratum = np.repeat(stratum, a_h)
    n_areas = a_stratum.size
    raw = (min_area_size + rng.gamma(4.0, (mean_area_size - min_area_size) / 4.0, n_areas))
    sizes = np.empty(n_areas, dtype=np.int64)
    start = np.concatenate([[0], np.cumsum(a_h)])
    for h in range(16):
        sl = slice(start[h], start[h + 1])
        s = _largest_remainder(int(n_h[h] - a_h[h]), raw[sl]) + 1  # at least one household
        sizes[sl] = s
    a_region = region[a_stratum - 1]
    a_urban = urban[a_stratum - 1]
    score = REGION_DEPRIVATION[a_region - 1] + 0.45 * (a_urban == 1) + rng.normal(0.0, 0.9, n_areas)
    w = sizes / sizes.sum()
    mu = float(np.sum(w * score))
    sd = float(np.sqrt(np.sum(w * (score - mu) ** 2)))
    score = (score - mu) / sd
    # household-weighted quintiles of the area score
    order = np.argsort(score, kind="stable")
    cum = np.cumsum(sizes[order]) / sizes.sum()
    q = np.empty(n_areas, dtype=np.int8)
    q[order] = np.minimum(5, 1 + np.floor((cum - sizes[order] / sizes.sum() / 2) * 5)).astype(np.int8)
    return pd.DataFrame({
        "psu": np.arange(1, n_areas + 1, dtype=np.int64), "stratum": a_stratum.astype(np.int16),
        "region": a_region.astype(np.int8), "urban": a_urban.astype(np.int8), "households": sizes,
        "deprivation": score, "depriv_q": q,
    }), rng


def _area_chunks(sizes: np.ndarray, chunk: int | None = None) -> list[tuple[int, int]]:
    """Consecutive area ranges [a0, a1) of at most ``chunk`` (default CHUNK_HOUSEHOLDS) households
    (at least one area each)."""
    chunk = CHUNK_HOUSEHOLDS if chunk is None else int(chunk)
    out, a0, n = [], 0, 0
    for a, s in enumerate(np.asarray(sizes, dtype=np.int64)):
        if n and n + s > chunk:
            out.append((a0, a))
            a0, n = a, 0
        n += int(s)
    out.append((a0, len(sizes)))
    return out


def _make_chunk(rng, areas: pd.DataFrame, a0: int, a1: int, hh_offset: int, inc_offset: int) -> Population:
    """The households, adults and incidents of areas ``a0 .. a1 - 1``, drawn from ``rng``: hhid
    ``hh_offset + 1 ..``, incid ``inc_offset + 1 ..``."""
    ar = areas.iloc[a0:a1]
    sizes = ar["households"].to_numpy()
    score = ar["deprivation"].to_numpy()
    a_urban = ar["urban"].to_numpy()
    a_region = ar["region"].to_numpy()
    n_areas = len(ar)
    # ----- households -------------------------------------------------------------------------
    N = int(sizes.sum())
    area_of = np.repeat(np.arange(n_areas), sizes)
    z = score[area_of]
    h_urban = (a_urban[area_of] == 1).astype(float)
    h_region = a_region[area_of]
    capital = (h_region == 6).astype(float)
    tenure_logit = np.column_stack([
        np.zeros(N),
        -1.75 + 0.85 * z + 0.25 * h_urban,
        -1.60 + 0.30 * z + 0.55 * h_urban + 0.5 * capital,
    ])
    p_ten = np.exp(tenure_logit)
    tenure = (_categorical(rng, p_ten) + 1).astype(np.int8)
    social = (tenure == 2).astype(float)
    private = (tenure == 3).astype(float)
    nadults = (_categorical(rng, np.array([0.31, 0.51, 0.12, 0.05, 0.01]), N) + 1).astype(np.int8)
    nchild = _categorical(rng, np.array([0.70, 0.13, 0.12, 0.04, 0.01]), N).astype(np.int8)
    p_nocar = _expit(-2.2 + 0.45 * z + 0.55 * h_urban + 0.9 * capital + 0.9 * social + 0.3 * private
                     + 0.6 * (nadults == 1))
    p_two = _expit(-0.2 - 0.5 * h_urban - 0.35 * z - 0.5 * social + 1.0 * (nadults >= 2))
    u = rng.random(N)
    cars = np.where(u < p_nocar, 0, np.where(rng.random(N) < p_two, 2, 1)).astype(np.int8)
    vehicles = np.where(cars == 2, 2.3, cars.astype(float))

    # ----- persons (adults 16+) --------------------------------------------------------------
    P = int(nadults.sum())
    hh_of = np.repeat(np.arange(N), nadults)
    first = np.concatenate([[0], np.cumsum(nadults)[:-1]])
    pid = (np.arange(P) - np.repeat(first, nadults) + 1).astype(np.int8)
    ages = np.arange(18, MAX_AGE + 1)
    wa = np.where(ages < 25, 0.55, np.where(ages < 70, 1.0, np.where(ages < 80, 0.8,
                                                                      np.where(ages < 90, 0.42, 0.08))))
    age1 = ages[_categorical(rng, wa, N)]
    age2 = np.clip(age1[hh_of] + np.rint(rng.normal(-1.0, 4.0, P)).astype(np.int64), 18, MAX_AGE)
    age3 = rng.integers(16, 35, P)
    age = np.where(pid == 1, age1[hh_of], np.where(pid == 2, age2, age3)).astype(np.int16)
    female1 = rng.random(N) < 0.5
    female = np.where(pid == 1, female1[hh_of],
                      np.where(pid == 2, np.where(rng.random(P) < 0.92, ~female1[hh_of], female1[hh_of]),
                               rng.random(P) < 0.5))
    sex = np.where(female, 2, 1).astype(np.int8)

    # ----- victimization ----------------------------------------------------------------------
    hh_x = {"intercept": np.ones(N), "age10": (age1 - 45) / 10.0, "male": (~female1).astype(float),
            "social_renter": social, "private_renter": private, "deprivation": z, "urban": h_urban}
    p_x = {"intercept": np.ones(P), "age10": (age - 45) / 10.0, "male": (~female).astype(float),
           "social_renter": social[hh_of], "private_renter": private[hh_of], "deprivation": z[hh_of],
           "urban": h_urban[hh_of]}
    frail_h = _gamma1(rng, HOUSEHOLD_FRAILTY_SHAPE, N)
    frail_p = frail_h[hh_of] * _gamma1(rng, PERSON_FRAILTY_SHAPE, P)

    def linpred(t: CrimeType, x: dict) -> np.ndarray:
        c = t.coefficients()
        eta = np.zeros(len(x["intercept"]))
        for k in COVARIATES:
            if k != "prior" and c[k]:
                eta += c[k] * x[k]
        return eta

    etas = {t.name: linpred(t, hh_x if t.unit == "household" else p_x) for t in CRIME_TYPES}
    # prior-year victimization: the same risks and shared frailty, without the type frailty
    lam_prior_h = frail_h * sum(np.exp(etas[t.name]) * (vehicles if t.exposure else 1.0)
                                for t in CRIME_TYPES if t.unit == "household")
    lam_prior_p = frail_p * sum(np.exp(etas[t.name]) for t in CRIME_TYPES if t.unit == "person")
    prior_h = rng.random(N) < -np.expm1(-lam_prior_h)
    prior_p = rng.random(P) < -np.expm1(-lam_prior_p)

    counts: dict[str, np.ndarray] = {}
    for t in CRIME_TYPES:
        hh = t.unit == "household"
        prior = prior_h if hh else prior_p
        rate = np.exp(etas[t.name] + t.coefficients()["prior"] * prior) * (frail_h if hh else frail_p)
        if t.exposure:
            rate = rate * vehicles
        rate *= _gamma1(rng, t.shape, rate.size)
        counts[t.name] = np.minimum(rng.poisson(rate), MAX_COUNT).astype(np.int32)

    # ----- incidents --------------------------------------------------------------------------
    hhid = np.arange(hh_offset + 1, hh_offset + N + 1, dtype=np.int64)
    pieces = []
    for ti, t in enumerate(CRIME_TYPES):
        c = counts[t.name]
        nz = np.flatnonzero(c)
        unit_idx = np.repeat(nz, c[nz])
        pieces.append((ti, t, unit_idx, rng.integers(1, 13, unit_idx.size)))
        twin = unit_idx[rng.random(unit_idx.size) < TELESCOPE_AFTER]
        pieces.append((ti, t, twin, np.full(twin.size, 13)))
    # telescoping: prior-year victims placing one incident inside the interview
    for unit, prior in (("household", prior_h), ("person", prior_p)):
        types = [(ti, t) for ti, t in enumerate(CRIME_TYPES) if t.unit == unit]
        who = np.flatnonzero(prior & (rng.random(prior.size) < TELESCOPE_BEFORE))
        mean_rate = np.array([np.exp(etas[t.name]).mean() for _, t in types])  # over the chunk
        pick = _categorical(rng, mean_rate, who.size)
        for k, (ti, t) in enumerate(types):
            sel = who[pick == k]
            pieces.append((ti, t, sel, np.zeros(sel.size, dtype=np.int64)))
    unc = rng.poisson(UNCODEABLE_RATE, P)
    nz = np.flatnonzero(unc)
    unc_idx = np.repeat(nz, unc[nz])
    pieces.append((len(CRIME_TYPES), None, unc_idx, rng.integers(1, 13, unc_idx.size)))

    cols = {k: [] for k in ("hhid", "pid", "type", "crimecode", "month", "police")}
    for ti, t, unit_idx, month in pieces:
        n = unit_idx.size
        if t is None or t.unit == "person":
            cols["hhid"].append(hhid[hh_of[unit_idx]])
            cols["pid"].append(pid[unit_idx].astype(np.int64))
        else:
            cols["hhid"].append(hhid[unit_idx])
            cols["pid"].append(np.zeros(n, dtype=np.int64))
        if t is None:
            code = np.full(n, UNCODEABLE)
            p_yes = np.full(n, 0.2)
        else:
            k = _categorical(rng, np.array([s for _, _, s, _ in t.codes]), n)
            code = np.array([cc for cc, _, _, _ in t.codes])[k]
            p_yes = np.array([p for _, _, _, p in t.codes])[k]
        u = rng.random(n)
        police = np.where(u < POLICE_DONT_KNOW, 8, np.where(u < POLICE_DONT_KNOW + POLICE_REFUSED, 9,
                                                            np.where(rng.random(n) < p_yes, 1, 2)))
        cols["type"].append(np.full(n, ti, dtype=np.int8))
        cols["crimecode"].append(code.astype(np.int16))
        cols["month"].append(np.asarray(month, dtype=np.int8))
        cols["police"].append(police.astype(np.int8))
    inc = pd.DataFrame({k: np.concatenate(v) for k, v in cols.items()})
    inc = inc.sort_values(["hhid", "pid", "month", "crimecode"], kind="stable", ignore_index=True)
    type_names = np.array([t.name for t in CRIME_TYPES] + [""], dtype=object)
    type_unit = np.array([t.unit for t in CRIME_TYPES] + ["person"], dtype=object)
    inc.insert(0, "incid", np.arange(inc_offset + 1, inc_offset + len(inc) + 1, dtype=np.int64))
    inc["crime_type"] = pd.Categorical.from_codes(inc["type"].to_numpy(), categories=list(type_names[:-1]) + ["uncodeable"])
    inc["unit"] = type_unit[inc["type"].to_numpy()]
    inc["in_period"] = inc["month"].between(1, 12).to_numpy() & (inc["crimecode"] != UNCODEABLE).to_numpy()
    inc = inc.drop(columns="type")

    # ----- perceptions --------------------------------------------------------------------------
    hh_victim = np.zeros(N, dtype=bool)
    for name in GROUPS["household"]:
        hh_victim |= counts[name] > 0
    per_victim = np.zeros(P, dtype=bool)
    for name in GROUPS["personal"]:
        per_victim |= counts[name] > 0
    vio_victim = np.zeros(P, dtype=bool)
    for name in GROUPS["violent"]:
        vio_victim |= counts[name] > 0
    px = {"female": female.astype(float), "age10": (age - 45) / 10.0, "deprivation": z[hh_of],
          "urban": h_urban[hh_of], "violent_victim": vio_victim.astype(float),
          "personal_victim": per_victim.astype(float), "household_victim": hh_victim[hh_of].astype(float),
          "burglary_victim": (counts["burglary"][hh_of] > 0).astype(float),
          "social_renter": social[hh_of], "private_renter": private[hh_of],
          "prior": (prior_p | prior_h[hh_of]).astype(float)}
    items = {}
    for item, spec in PERCEPTION.items():
        latent = sum(b * px[k] for k, b in spec["coef"].items())
        items[item] = _ordinal(rng, latent, spec["cuts"], reverse=item != "safedark")
    u = rng.random(P)
    prevvict = np.where(u < ITEM_DONT_KNOW, 8, np.where(prior_p | prior_h[hh_of], 1, 2)).astype(np.int8)

    a_stratum = ar["stratum"].to_numpy()
    households = pd.DataFrame({
        "hhid": hhid, "psu": ar["psu"].to_numpy()[area_of], "stratum": a_stratum[area_of].astype(np.int16),
        "region": h_region.astype(np.int8), "urban": a_urban[area_of].astype(np.int8), "deprivation": z,
        "depriv_q": ar["depriv_q"].to_numpy()[area_of], "tenure": tenure, "nadults": nadults, "nchild": nchild,
        "hhsize": (nadults + nchild).astype(np.int8), "cars": cars, "prior": prior_h,
        "frailty": frail_h,
    })
    persons = pd.DataFrame({
        "hhid": hhid[hh_of], "pid": pid, "sex": sex, "age": age, "prevvict": prevvict,
        "safedark": items["safedark"], "worryburg": items["worryburg"], "worryviol": items["worryviol"],
        "prior": prior_p, "frailty": frail_p,
    })
    info = {"households": N, "persons": P, "areas": int(n_areas), "incidents": int(len(inc)),
            "incidents_in_period": int(inc["in_period"].sum())}
    return Population(areas=ar, households=households, persons=persons, incidents=inc,
                      coefficients=_coefficients(), counts=counts, info=info)


def _coefficients() -> pd.DataFrame:
    return pd.DataFrame([{"crime_type": t.name, "unit": t.unit, "iccs": t.iccs, **t.coefficients(),
                          "frailty_shape": t.shape, "exposure": t.exposure or ""} for t in CRIME_TYPES])


def _population_info(seed: int, areas: pd.DataFrame, persons: int, incidents: int, in_period: int,
                     mean_area_size: float, min_area_size: int) -> dict:
    return {
        "seed": int(seed), "households": int(areas["households"].sum()), "persons": int(persons),
        "areas": int(len(areas)), "strata": 16, "incidents": int(incidents), "incidents_in_period": int(in_period),
        "mean_area_size": mean_area_size, "min_area_size": min_area_size,
        "household_frailty_shape": HOUSEHOLD_FRAILTY_SHAPE, "person_frailty_shape": PERSON_FRAILTY_SHAPE,
        "chunk_households": CHUNK_HOUSEHOLDS,
    }


def _chunks(seed: int, areas: pd.DataFrame, rng):
    """Generate the population chunk by chunk (see :func:`_make_chunk`): yields Populations.  The
    first chunk goes on with the frame's random stream ``rng`` (so a population of at most
    CHUNK_HOUSEHOLDS is the one generated whole before streaming), chunk k > 0 has its own."""
    hh_offset = inc_offset = 0
    for k, (a0, a1) in enumerate(_area_chunks(areas["households"].to_numpy())):
        r = rng if k == 0 else np.random.default_rng([_SALT_POPULATION, int(seed), k])
        part = _make_chunk(r, areas, a0, a1, hh_offset, inc_offset)
        hh_offset += part.info["households"]
        inc_offset += part.info["incidents"]
        yield part


def make_population(seed: int = 1, n_households: int = 100_000, *, mean_area_size: float = 160.0,
                    min_area_size: int = 60) -> Population:
    """Generate a finite population of ``n_households`` households (about 1.9 adults each), whole
    in memory (``survey synth`` streams the same population instead, see :func:`synth`).

    Deterministic for ``seed``: the area frame first, then the households of consecutive areas
    in chunks of about CHUNK_HOUSEHOLDS, each from its own random stream.  Areas hold about
    ``mean_area_size`` households (at least ``min_area_size``, when the stratum is big enough).
    See the module docstring.
    """
    areas, rng = _make_frame(seed, n_households, mean_area_size, min_area_size)
    parts = list(_chunks(seed, areas, rng))
    households = pd.concat([p.households for p in parts], ignore_index=True)
    persons = pd.concat([p.persons for p in parts], ignore_index=True)
    inc = pd.concat([p.incidents for p in parts], ignore_index=True)
    counts = {t.name: np.concatenate([p.counts[t.name] for p in parts]) for t in CRIME_TYPES}
    info = _population_info(seed, areas, len(persons), len(inc), int(inc["in_period"].sum()), mean_area_size,
                            min_area_size)
    return Population(areas=areas, households=households, persons=persons, incidents=inc,
                      coefficients=_coefficients(), counts=counts, info=info)


def _split(pop: Population):
    """The chunks of a population built whole (:func:`make_population`) as Populations of views:
    the parts :func:`_chunks` generated it in (the area ranges of :func:`_area_chunks`), so
    that the in-memory API goes through the code ``survey synth`` streams the chunks through."""
    sizes = pop.areas["households"].to_numpy()
    h_bound = np.concatenate([[0], np.cumsum(sizes)])
    p_bound = np.concatenate([[0], np.cumsum(pop.households["nadults"].to_numpy().astype(np.int64))])
    inc_hhid = pop.incidents["hhid"].to_numpy()  # incidents are in household order
    for a0, a1 in _area_chunks(sizes):
        h0, h1 = int(h_bound[a0]), int(h_bound[a1])
        p0, p1 = int(p_bound[h0]), int(p_bound[h1])
        i0, i1 = np.searchsorted(inc_hhid, [h0 + 1, h1 + 1])
        inc = pop.incidents.iloc[i0:i1]
        counts = {t.name: pop.counts[t.name][h0:h1] if t.unit == "household" else pop.counts[t.name][p0:p1]
                  for t in CRIME_TYPES}
        info = {"households": h1 - h0, "persons": p1 - p0, "areas": a1 - a0, "incidents": int(len(inc)),
                "incidents_in_period": int(inc["in_period"].sum())}
        yield Population(areas=pop.areas.iloc[a0:a1], households=pop.households.iloc[h0:h1],
                         persons=pop.persons.iloc[p0:p1], incidents=inc, coefficients=pop.coefficients,
                         counts=counts, info=info)


def _sampled_rows(part: Population, s_hhid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows, in ``part`` (a population or one of its chunks: contiguous hhid, adults in household
    order), of the sampled households ``s_hhid`` (sorted) and of their adults."""
    hh = part.households
    if not len(hh):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    h0 = int(hh["hhid"].iloc[0])
    lo, hi = np.searchsorted(s_hhid, [h0, h0 + len(hh)])
    rows = s_hhid[lo:hi] - h0
    nad_all = hh["nadults"].to_numpy().astype(np.int64)
    p_first = np.concatenate([[0], np.cumsum(nad_all)[:-1]])
    nad = nad_all[rows]
    p_rows = np.repeat(p_first[rows] - np.concatenate([[0], np.cumsum(nad)[:-1]]), nad) + np.arange(nad.sum())
    return rows, p_rows


@dataclass
class _Walked:
    """What :func:`_walk` keeps of a population: the sampled households, all their adults and
    their incidents (for the screener, the sampled units also carry their screener values), the
    truth's totals per domain cell, the population's sizes and, when asked, the
    true 5-year status of every unit."""

    households: pd.DataFrame
    persons: pd.DataFrame
    incidents: pd.DataFrame
    totals: dict | None
    persons_total: int
    incidents_total: int
    in_period_total: int
    victims_5y: dict | None


def _walk(parts, s_hhid: np.ndarray, seed: int, *, screener: bool = False, truth: dict | None = None,
          keep_victims_5y: bool = False) -> _Walked:
    """One pass over a population's parts (the chunks :func:`_chunks` generates, streamed, or
    :func:`_split` of a population built whole): each part gives up its sampled households
    ``s_hhid`` (sorted) with their adults and incidents and, when ``truth`` (keyword arguments
    of :func:`_truth_totals`) is given, adds its totals per domain cell; then it can be dropped.
    ``screener``: each part's 5-year status is drawn (:func:`_victims_5y`, chunk k from its own
    stream) and the sampled households and adults also carry their screener values
    (``scr_n_<type>`` 12-month count, ``scr_v5_<type>`` 5-year status, ``scr_rep_<type>``
    reported to the police); the truth then has the 5-year prevalence."""
    keep_hh, keep_p, keep_inc, v5_parts = [], [], [], []
    totals = None
    n_persons = n_inc = n_in = 0
    for k, part in enumerate(parts):
        rows, p_rows = _sampled_rows(part, s_hhid)
        hh = part.households.iloc[rows]
        per = part.persons.iloc[p_rows]
        v5 = reported = None
        if screener:
            v5 = _victims_5y(part, seed, k)
            reported = _reported(part)
            extra = {"household": {}, "person": {}}
            for t in CRIME_TYPES:
                if t.name in SCREENER_TYPES:
                    r = rows if t.unit == "household" else p_rows
                    extra[t.unit] |= {f"scr_n_{t.name}": part.counts[t.name][r], f"scr_v5_{t.name}": v5[t.name][r],
                                      f"scr_rep_{t.name}": reported[t.name][r] > 0}
            hh = hh.assign(**extra["household"])
            per = per.assign(**extra["person"])
            if keep_victims_5y:
                v5_parts.append(v5)
        if rows.size:
            keep_hh.append(hh)
            keep_p.append(per)
            inc = part.incidents
            keep_inc.append(inc[inc["hhid"].isin(hh["hhid"].to_numpy()).to_numpy()])
        if truth is not None:
            totals = _add_totals(totals, _truth_totals(part, **truth, victims_5y=v5, reported=reported))
        n_persons += part.info["persons"]
        n_inc += part.info["incidents"]
        n_in += part.info["incidents_in_period"]
        del part, hh, per
    victims_5y = None
    if keep_victims_5y:
        victims_5y = {name: np.concatenate([v[name] for v in v5_parts]) for name in v5_parts[0]}
    return _Walked(households=pd.concat(keep_hh, ignore_index=True), persons=pd.concat(keep_p, ignore_index=True),
                   incidents=pd.concat(keep_inc, ignore_index=True), totals=totals,
                   persons_total=n_persons, incidents_total=n_inc, in_period_total=n_in, victims_5y=victims_5y)


# =============================================================================================
# Sample
# =============================================================================================
def _pps_probabilities(size: np.ndarray, n: int) -> np.ndarray:
    """Inclusion probabilities n * size / sum(size), with certainty units (probability 1) set
    aside iteratively until every other probability is below 1."""
    p = np.zeros(size.size)
    cert = np.zeros(size.size, dtype=bool)
    while True:
        rest = ~cert
        k = n - int(cert.sum())
        if k <= 0:
            p[rest] = 0.0
            break
        p[rest] = k * size[rest] / size[rest].sum()
        new = rest & (p >= 1.0)
        if not new.any():
            break
        cert |= new
    p[cert] = 1.0
    return p


def _systematic(rng, p: np.ndarray) -> np.ndarray:
    """Systematic selection with probabilities ``p`` (in the given order): boolean mask."""
    sel = p >= 1.0
    rest = np.flatnonzero(~sel & (p > 0))
    if rest.size:
        cum = np.cumsum(p[rest])
        u = rng.uniform(1e-9, 1.0 - 1e-9)
        hits = np.floor(cum - u + 1.0) - np.floor(np.concatenate([[0.0], cum[:-1]]) - u + 1.0)
        sel[rest[hits > 0]] = True
    return sel


def _nr_classes(stratum: np.ndarray, tenure: np.ndarray, psu: np.ndarray, resp: np.ndarray,
                min_resp: int) -> np.ndarray:
    """Weighting classes stratum x tenure; a class with fewer than ``min_resp`` respondents or
    respondents in fewer than 2 PSUs joins the stratum's pooled class (code stratum*10); a pooled
    class that is still thin joins the stratum's largest class."""
    cls = stratum.astype(np.int64) * 10 + tenure
    df = pd.DataFrame({"cls": cls, "psu": psu, "resp": resp})
    r = df[df["resp"]]
    n_resp = r.groupby("cls").size()
    n_psu = r.groupby("cls")["psu"].nunique()
    ok = set(n_resp.index[(n_resp >= min_resp) & (n_psu.reindex(n_resp.index) >= 2)])
    cls = np.where(np.isin(cls, list(ok)), cls, stratum.astype(np.int64) * 10)
    df["cls"] = cls
    r = df[df["resp"]]
    n_resp = r.groupby("cls").size()
    n_psu = r.groupby("cls")["psu"].nunique()
    for c in np.unique(cls[cls % 10 == 0]):
        if n_resp.get(c, 0) >= min_resp and n_psu.get(c, 0) >= 2:
            continue
        s = c // 10
        others = n_resp[(n_resp.index // 10 == s) & (n_resp.index != c)]
        if others.empty:
            if n_resp.get(c, 0) == 0:
                raise SurveyError(f"stratum {s}: no responding household to carry the non-response adjustment")
            continue
        cls = np.where(cls == c, int(others.idxmax()), cls)
    return cls


def _nr_adjust(base: np.ndarray, cls_idx: np.ndarray, n_cls: int, resp: np.ndarray,
               stratum_idx: np.ndarray, n_strata: int) -> np.ndarray:
    """Non-response adjusted weights: respondents carry their class's issued weight; a class with
    no respondent weight (possible in a replicate) passes its weight to its stratum."""
    tot = np.bincount(cls_idx, weights=base, minlength=n_cls)
    rsum = np.bincount(cls_idx, weights=base * resp, minlength=n_cls)
    with np.errstate(divide="ignore", invalid="ignore"):
        adj = np.where(rsum > 0, tot / rsum, 0.0)
    w = np.where(resp, base * adj[cls_idx], 0.0)
    lost = np.where(rsum > 0, 0.0, tot)
    if lost.any():
        cls_stratum = np.zeros(n_cls, dtype=np.int64)
        cls_stratum[cls_idx] = stratum_idx
        lost_s = np.bincount(cls_stratum, weights=lost, minlength=n_strata)
        have_s = np.bincount(stratum_idx, weights=w, minlength=n_strata)
        with np.errstate(divide="ignore", invalid="ignore"):
            f = np.where(have_s > 0, 1.0 + lost_s / have_s, 1.0)
        w = w * f[stratum_idx]
    return w


def _sample_args(n_pop: int, n_households: int, households_per_psu: int, replicate: str | None = None) -> int:
    """Check a sample's size against the population (one-line errors); returns households per PSU."""
    if replicate not in (None, "JKn", "bootstrap"):
        raise SurveyError(f"replicate must be JKn or bootstrap, not '{replicate}'")
    m = int(households_per_psu)
    if m < 2:
        raise SurveyError(f"households per PSU must be at least 2, not {m}")
    if n_households < 32 * m:
        raise SurveyError(f"sample households must be at least {32 * m} (2 PSUs of {m} in each of 16 strata), "
                          f"not {n_households}")
    if n_pop < 2_000:
        raise SurveyError(f"population households must be at least 2,000, not {n_pop}")
    if n_households > n_pop // 2:
        raise SurveyError(f"sample of {n_households} households is more than half the population of {n_pop}")
    return m


def draw_sample(pop: Population, n_households: int, seed: int = 1, replicate: str | None = None,
                n_replicates: int | None = None, *, households_per_psu: int = 20,
                min_class_respondents: int = 10) -> Sample:
    """Draw a stratified two-stage sample of ``n_households`` issued households (exactly
    ``households_per_psu`` x round(n_households / households_per_psu) when no area is smaller
    than the take), respondents and their incidents; see the module docstring for the design.

    ``replicate``: None, ``"JKn"`` (one replicate per PSU when there are at most
    ``n_replicates`` (default 100) PSUs, otherwise PSUs are randomly grouped within strata into
    about ``n_replicates`` variance units, at least 2 per stratum) or ``"bootstrap"`` (Rao-Wu
    rescaling bootstrap, ``n_replicates`` default 100).  Deterministic for ``seed``.  The
    population's chunks go through :func:`_walk`, the code ``survey synth`` streams them through.
    """
    n_households = int(n_households)
    m = _sample_args(len(pop.households), n_households, households_per_psu, replicate)
    sel = _select(pop.areas, n_households, seed, m)
    w = _walk(_split(pop), sel["s_idx"] + 1, seed)
    return _complete_sample(sel, w.households, w.persons, w.incidents, seed, replicate, n_replicates, m,
                            min_class_respondents)


def _select(areas: pd.DataFrame, n_households: int, seed: int, m: int) -> dict:
    """Both stages of selection, from the area frame alone (households are stored by area, so
    the sampled households are positions): the random stream, allocation, area probabilities
    ``pi``, selected areas, sampled household positions ``s_idx`` (0-based, sorted), their areas
    and design weights.  Raises "the population is too small" before any household exists."""
    rng = np.random.default_rng([_SALT_SAMPLE, int(seed)])
    a_stratum = areas["stratum"].to_numpy()
    a_size = areas["households"].to_numpy().astype(float)
    n_strata = int(a_stratum.max())
    N_h = np.bincount(a_stratum, weights=a_size, minlength=n_strata + 1)[1:]
    A_h = np.bincount(a_stratum, minlength=n_strata + 1)[1:]
    n_psu = max(2 * n_strata, int(round(n_households / m)))
    alloc = _largest_remainder(n_psu, N_h, minimum=2)
    short = np.flatnonzero(alloc > A_h)
    if short.size:
        h = int(short[0])
        raise SurveyError(f"the population is too small for this sample: stratum {h + 1} has {int(A_h[h])} areas "
                          f"and the sample needs {int(alloc[h])} PSUs ({short.size} strata short); use more "
                          f"population households or more households per PSU")

    # stage 1: systematic PPS within strata, areas ordered by deprivation
    pi = np.zeros(len(areas))
    selected = np.zeros(len(areas), dtype=bool)
    order = np.lexsort((areas["deprivation"].to_numpy(), a_stratum))
    bounds = np.searchsorted(a_stratum[order], np.arange(1, n_strata + 2))
    for h in range(n_strata):
        idx = order[bounds[h]:bounds[h + 1]]
        p = _pps_probabilities(a_size[idx], int(alloc[h]))
        pi[idx] = p
        sel = _systematic(rng, p)
        if sel.sum() != alloc[h]:  # pragma: no cover - guards floating point
            raise SurveyError(f"stratum {h + 1}: systematic PPS selected {sel.sum()} areas, expected {alloc[h]}")
        selected[idx] = sel
    sel_areas = np.flatnonzero(selected)

    # stage 2: SRS of m households in each selected area (households are stored by area)
    offsets = np.concatenate([[0], np.cumsum(areas["households"].to_numpy())])
    sizes = areas["households"].to_numpy()[sel_areas]
    starts = offsets[sel_areas]
    total = int(sizes.sum())
    grp = np.repeat(np.arange(sel_areas.size), sizes)
    within = np.arange(total) - np.repeat(np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
    hh_idx = np.repeat(starts, sizes) + within
    key = rng.random(total)
    o = np.lexsort((key, grp))
    rank = np.empty(total, dtype=np.int64)
    rank[o] = within  # positions within each group after sorting, since grp is sorted already
    take = np.minimum(m, sizes)
    keep = rank < take[grp]
    s_idx = hh_idx[keep]
    s_area = sel_areas[grp[keep]]
    order_s = np.argsort(s_idx, kind="stable")
    s_idx, s_area = s_idx[order_s], s_area[order_s]
    p_hh = pi[s_area] * np.minimum(m, a_size[s_area]) / a_size[s_area]
    w_design = 1.0 / p_hh

    return {"rng": rng, "alloc": alloc, "pi": pi, "sel_areas": sel_areas, "s_idx": s_idx, "s_area": s_area,
            "w_design": w_design, "n_strata": n_strata}


def _complete_sample(sel: dict, hh: pd.DataFrame, persons_all: pd.DataFrame, inc: pd.DataFrame, seed: int,
                     replicate: str | None, n_replicates: int | None, m: int, min_class_respondents: int) -> Sample:
    """Non-response, weights, respondent selection, replicates and incidents of a selection
    ``sel`` (:func:`_select`): ``hh`` the sampled households (in ``s_idx`` order), ``persons_all``
    their adults (in household order) and ``inc`` their incidents (in population order)."""
    rng, alloc, pi, sel_areas = sel["rng"], sel["alloc"], sel["pi"], sel["sel_areas"]
    w_design, n_strata = sel["w_design"], sel["n_strata"]
    hh = hh.reset_index(drop=True)
    persons_all = persons_all.reset_index(drop=True)
    n_s = len(hh)
    tenure = hh["tenure"].to_numpy()
    eta = (RESPONSE_COEF["intercept"] + REGION_RESPONSE[hh["region"].to_numpy() - 1]
           + RESPONSE_COEF["urban"] * (hh["urban"].to_numpy() == 1)
           + RESPONSE_COEF["social_renter"] * (tenure == 2) + RESPONSE_COEF["private_renter"] * (tenure == 3))
    resp = rng.random(n_s) < _expit(eta)
    stratum = hh["stratum"].to_numpy().astype(np.int64)
    psu = hh["psu"].to_numpy()
    cls = _nr_classes(stratum, tenure, psu, resp, min_class_respondents)
    cls_levels, cls_idx = np.unique(cls, return_inverse=True)
    w_hh = _nr_adjust(w_design, cls_idx, cls_levels.size, resp, stratum - 1, n_strata)

    # respondent selection: one adult at random
    nad = hh["nadults"].to_numpy().astype(np.int64)
    p_first = np.concatenate([[0], np.cumsum(nad)[:-1]])
    r_hh = np.flatnonzero(resp)
    pick = np.floor(rng.random(r_hh.size) * nad[r_hh]).astype(np.int64)
    p_idx = p_first[r_hh] + pick
    per = persons_all.iloc[p_idx].reset_index(drop=True)

    # replicate factors per PSU (issued sample), then the non-response adjustment per replicate
    rep_meta = None
    rep_h = None
    if replicate is not None:
        psu_levels, psu_idx = np.unique(psu, return_inverse=True)
        psu_stratum = np.zeros(psu_levels.size, dtype=np.int64)
        psu_stratum[psu_idx] = stratum
        factors, rep_meta = _replicate_factors(rng, replicate, psu_stratum, n_replicates)
        R = factors.shape[1]
        rep_h = np.empty((n_s, R))
        for r in range(R):
            rep_h[:, r] = _nr_adjust(w_design * factors[psu_idx, r], cls_idx, cls_levels.size, resp,
                                     stratum - 1, n_strata)

    households = pd.DataFrame({
        "hhid": hh["hhid"].to_numpy(), "stratum": stratum.astype(np.int16), "psu": psu,
        "region": hh["region"].to_numpy(), "urban": hh["urban"].to_numpy(), "depriv_q": hh["depriv_q"].to_numpy(),
        "tenure": tenure, "resp": np.where(resp, 1, 2).astype(np.int8), "nr_class": cls,
        "wt_design": w_design, "wt_household": w_hh,
    })
    for c in ("hhsize", "nadults", "nchild", "cars"):  # interview items: missing for non-response
        households[c] = np.where(resp, hh[c].to_numpy(), np.nan)
    rh = hh.iloc[r_hh]
    wt_h = w_hh[r_hh]
    persons = pd.DataFrame({
        "hhid": per["hhid"].to_numpy(), "pid": per["pid"].to_numpy(), "stratum": stratum[r_hh].astype(np.int16),
        "psu": psu[r_hh], "region": rh["region"].to_numpy(), "urban": rh["urban"].to_numpy(),
        "depriv_q": rh["depriv_q"].to_numpy(), "tenure": tenure[r_hh], "hhsize": rh["hhsize"].to_numpy(),
        "nadults": nad[r_hh], "cars": rh["cars"].to_numpy(), "sex": per["sex"].to_numpy(),
        "age": per["age"].to_numpy(), "prevvict": per["prevvict"].to_numpy(),
        "safedark": per["safedark"].to_numpy(), "worryburg": per["worryburg"].to_numpy(),
        "worryviol": per["worryviol"].to_numpy(), "wt_household": wt_h, "wt_person": wt_h * nad[r_hh],
    })
    if rep_h is not None:
        R = rep_h.shape[1]
        width = len(str(R))
        hcols = [f"rwh{r + 1:0{width}d}" for r in range(R)]
        pcols = [f"rwp{r + 1:0{width}d}" for r in range(R)]
        households = pd.concat([households, pd.DataFrame(rep_h, columns=hcols)], axis=1)
        persons = pd.concat([persons, pd.DataFrame(rep_h[r_hh] * nad[r_hh, None], columns=pcols),
                             pd.DataFrame(rep_h[r_hh], columns=hcols)], axis=1)
        rep_meta["columns_person"] = "^rwp[0-9]+$"
        rep_meta["columns_household"] = "^rwh[0-9]+$"
        rep_meta["table"].insert(1, "column_person", pcols)
        rep_meta["table"].insert(2, "column_household", hcols)

    # incidents of the respondents (personal, uncodeable) and of their households (household types)
    resp_pid = pd.Series(persons["pid"].to_numpy(), index=persons["hhid"].to_numpy())
    hh_inc = inc[(inc["unit"] == "household").to_numpy() & inc["hhid"].isin(resp_pid.index).to_numpy()]
    key_p = pd.MultiIndex.from_arrays([persons["hhid"].to_numpy(), persons["pid"].to_numpy().astype(np.int64)])
    pin = inc[(inc["unit"] == "person").to_numpy()]
    pin = pin[pd.MultiIndex.from_arrays([pin["hhid"].to_numpy(), pin["pid"].to_numpy()]).isin(key_p)]
    hh_inc = hh_inc.assign(pid=resp_pid.loc[hh_inc["hhid"].to_numpy()].to_numpy().astype(np.int64))
    s_inc = pd.concat([hh_inc, pin]).sort_values(["hhid", "pid", "month", "crimecode", "incid"], kind="stable")
    incidents = pd.DataFrame({
        "incid": np.arange(1, len(s_inc) + 1, dtype=np.int64), "hhid": s_inc["hhid"].to_numpy(),
        "pid": s_inc["pid"].to_numpy(), "crimecode": s_inc["crimecode"].to_numpy(),
        "month": s_inc["month"].to_numpy(), "police": s_inc["police"].to_numpy(),
    })

    info = {
        "seed": int(seed), "households_per_psu": m, "households_issued": int(n_s),
        "households_responding": int(resp.sum()), "response_rate": float(resp.mean()),
        "persons": int(len(persons)), "incidents": int(len(incidents)),
        "psus": int(sel_areas.size), "certainty_psus": int((pi[sel_areas] >= 1).sum()),
        "strata": n_strata, "psus_per_stratum": {int(h + 1): int(a) for h, a in enumerate(alloc)},
        "nonresponse_classes": int(cls_levels.size), "min_class_respondents": int(min_class_respondents),
        "replicate": None,
    }
    rep_table = None
    if rep_meta is not None:
        rep_table = rep_meta.pop("table")
        info["replicate"] = rep_meta
    return Sample(households=households, persons=persons, incidents=incidents, info=info, replicates=rep_table)


def _replicate_factors(rng, method: str, psu_stratum: np.ndarray, n_replicates: int | None):
    """Weight factors (PSUs x replicates) and metadata (scale, rscales) for JKn or bootstrap."""
    n_psu = psu_stratum.size
    strata, counts = np.unique(psu_stratum, return_counts=True)
    R = 100 if n_replicates is None else int(n_replicates)
    if R < 2:
        raise SurveyError(f"need at least 2 replicates, not {R}")
    if method == "JKn":
        if n_psu <= R:
            groups = np.arange(n_psu)
            g_h = {s: int(c) for s, c in zip(strata, counts)}
            grouped = False
        else:
            g = np.minimum(counts, np.maximum(2, np.rint(R * counts / n_psu).astype(np.int64)))
            g_h = {s: int(k) for s, k in zip(strata, g)}
            groups = np.empty(n_psu, dtype=np.int64)
            base = 0
            for s, k in zip(strata, g):
                idx = np.flatnonzero(psu_stratum == s)
                perm = rng.permutation(idx.size)
                groups[idx[perm]] = base + np.arange(idx.size) % k
                base += k
            grouped = True
        n_groups = int(groups.max()) + 1
        group_stratum = np.zeros(n_groups, dtype=np.int64)
        group_stratum[groups] = psu_stratum
        gh = np.array([g_h[s] for s in group_stratum], dtype=float)
        factors = np.ones((n_psu, n_groups))
        same = psu_stratum[:, None] == group_stratum[None, :]
        factors[same] = np.broadcast_to(gh / (gh - 1.0), (n_psu, n_groups))[same]
        factors[np.arange(n_psu), groups] = 0.0
        rscales = (gh - 1.0) / gh
        meta = {"method": "JKn", "n_replicates": n_groups, "scale": 1.0, "rscales": rscales.tolist(),
                "grouped": grouped, "mse": False}
        table = pd.DataFrame({"replicate": np.arange(1, n_groups + 1), "stratum": group_stratum, "rscale": rscales})
        return factors, meta | {"table": table}
    # Rao-Wu rescaling bootstrap: n_h - 1 PSUs drawn with replacement in each stratum
    factors = np.zeros((n_psu, R))
    for s, c in zip(strata, counts):
        idx = np.flatnonzero(psu_stratum == s)
        if c < 2:
            factors[idx] = 1.0
            continue
        draws = rng.integers(0, c, size=(c - 1, R))
        times = np.zeros((c, R))
        np.add.at(times, (draws, np.broadcast_to(np.arange(R), draws.shape)), 1.0)
        factors[idx] = times * c / (c - 1.0)
    meta = {"method": "bootstrap", "n_replicates": R, "scale": 1.0 / (R - 1.0), "rscales": None, "mse": False}
    table = pd.DataFrame({"replicate": np.arange(1, R + 1), "stratum": np.nan, "rscale": 1.0})
    return factors, meta | {"table": table}


# =============================================================================================
# Truth
# =============================================================================================
TRUTH_COLUMNS = ["indicator", "crime_type", "unit", "domain", "domain_value", "value", "domain_code",
                 "numerator", "denominator"]
INDICATORS = {
    "prevalence": "% of units (households or adults) victimized at least once in the reference period",
    "incidence": "victimizations in the reference period per 1,000 units",
    "concentration": "victimizations per victim (= incidence / (10 x prevalence))",
    "repeat_victims": "% of victims victimized two or more times",
    "repeat_incidents": "% of victimizations suffered by repeat victims (two or more)",
    "multiple_victimization": "groups only: % of victims of the group who suffered two or more of its types",
    "reporting_rate": "% of victimizations reported to the police (police == 1 / all victimizations; "
                      "don't know and refused count as not reported)",
    "reporting_rate_victims": "% of victims with at least one victimization reported to the police",
    "dark_figure": "100 - reporting_rate",
    "feeling_safe": "% very or fairly safe walking alone after dark (safedark 1-2 / answers 1-4)",
    "worry": "% very worried (code 1 / answers 1-4)",
}
# perception items: (name in the spec and the truth, indicator, variable, positive codes)
PERCEPTION_ITEMS = (("safe_dark", "feeling_safe", "safedark", (1, 2)),
                    ("worry_burglary", "worry", "worryburg", (1,)),
                    ("worry_violence", "worry", "worryviol", (1,)))


def _domains(pop: Population, unit: str):
    """Domains of households or persons: (cell per unit, number of cells, [(domain, level of each
    cell, level codes, level labels)]), cells being the cross-classification of every domain."""
    hh = pop.households
    if unit == "person":
        ix = pop.persons["hhid"].to_numpy() - (int(hh["hhid"].iloc[0]) if len(hh) else 1)  # hhid are contiguous
        base = {c: hh[c].to_numpy()[ix] for c in ("region", "urban", "tenure")}
        n = len(pop.persons)
    else:
        base = {c: hh[c].to_numpy() for c in ("region", "urban", "tenure")}
        n = len(hh)
    doms = [("overall", np.zeros(n, dtype=np.int64), [np.nan], ["all"])]
    if unit == "person":
        doms.append(("sex", pop.persons["sex"].to_numpy() - 1, [1, 2], [SEX[1], SEX[2]]))
        doms.append(("age_band", _age_band(pop.persons["age"].to_numpy()), list(AGE_BANDS), list(AGE_BAND_LABELS)))
    doms.append(("region", base["region"] - 1, list(REGIONS), list(REGIONS.values())))
    doms.append(("urban", base["urban"] - 1, list(URBAN), list(URBAN.values())))
    doms.append(("tenure", base["tenure"] - 1, list(TENURE), list(TENURE.values())))
    cell = np.zeros(n, dtype=np.int64)
    n_cells = 1
    for _, code, levels, _ in doms:
        cell = cell * len(levels) + np.asarray(code, dtype=np.int64)
        n_cells *= len(levels)
    out = []
    rest = np.arange(n_cells)
    for d, _, levels, labels in reversed(doms):  # decode the mixed radix, last domain first
        out.append((d, rest % len(levels), levels, labels))
        rest = rest // len(levels)
    out = out[::-1]
    if unit == "person":  # the spec's crossed domain sex_age (cells "Male × 16-24"), from its two parts
        (_, sex_of, sexes, sex_labels), (_, age_of, ages, age_labels) = out[1], out[2]
        out.insert(3, ("sex_age", sex_of * len(ages) + age_of,
                       [f"{s}×{a}" for s in sexes for a in ages],
                       [f"{s} × {a}" for s in sex_labels for a in age_labels]))
    return cell, n_cells, out


def _by_domain(cell_totals: dict, doms) -> list:
    """Totals per domain level from totals per cell: [(domain, levels, labels, {name: array})]."""
    out = []
    for d, level_of_cell, levels, labels in doms:
        k = len(levels)
        out.append((d, levels, labels, {name: np.bincount(level_of_cell, weights=v, minlength=k)
                                        for name, v in cell_totals.items()}))
    return out


def truth_table(pop: Population, cap: float | None = None, types: tuple[str, ...] | None = None,
                groups: dict[str, tuple[str, ...]] | None = None) -> pd.DataFrame:
    """Population values of every indicator, by crime type (and group) and domain.

    ``cap``: the population values under a fixed cap on each type's victimizations per unit
    (the spec's ``cap: {rule: fixed, value: cap}``): a unit's count of a type above the cap counts
    as the cap, and its reported victimizations are scaled by the same factor (as the loader).

    Person indicators are over every adult 16+, household ones over every household; only
    incidents in the reference period (months 1-12) of a crime type count (outside-period and
    uncodeable incidents are not in the truth).  Indicator names and domain names follow the
    indicator table of ``survey.indicators`` (see :data:`INDICATORS`).  Columns:
    :data:`TRUTH_COLUMNS`; ``numerator`` and ``denominator`` are the population counts behind
    ``value`` (``value`` is NaN when the denominator is 0).

    ``types`` and ``groups``: the crime types and groups to give (default: every type of
    :data:`CRIME_TYPES` and :data:`GROUPS`); a group's unit is the unit of its members.
    """
    return _truth_rows(_truth_totals(pop, cap, types, groups), types, groups)


def _truth_series(types, groups) -> list:
    unit_of = {t.name: t.unit for t in CRIME_TYPES}
    series = [(t.name, t.unit, [t.name]) for t in CRIME_TYPES if types is None or t.name in types]
    series += [(g, unit_of[m[0]], list(m)) for g, m in (GROUPS if groups is None else groups).items()]
    return series


def _reported(pop: Population) -> dict[str, np.ndarray]:
    """In-period victimizations reported to the police (code 1) per unit (household or adult, in
    the order of ``pop``: a population or one of its chunks), for each crime type."""
    inc = pop.incidents[pop.incidents["in_period"].to_numpy()]
    n_units = {"household": len(pop.households), "person": len(pop.persons)}
    p_first = np.concatenate([[0], np.cumsum(pop.households["nadults"].to_numpy())[:-1]])
    hh0 = int(pop.households["hhid"].iloc[0]) if len(pop.households) else 1
    hh_ix = inc["hhid"].to_numpy() - hh0
    unit_ix = np.where(inc["unit"].to_numpy() == "household", hh_ix,
                       p_first[hh_ix] + np.maximum(inc["pid"].to_numpy(), 1) - 1)
    ctype = inc["crime_type"].cat.codes.to_numpy()
    yes = inc["police"].to_numpy() == 1
    return {t.name: np.bincount(unit_ix[(ctype == i) & yes], minlength=n_units[t.unit])
            for i, t in enumerate(CRIME_TYPES)}


def _truth_totals(pop: Population, cap: float | None = None, types=None, groups=None,
                  victims_5y: dict | None = None, reported: dict | None = None) -> dict:
    """The population totals behind :func:`truth_table`, per domain cell (see :func:`_domains`):
    {series or perception item: {total: array over cells}}; with ``victims_5y`` (the 5-year
    status per unit of the screener types, :func:`_victims_5y`) also ``<series>_5y``: units and
    5-year victims.  ``reported``: :func:`_reported` of ``pop`` when already computed.  Totals
    of disjoint parts of a population (its chunks) add up to the totals of the whole."""
    doms = {u: _domains(pop, u) for u in ("household", "person")}
    n_units = {"household": len(pop.households), "person": len(pop.persons)}
    reported = _reported(pop) if reported is None else reported
    unit_totals = {u: np.bincount(doms[u][0], minlength=doms[u][1]).astype(float) for u in doms}
    out = {}
    for name, unit, members in _truth_series(types, groups):
        cell, n_cells, _ = doms[unit]
        count = np.zeros(n_units[unit])
        rep = np.zeros(n_units[unit])
        for m in members:
            cm = pop.counts[m].astype(float)
            scale = np.where(cm > cap, cap / np.where(cm > 0, cm, 1.0), 1.0) if cap is not None else 1.0
            count = count + cm * scale
            rep = rep + reported[m] * scale
        nz = np.flatnonzero(count)  # every quantity below is 0 for non-victims
        c, cz, r = cell[nz], count[nz], rep[nz]
        n_types = sum((pop.counts[m][nz] > 0).astype(np.int64) for m in members)

        def tot(x, c=c, n_cells=n_cells):
            return np.bincount(c, weights=x, minlength=n_cells)

        out[name] = {"units": unit_totals[unit], "victims": tot(np.ones(nz.size)), "incidents": tot(cz),
                     "repeat_victims": tot(cz > 1), "repeat_incidents": tot(np.where(cz > 1, cz, 0)),
                     "reported": tot(r), "victims_reported": tot(r > 0), "multiple": tot(n_types > 1)}
    # perceptions (persons)
    per = pop.persons
    cell, n_cells, _ = doms["person"]
    for item, _, variable, positive in PERCEPTION_ITEMS:
        x = per[variable].to_numpy()
        out[item] = {"answered": np.bincount(cell, weights=(x >= 1) & (x <= 4), minlength=n_cells),
                     "positive": np.bincount(cell, weights=np.isin(x, positive), minlength=n_cells)}
    # perceptions by victimization status of each crime group: the indicator table's
    # victim__<group> domains (a household's status is its adults' status)
    unit_of = {t.name: t.unit for t in CRIME_TYPES}
    hh0 = int(pop.households["hhid"].iloc[0]) if len(pop.households) else 1
    person_hh = pop.persons["hhid"].to_numpy() - hh0
    for g, members in (GROUPS if groups is None else groups).items():
        unit = unit_of[members[0]]
        victim = np.zeros(n_units[unit], dtype=bool)
        for m in members:
            victim |= pop.counts[m] > 0
        status = (victim[person_hh] if unit == "household" else victim).astype(np.int64)
        for item, _, variable, positive in PERCEPTION_ITEMS:
            x = per[variable].to_numpy()
            out[f"{item}|victim__{g}"] = {
                "answered": np.bincount(status, weights=(x >= 1) & (x <= 4), minlength=2),
                "positive": np.bincount(status, weights=np.isin(x, positive), minlength=2)}
    if victims_5y is not None:  # the screener's 5-year prevalence
        for name, unit, members in _truth_series(types, groups):
            cell, n_cells, _ = doms[unit]
            victim = np.zeros(n_units[unit], dtype=bool)
            for m in members:
                victim |= victims_5y[m]
            out[f"{name}_5y"] = {"units": unit_totals[unit],
                                 "victims": np.bincount(cell, weights=victim.astype(float), minlength=n_cells)}
    return out


def _add_totals(acc: dict | None, part: dict) -> dict:
    if acc is None:
        return {k: {n: v.copy() for n, v in d.items()} for k, d in part.items()}
    for k, d in part.items():
        for n, v in d.items():
            acc[k][n] += v
    return acc


def _truth_rows(totals: dict, types=None, groups=None) -> pd.DataFrame:
    """The truth table (:data:`TRUTH_COLUMNS`) from population totals per cell."""
    empty = Population(areas=pd.DataFrame(), households=pd.DataFrame({c: np.zeros(0, np.int64) for c in
                                                                      ("hhid", "region", "urban", "tenure")}),
                       persons=pd.DataFrame({c: np.zeros(0, np.int64) for c in ("hhid", "sex", "age")}),
                       incidents=pd.DataFrame(), coefficients=pd.DataFrame(), counts={})
    dom_of = {u: _domains(empty, u)[2] for u in ("household", "person")}  # the cells do not depend on data
    rows = []
    for name, unit, members in _truth_series(types, groups):
        for dom, levels, labels, t in _by_domain(totals[name], dom_of[unit]):
            vals = [
                ("prevalence", 100.0, t["victims"], t["units"]),
                ("incidence", 1000.0, t["incidents"], t["units"]),
                ("concentration", 1.0, t["incidents"], t["victims"]),
                ("repeat_victims", 100.0, t["repeat_victims"], t["victims"]),
                ("repeat_incidents", 100.0, t["repeat_incidents"], t["incidents"]),
                ("reporting_rate", 100.0, t["reported"], t["incidents"]),
                ("reporting_rate_victims", 100.0, t["victims_reported"], t["victims"]),
                ("dark_figure", 100.0, t["incidents"] - t["reported"], t["incidents"]),
            ]
            if len(members) > 1:
                vals.append(("multiple_victimization", 100.0, t["multiple"], t["victims"]))
            for ind, scale, num, den in vals:
                for i in range(len(levels)):
                    v = scale * num[i] / den[i] if den[i] > 0 else np.nan
                    rows.append((ind, name, unit, dom, labels[i], v, levels[i], float(num[i]), float(den[i])))
    for item, ind, _, _ in PERCEPTION_ITEMS:
        for dom, levels, labels, t in _by_domain(totals[item], dom_of["person"]):
            for i in range(len(levels)):
                num, den = float(t["positive"][i]), float(t["answered"][i])
                rows.append((ind, item, "person", dom, labels[i], 100.0 * num / den if den else np.nan,
                             levels[i], num, den))
    for g in (GROUPS if groups is None else groups):  # perceptions of victims and non-victims
        for item, ind, _, _ in PERCEPTION_ITEMS:
            t = totals.get(f"{item}|victim__{g}")
            for code, label in ((1, "victims"), (0, "non-victims")) if t is not None else ():
                num, den = float(t["positive"][code]), float(t["answered"][code])
                rows.append((ind, item, "person", f"victim__{g}", label, 100.0 * num / den if den else np.nan,
                             code, num, den))
    for name, unit, _ in _truth_series(types, groups):  # 5-year prevalence (screener variant)
        if f"{name}_5y" not in totals:
            continue
        for dom, levels, labels, t in _by_domain(totals[f"{name}_5y"], dom_of[unit]):
            for i in range(len(levels)):
                num, den = float(t["victims"][i]), float(t["units"][i])
                rows.append(("prevalence", f"{name}_5y", unit, dom, labels[i], 100.0 * num / den if den else np.nan,
                             levels[i], num, den))
    out = pd.DataFrame(rows, columns=TRUTH_COLUMNS)
    out["numerator"] = out["numerator"].round().astype(np.int64)
    out["denominator"] = out["denominator"].round().astype(np.int64)
    return out


# =============================================================================================
# Writing
# =============================================================================================
_LABELS = {
    "hhid": ("Household identifier", None), "pid": ("Person number within the household", None),
    "incid": ("Incident identifier", None),
    "stratum": ("Sampling stratum (region x urban/rural)", None),
    "psu": ("Primary sampling unit (area)", None),
    "region": ("Region", REGIONS), "urban": ("Urban or rural area", URBAN),
    "depriv_q": ("Area deprivation quintile", DEPRIVATION_Q), "tenure": ("Tenure", TENURE),
    "resp": ("Household interview outcome", RESP), "nr_class": ("Non-response weighting class", None),
    "wt_design": ("Household design weight (inverse inclusion probability)", None),
    "wt_household": ("Household weight (design x non-response adjustment; 0 = non-response)", None),
    "wt_person": ("Person weight (household weight x number of adults)", None),
    "hhsize": ("Number of people in the household", None), "nadults": ("Number of adults (16+) in the household", None),
    "nchild": ("Number of children (under 16) in the household", None),
    "cars": ("Vehicles available to the household", CARS),
    "sex": ("Sex", SEX), "age": ("Age in years", {MAX_AGE: f"{MAX_AGE} or older"}),
    "prevvict": ("Victim of any crime in the 12 months before the reference period", YES_NO),
    "safedark": ("How safe do you feel walking alone in this area after dark?", SAFE),
    "worryburg": ("How worried are you about having your home broken into?", WORRY),
    "worryviol": ("How worried are you about being physically attacked?", WORRY),
    "crimecode": ("Offence code", CRIME_CODES),
    "month": ("Month of the incident in the reference period", MONTH),
    "police": ("Did the police come to know about the incident?", YES_NO),
}
_MEASURE = {"hhid": "nominal", "pid": "nominal", "incid": "nominal", "stratum": "nominal", "psu": "nominal",
            "nr_class": "nominal", "depriv_q": "ordinal", "safedark": "ordinal", "worryburg": "ordinal",
            "worryviol": "ordinal", "cars": "ordinal", "month": "ordinal", "age": "scale"}


def _stratum_labels() -> dict:
    return {(r - 1) * 2 + u: f"{REGIONS[r]} - {URBAN[u]}" for r in REGIONS for u in URBAN}


def _write_sav(df: pd.DataFrame, path: Path, file_label: str, labels: dict | None = None,
               missing_ranges: dict | None = None) -> None:
    """Write ``df`` as SPSS with variable and value labels (``labels`` adds to :data:`_LABELS`)
    and ``missing_ranges`` (column -> SPSS user-missing codes, as pyreadstat takes them)."""
    import pyreadstat

    col_labels, value_labels, measure = {}, {}, {}
    all_labels = {**_LABELS, **(labels or {})}
    for c in df.columns:
        if c in all_labels:
            lab, vl = all_labels[c]
        elif c.startswith("rwp"):
            lab, vl = f"Person replicate weight {int(c[3:])}", None
        elif c.startswith("rwh"):
            lab, vl = f"Household replicate weight {int(c[3:])}", None
        else:  # pragma: no cover - every written column is described above
            raise SurveyError(f"no label for column '{c}'")
        if c == "stratum" and c not in (labels or {}):
            vl = _stratum_labels()
        col_labels[c] = lab
        if vl:
            value_labels[c] = vl
        measure[c] = _MEASURE.get(c, "nominal" if vl else "scale")
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_bool_dtype(out[c]) or pd.api.types.is_integer_dtype(out[c]):
            out[c] = out[c].astype(np.float64)
    fmt = {c: "F8.0" for c in out.columns if not (c.startswith("wt_") or c.startswith("rw"))}
    fmt.update({c: "F12.4" for c in out.columns if c.startswith("wt_") or c.startswith("rw")})
    pyreadstat.write_sav(out, str(path), file_label=file_label, column_labels=col_labels,
                         variable_value_labels=value_labels, variable_measure=measure, variable_format=fmt,
                         missing_ranges=missing_ranges or None, row_compress=True)
    # fixed creation date/time in the header (offsets 92 and 101), so a seed gives identical bytes
    with open(path, "r+b") as fh:
        head = fh.read(4)
        if head == b"$FL2":
            fh.seek(92)
            fh.write(FIXED_SAV_DATE[0])
            fh.write(FIXED_SAV_DATE[1])


def write_sample(sample: Sample, out_dir) -> list[Path]:
    """Write households.sav, persons.sav, incidents.sav (and replicates.csv) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df, label in (("households", sample.households, "Synthetic victimization survey: households"),
                            ("persons", sample.persons, "Synthetic victimization survey: respondents"),
                            ("incidents", sample.incidents, "Synthetic victimization survey: incidents")):
        p = out / f"{name}.sav"
        _write_sav(df, p, label)
        paths.append(p)
    if sample.replicates is not None:
        p = out / "replicates.csv"
        sample.replicates.to_csv(p, index=False)
        paths.append(p)
    return paths


def _metadata(pop: Population, sample: Sample | None, truth: pd.DataFrame) -> dict:
    meta = {
        "generator": "survey.synth",
        "seed": pop.info["seed"],
        "reference_period": "12 months; incident months 1-12 are inside it, 0 (before) and 13 (after) outside",
        "population": pop.info,
        "sample": None if sample is None else sample.info,
        "crime_types": [{"name": t.name, "label": t.label, "iccs": t.iccs, "unit": t.unit, "violent": t.violent,
                         "codes": {str(c): lab for c, lab, _, _ in t.codes},
                         "police_probability": {str(c): p for c, _, _, p in t.codes},
                         "code_shares": {str(c): s for c, _, s, _ in t.codes},
                         "coefficients": t.coefficients(), "frailty_shape": t.shape,
                         "exposure": t.exposure} for t in CRIME_TYPES],
        "groups": {k: list(v) for k, v in GROUPS.items()},
        "ignored_codes": {str(UNCODEABLE): UNCODEABLE_LABEL},
        "outside_period": {"month_0_share_of_prior_victims": TELESCOPE_BEFORE,
                           "month_13_share_of_incidents": TELESCOPE_AFTER,
                           "rule": "month < 1 or month > 12"},
        "risk_model": ("count ~ min(30, Poisson(exp(x'b + b_prior * prior) * exposure * F * V_type)); F = household "
                       "frailty Gamma(mean 1, shape household_frailty_shape) for household types and that "
                       "times a person frailty (shape person_frailty_shape) for personal types; V_type "
                       "Gamma(mean 1, shape frailty_shape); age10 = (age - 45) / 10 (household reference "
                       "person for household types); deprivation = area score (mean 0, sd 1 over households)"),
        "perception_model": {k: {"coef": v["coef"], "cuts": list(v["cuts"])} for k, v in PERCEPTION.items()},
        "response_model": {**RESPONSE_COEF, "region": {REGIONS[i + 1]: float(v) for i, v in enumerate(REGION_RESPONSE)}},
        "truth": {"columns": TRUTH_COLUMNS, "rows": int(len(truth)), "indicators": INDICATORS,
                  "units": "person indicators over every adult 16+; household indicators over every household",
                  "domains": {"person": ["overall", "sex", "age_band", "region", "urban", "tenure"],
                              "household": ["overall", "region", "urban", "tenure"]},
                  "perception_items": {name: {"indicator": ind, "variable": var, "positive": list(pos)}
                                       for name, ind, var, pos in PERCEPTION_ITEMS},
                  "age_bands": dict(zip(AGE_BAND_LABELS, AGE_BANDS))},
    }
    return meta


def write_truth(pop: Population, out_dir, sample: Sample | None = None, truth: pd.DataFrame | None = None) -> list[Path]:
    """Write truth.csv (see :func:`truth_table`) and truth.json (seed, sizes, coefficients)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth = truth_table(pop) if truth is None else truth
    p_csv = out / "truth.csv"
    truth.to_csv(p_csv, index=False)  # shortest repr that round-trips: the identities hold exactly
    p_json = out / "truth.json"
    p_json.write_text(json.dumps(_metadata(pop, sample, truth), indent=2, default=_json_default) + "\n")
    return [p_csv, p_json]


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def _check_args(households: int, seed: int, population_households: int | None, households_per_psu: int,
                replicate: str | None, n_replicates: int | None) -> int:
    """Validate the generator's arguments before any work (one-line errors); returns the
    population size.  The population's size against the sample is checked on the area frame
    (:func:`_select`), also before any household is generated."""
    if int(seed) < 0 or int(seed) >= 2 ** 63:
        raise SurveyError(f"seed must be a whole number from 0 to 2^63 - 1, not {seed}")
    households = int(households)
    n_pop = 20 * households if population_households is None else int(population_households)
    _sample_args(n_pop, households, households_per_psu, replicate)
    if n_replicates is not None and int(n_replicates) < 2:
        raise SurveyError(f"need at least 2 replicates, not {n_replicates}")
    return n_pop


def synth_streamed(households: int = 5_000, seed: int = 1, replicate: str | None = None,
                   population_households: int | None = None, n_replicates: int | None = None,
                   households_per_psu: int = 20, *, min_class_respondents: int = 10,
                   cap: float | None = None) -> tuple[Population, Sample, pd.DataFrame]:
    """The population of :func:`make_population` and the sample of :func:`draw_sample` without
    holding the population: the area frame first, then both stages of selection on it, then the
    households chunk by chunk (:data:`CHUNK_HOUSEHOLDS`), keeping the sampled households (their
    adults and incidents) and adding each chunk's totals per domain cell to the truth.  Memory
    is the sample plus one chunk; time is linear in the population.  Returns (population with
    its areas and ``info`` only, sample, truth table); equal to the in-memory generator's."""
    n_pop = _check_args(households, seed, population_households, households_per_psu, replicate, n_replicates)
    m = int(households_per_psu)
    areas, rng = _make_frame(seed, n_pop)
    sel = _select(areas, int(households), seed, m)
    w = _walk(_chunks(seed, areas, rng), sel["s_idx"] + 1, seed, truth={"cap": cap})
    sample = _complete_sample(sel, w.households, w.persons, w.incidents, seed, replicate, n_replicates, m,
                              min_class_respondents)
    return _streamed_population(seed, areas, w), sample, _truth_rows(w.totals)


def _streamed_population(seed: int, areas: pd.DataFrame, w: _Walked) -> Population:
    """A streamed population: its areas and ``info`` (sizes) only."""
    info = _population_info(seed, areas, w.persons_total, w.incidents_total, w.in_period_total, 160.0, 60)
    return Population(areas=areas, households=pd.DataFrame(), persons=pd.DataFrame(), incidents=pd.DataFrame(),
                      coefficients=_coefficients(), counts={}, info=info)


SYNTH_FILES = {"households.sav", "persons.sav", "incidents.sav", "respondents.sav", "replicates.csv", "truth.csv",
               "truth.json"}


def check_synth_target(target: Path) -> None:
    """The output folder of ``survey synth`` may only be new, empty, made by the tool (its
    marker) or an earlier synthetic survey (nothing but the generator's files: no marker is
    written into the data folder, so that the same seed gives the same files); anything else
    is refused with one line (:func:`survey._atomic.check_target`)."""
    target = Path(target)
    if target.is_dir() and not target.is_symlink() and not is_ours(target):
        names = {e.name for e in os.scandir(target)}
        made = False
        with contextlib.suppress(OSError, ValueError, AttributeError):
            made = str(json.loads((target / "truth.json").read_text(encoding="utf-8")).get("generator", "")
                       ).startswith("survey.synth")  # the generator's own metadata: a folder it made
        if names and (names <= SYNTH_FILES or made):
            recover(target.parent, target.name)
            return
    check_target(target, "synthetic survey")
    recover(target.parent, target.name)


def synth(out_dir, households: int = 5_000, seed: int = 1, replicate: str | None = None,
          population_households: int | None = None, n_replicates: int | None = None,
          households_per_psu: int = 20) -> Path:
    """Generate a population (``population_households``, default 20 x ``households``), draw a
    sample of ``households`` issued households and write the sample files and the truth into
    ``out_dir`` atomically (a temporary sibling folder renamed onto it).  Returns ``out_dir``."""
    target = Path(out_dir)
    _check_args(households, seed, population_households, households_per_psu, replicate, n_replicates)
    check_synth_target(target)  # before any work
    pop, sample, truth = synth_streamed(households, seed, replicate, population_households, n_replicates,
                                        households_per_psu)
    check_synth_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the folder is an ordinary output
        write_sample(sample, tmp)
        write_truth(pop, tmp, sample, truth)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# =============================================================================================
# Screener variant: one respondent file, screener items, no incident file
# =============================================================================================
SCREENER_TYPES = {  # crime type -> item prefix (<prefix>5, <prefix>12, <prefix>n, <prefix>pol)
    "burglary": "burg", "vehicle_theft": "veh", "assault": "asl", "robbery": "rob"}
SCREENER_GROUPS: dict[str, tuple[str, ...]] = {"household": ("burglary", "vehicle_theft"),
                                               "personal": ("assault", "robbery")}
SCR_YES, SCR_NO, SCR_REFUSED, SCR_DONT_KNOW, SCR_NO_ANSWER = 1, 2, 7, 8, 9
SCREENER_MISSING_CODES = (SCR_REFUSED, SCR_DONT_KNOW, SCR_NO_ANSWER)
SCREENER_MISSING_RATES = {SCR_REFUSED: 0.01, SCR_DONT_KNOW: 0.04, SCR_NO_ANSWER: 0.01}
"""Probability of each non-answer on a screener, drawn at random whatever the true answer."""
REPORTED_MISSING_RATES = {SCR_REFUSED: 0.005, SCR_DONT_KNOW: 0.03, SCR_NO_ANSWER: 0.005}
TOO_MANY = 97  # "too many to remember" on the count items
TOO_MANY_FROM = 10  # true counts from which "too many to remember" may be the answer ...
TOO_MANY_SHARE = 0.5  # ... with this probability
SCREENER_CAP = 10  # the spec's cap: {rule: fixed, value: 10}; "too many to remember" takes it
EARLIER_YEARS = 4  # the 5-year screener covers the 12 months and the 4 years before
NEVER_OUT = 5  # safedark: "never goes out alone after dark" (follow-up safewould)
NEVER_OUT_RATE = {16: 0.02, 65: 0.08, 75: 0.20}  # share by age (from the age given)
SCREENER_REGION_LABELS = {**REGIONS, **{k: f"Region {k}" for k in range(9, 31)}}
"""Value labels of the region item: 30 regions labelled, the 8 of the synthetic country present."""
YES_NO_SCREENER = {1: "Yes", 2: "No", 7: "Refused", 8: "Don't know", 9: "No answer"}
SAFE_SCREENER = {1: "Very safe", 2: "Fairly safe", 3: "A bit unsafe", 4: "Very unsafe",
                 NEVER_OUT: "Never goes out alone after dark", 7: "Refused", 8: "Don't know", 9: "No answer"}
SAFE_WOULD = {1: "Very safe", 2: "Fairly safe", 3: "A bit unsafe", 4: "Very unsafe", 7: "Refused",
              8: "Don't know", 9: "No answer"}
WORRY_SCREENER = {1: "Very worried", 2: "Fairly worried", 3: "Not very worried", 4: "Not at all worried",
                  7: "Refused", 8: "Don't know", 9: "No answer"}
COUNT_LABELS = {TOO_MANY: "Too many to remember"}
_SALT_SCREENER = 0x5E1F0003


@dataclass
class ScreenerSample:
    """The screener survey: ``respondents`` (one row per responding household, the file written),
    ``victims_5y`` (the true 5-year status per population unit and type, in the population's
    order; empty when the population was streamed), ``info`` (design summary)."""

    respondents: pd.DataFrame
    victims_5y: dict = field(repr=False)  # crime type -> bool per population unit ({} when streamed)
    info: dict = field(default_factory=dict)


def _victims_5y(part: Population, seed: int, k: int = 0) -> dict[str, np.ndarray]:
    """True 5-year victimization per unit of ``part`` (chunk ``k`` of a population, or a whole
    population of one chunk) for each screener type: a victim in the 12 months, or in the
    EARLIER_YEARS before (probability 1 - exp(-years x the type's mean 12-month count in the
    chunk x the unit's frailty x e^(0.5 prior))).  Chunk 0 draws from the stream
    (_SALT_SCREENER, seed, 5), chunk k > 0 from (_SALT_SCREENER, seed, 5, k)."""
    key = [_SALT_SCREENER, int(seed), 5] + ([int(k)] if k else [])
    rng = np.random.default_rng(key)
    out = {}
    for t in CRIME_TYPES:
        if t.name not in SCREENER_TYPES:
            continue
        frame = part.households if t.unit == "household" else part.persons
        c = part.counts[t.name]
        rate = float(c.mean()) * frame["frailty"].to_numpy() * np.exp(0.5 * frame["prior"].to_numpy())
        earlier = rng.random(c.size) < -np.expm1(-EARLIER_YEARS * rate)
        out[t.name] = (c > 0) | earlier
    return out


def screener_victims_5y(pop: Population, seed: int) -> dict[str, np.ndarray]:
    """True 5-year victimization per population unit and screener type (:func:`_victims_5y` of
    each chunk of the population, in the order of its households and adults)."""
    parts = [_victims_5y(part, seed, k) for k, part in enumerate(_split(pop))]
    return {name: np.concatenate([v[name] for v in parts]) for name in parts[0]}


def _answers(rng, truth: np.ndarray, rates: dict) -> np.ndarray:
    """Codes 1 (``truth``) / 2, with the non-answer codes of ``rates`` drawn at random: whether
    an answer is missing does not depend on the true answer (missing completely at random)."""
    code = np.where(truth, SCR_YES, SCR_NO).astype(np.float64)
    u = rng.random(truth.size)
    lo = 0.0
    for c, p in rates.items():
        code[(u >= lo) & (u < lo + p)] = c
        lo += p
    return code


def draw_screener_sample(pop: Population, n_households: int, seed: int = 1, *, households_per_psu: int = 20,
                         design: bool = True) -> ScreenerSample:
    """The screener survey of a sample of ``n_households`` issued households (the design of
    :func:`draw_sample`; one adult per responding household answers for the household), from a
    population built whole; ``survey synth --variant screener`` streams the same
    (:func:`synth_screener_streamed`).

    Every respondent is asked each screener (12 months and 5 years), the count ("how many
    times", 97 = too many to remember) and reporting to the police when the 12-month screener
    is yes.  Refused (7), don't know (8) and no answer (9) are drawn at random, independently
    of the true answer, so estimates with them left out of the base are unbiased.  Feeling safe:
    respondents who never go out alone after dark answer 5 and say in ``safewould`` how safe
    they would feel (their true answer).  ``design=False`` leaves out strata and PSUs."""
    n_households = int(n_households)
    m = _sample_args(len(pop.households), n_households, households_per_psu)
    sel = _select(pop.areas, n_households, seed, m)
    w = _walk(_split(pop), sel["s_idx"] + 1, seed, screener=True, keep_victims_5y=True)
    return _screener_sample(sel, w, seed, m, design)


def _screener_sample(sel: dict, w: _Walked, seed: int, m: int, design: bool) -> ScreenerSample:
    """The respondent file of a selection ``sel`` from what :func:`_walk` kept of the population
    (the sampled households and adults with their screener values)."""
    base = _complete_sample(sel, w.households, w.persons, w.incidents, seed, None, None, m, 10)
    per = base.persons
    rng = np.random.default_rng([_SALT_SCREENER, int(seed)])
    # the respondent's household and own row among the kept sampled units (both sorted)
    kept_hh, kept_p = w.households, w.persons
    hh_row = np.searchsorted(kept_hh["hhid"].to_numpy(), per["hhid"].to_numpy())
    pkey = kept_p["hhid"].to_numpy().astype(np.int64) * 8 + kept_p["pid"].to_numpy().astype(np.int64)
    p_row = np.searchsorted(pkey, per["hhid"].to_numpy().astype(np.int64) * 8 + per["pid"].to_numpy().astype(np.int64))
    n = len(per)
    cols = {"hhid": per["hhid"].to_numpy(), "pid": per["pid"].to_numpy()}
    if design:
        cols |= {"stratum": per["stratum"].to_numpy(), "psu": per["psu"].to_numpy()}
    cols |= {"region": per["region"].to_numpy(), "urban": per["urban"].to_numpy(),
             "tenure": per["tenure"].to_numpy(), "sex": per["sex"].to_numpy(), "age": per["age"].to_numpy()}
    for t in CRIME_TYPES:
        if t.name not in SCREENER_TYPES:
            continue
        pre = SCREENER_TYPES[t.name]
        units, ix = (kept_hh, hh_row) if t.unit == "household" else (kept_p, p_row)
        count = units[f"scr_n_{t.name}"].to_numpy()[ix]
        a5 = _answers(rng, units[f"scr_v5_{t.name}"].to_numpy()[ix], SCREENER_MISSING_RATES)
        a12 = _answers(rng, count > 0, SCREENER_MISSING_RATES)
        asked = a12 == SCR_YES
        k = count.astype(np.float64)
        too_many = (count >= TOO_MANY_FROM) & (rng.random(n) < TOO_MANY_SHARE)
        k = np.where(too_many, TOO_MANY, k)
        pol = _answers(rng, units[f"scr_rep_{t.name}"].to_numpy()[ix], REPORTED_MISSING_RATES)
        cols[f"{pre}5"] = a5
        cols[f"{pre}12"] = a12
        cols[f"{pre}n"] = np.where(asked, k, np.nan)
        cols[f"{pre}pol"] = np.where(asked, pol, np.nan)
    recode = {9: SCR_REFUSED}  # the population's 9 "refused" is 7 here; 8 stays "don't know"
    safe = per["safedark"].to_numpy().astype(np.float64)
    safe = np.where(safe == 9, recode[9], safe)
    age = per["age"].to_numpy()
    p_never = np.select([age >= 75, age >= 65], [NEVER_OUT_RATE[75], NEVER_OUT_RATE[65]], NEVER_OUT_RATE[16])
    never = rng.random(n) < p_never
    cols["safedark"] = np.where(never, NEVER_OUT, safe)
    cols["safewould"] = np.where(never, safe, np.nan)
    for item in ("worryburg", "worryviol"):
        x = per[item].to_numpy().astype(np.float64)
        cols[item] = np.where(x == 9, recode[9], x)
    cols["wt_household"] = per["wt_household"].to_numpy()
    cols["wt_person"] = per["wt_person"].to_numpy()
    respondents = pd.DataFrame(cols)
    info = {k: v for k, v in base.info.items() if k != "replicate"}
    info |= {"variant": "screener", "design": "stratified two-stage (strata, PSU)" if design else
             "weights only: no strata or PSU in the file", "never_goes_out": int(never.sum())}
    return ScreenerSample(respondents=respondents, victims_5y=w.victims_5y or {}, info=info)


def screener_truth(pop: Population, victims_5y: dict[str, np.ndarray]) -> pd.DataFrame:
    """Population values for the screener survey: every indicator of :func:`truth_table` for
    its types and groups (counts capped at SCREENER_CAP, as the spec), perceptions, and the
    5-year prevalence of ``<type>_5y`` and ``<group>_5y``."""
    types = tuple(SCREENER_TYPES)
    totals = _truth_totals(pop, SCREENER_CAP, types, SCREENER_GROUPS, victims_5y=victims_5y)
    return _truth_rows(totals, types, SCREENER_GROUPS)


def synth_screener_streamed(households: int = 5_000, seed: int = 1, population_households: int | None = None,
                            households_per_psu: int = 20, design: bool = True
                            ) -> tuple[Population, ScreenerSample, pd.DataFrame]:
    """The screener survey of :func:`draw_screener_sample` and its truth (:func:`screener_truth`)
    without holding the population, as :func:`synth_streamed`: arguments and the population's
    size checked on the area frame, then the households chunk by chunk, each giving up its
    sampled units (with their screener values) and its truth totals.  Returns (population with
    its areas and ``info`` only, sample (``victims_5y`` empty: the population's 5-year status is
    not kept), truth table); equal to the in-memory generator's."""
    n_pop = _check_args(households, seed, population_households, households_per_psu, None, None)
    m = int(households_per_psu)
    areas, rng = _make_frame(seed, n_pop)
    sel = _select(areas, int(households), seed, m)
    types = tuple(SCREENER_TYPES)
    truth = {"cap": SCREENER_CAP, "types": types, "groups": SCREENER_GROUPS}
    w = _walk(_chunks(seed, areas, rng), sel["s_idx"] + 1, seed, screener=True, truth=truth)
    sample = _screener_sample(sel, w, seed, m, design)
    return _streamed_population(seed, areas, w), sample, _truth_rows(w.totals, types, SCREENER_GROUPS)


def _screener_labels(design: bool) -> dict:
    labels = {
        "hhid": ("Household (and respondent) identifier", None),
        "region": ("Region", SCREENER_REGION_LABELS),
        "safedark": ("How safe do you feel walking alone in this area after dark?", SAFE_SCREENER),
        "safewould": ("(Never goes out alone after dark) How safe would you feel?", SAFE_WOULD),
        "worryburg": ("How worried are you about having your home broken into?", WORRY_SCREENER),
        "worryviol": ("How worried are you about being physically attacked?", WORRY_SCREENER),
        "wt_household": ("Household weight (household crimes)", None),
        "wt_person": ("Person weight (personal crimes and attitudes)", None),
    }
    what = {"burglary": ("your home been broken into (burglary)", "household"),
            "vehicle_theft": ("a vehicle of your household been stolen or something stolen from it", "household"),
            "assault": ("anyone attacked you or threatened you with violence", "person"),
            "robbery": ("anyone taken something from you by force or threat (robbery)", "person")}
    for name, pre in SCREENER_TYPES.items():
        q, _ = what[name]
        labels[f"{pre}5"] = (f"In the last five years, has {q}?", YES_NO_SCREENER)
        labels[f"{pre}12"] = (f"In the last 12 months, has {q}?", YES_NO_SCREENER)
        labels[f"{pre}n"] = (f"How many times in the last 12 months ({name})?", COUNT_LABELS)
        labels[f"{pre}pol"] = (f"Did you or anyone report it to the police ({name}, last 12 months)?",
                               YES_NO_SCREENER)
    return labels


def screener_missing_ranges(columns) -> dict:
    """The SPSS user-missing codes declared for the screener file's items."""
    items = {f"{pre}{suffix}" for pre in SCREENER_TYPES.values() for suffix in ("5", "12", "pol")}
    items |= {"safedark", "safewould", "worryburg", "worryviol"}
    return {c: list(SCREENER_MISSING_CODES) for c in columns if c in items}


def synth_screener(out_dir, households: int = 5_000, seed: int = 1, population_households: int | None = None,
                   households_per_psu: int = 20, design: bool = True) -> Path:
    """Generate the screener survey (``respondents.sav``, ``truth.csv``, ``truth.json``) into
    ``out_dir`` atomically, streaming the population (:func:`synth_screener_streamed`).  See
    :func:`draw_screener_sample` and :func:`screener_truth`."""
    target = Path(out_dir)
    _check_args(households, seed, population_households, households_per_psu, None, None)
    check_synth_target(target)  # before any work
    pop, sample, truth = synth_screener_streamed(households, seed, population_households, households_per_psu,
                                                 design)
    check_synth_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        df = sample.respondents
        _write_sav(df, tmp / "respondents.sav", "Synthetic screener survey: respondents",
                   labels=_screener_labels(design), missing_ranges=screener_missing_ranges(df.columns))
        truth.to_csv(tmp / "truth.csv", index=False)
        meta = {
            "generator": "survey.synth --variant screener", "seed": int(seed), "population": pop.info,
            "sample": sample.info | {"respondents": int(len(df))},
            "crime_types": {name: {"items": [f"{pre}5", f"{pre}12", f"{pre}n", f"{pre}pol"],
                                   "unit": next(t.unit for t in CRIME_TYPES if t.name == name)}
                            for name, pre in SCREENER_TYPES.items()},
            "groups": {k: list(v) for k, v in SCREENER_GROUPS.items()},
            "missing_codes": {"7": "refused", "8": "don't know", "9": "no answer",
                              "rates_screener": {str(k): v for k, v in SCREENER_MISSING_RATES.items()},
                              "rates_reported": {str(k): v for k, v in REPORTED_MISSING_RATES.items()},
                              "mechanism": "missing completely at random (independent of the true answer)"},
            "too_many_to_remember": {"code": TOO_MANY, "from_count": TOO_MANY_FROM, "share": TOO_MANY_SHARE,
                                     "cap": SCREENER_CAP},
            "five_year": f"victim in the 12 months or in the {EARLIER_YEARS} years before",
            "truth": {"columns": TRUTH_COLUMNS, "rows": int(len(truth)),
                      "cap": SCREENER_CAP, "indicators": INDICATORS,
                      "five_year_types": [f"{n}_5y" for n in [*SCREENER_TYPES, *SCREENER_GROUPS]]},
        }
        (tmp / "truth.json").write_text(json.dumps(meta, indent=2, default=_json_default) + "\n")
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def main(argv: list[str] | None = None) -> int:
    """``survey synth --out DIR --households N --seed S [--replicates JKn|bootstrap]``."""
    parser = argparse.ArgumentParser(prog="survey synth",
                                     description="Synthetic victimization survey with known population truth")
    parser.add_argument("--out", default="data/synthetic", help="output folder (default data/synthetic)")
    parser.add_argument("--households", type=int, default=5_000, help="issued sample households (default 5000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--replicates", choices=["JKn", "bootstrap"], default=None,
                        help="also write replicate weights (rwp*, rwh*)")
    parser.add_argument("--n-replicates", type=int, default=None, help="number of replicates (default 100)")
    parser.add_argument("--population-households", type=int, default=None,
                        help="households in the population (default 20 x --households)")
    parser.add_argument("--households-per-psu", type=int, default=20, help="households drawn per PSU (default 20)")
    parser.add_argument("--variant", choices=["national", "screener"], default="national",
                        help="national: household, person and incident files (default); screener: one "
                             "respondent file with 12-month and 5-year screeners (CSEW/ICVS style)")
    parser.add_argument("--no-design", action="store_true",
                        help="screener variant: write no strata or PSU (weights only)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    if args.no_design and args.variant != "screener":
        print("survey: error: --no-design applies to --variant screener only", file=sys.stderr)
        return 2
    if args.variant == "screener":
        if args.replicates:
            print("survey: error: --replicates applies to the national variant only", file=sys.stderr)
            return 2
        try:
            out = synth_screener(args.out, households=args.households, seed=args.seed,
                                 population_households=args.population_households,
                                 households_per_psu=args.households_per_psu, design=not args.no_design)
        except SurveyError as e:
            print(f"survey: error: {e}", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"survey: error: {e.strerror or e}: {getattr(e, 'filename', '')}", file=sys.stderr)
            return 2
        meta = json.loads((out / "truth.json").read_text())
        s = meta["sample"]
        print(f"wrote {out}: {s['households_issued']:,} households issued, {s['respondents']:,} respondents "
              f"(screener survey; {s['design']}); population {meta['population']['households']:,} households, "
              f"truth {meta['truth']['rows']:,} rows; seed {args.seed}; {time.perf_counter() - t0:.1f} s")
        return 0
    try:
        out = synth(args.out, households=args.households, seed=args.seed, replicate=args.replicates,
                    population_households=args.population_households, n_replicates=args.n_replicates,
                    households_per_psu=args.households_per_psu)
    except SurveyError as e:
        print(f"survey: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"survey: error: {e.strerror or e}: {getattr(e, 'filename', '')}", file=sys.stderr)
        return 2
    meta = json.loads((out / "truth.json").read_text())
    s, p = meta["sample"], meta["population"]
    rep = f", {s['replicate']['n_replicates']} {s['replicate']['method']} replicates" if s["replicate"] else ""
    print(f"wrote {out}: {s['households_issued']:,} households issued ({s['households_responding']:,} responding), "
          f"{s['persons']:,} respondents, {s['incidents']:,} incidents{rep}; population {p['households']:,} "
          f"households, truth {meta['truth']['rows']:,} rows; seed {args.seed}; "
          f"{time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


# =============================================================================================
# Area covariates for small-area models (survey.sae, parameter sets' small_areas section)
# =============================================================================================
AREA_NOISE = 0.05
"""Multiplicative noise (standard deviation of the log) of :func:`area_covariates`' recorded
rates."""
AREA_REPORTING = 0.5
"""Share of victimized units a recorded-crime covariate counts (a stand-in for reporting and
recording)."""


def area_covariates(truth: pd.DataFrame, seed: int = 1, domain: str = "region", noise: float = AREA_NOISE,
                    reporting: float = AREA_REPORTING) -> pd.DataFrame:
    """An auxiliary file of area covariates (one row per value of ``domain``) from a population's
    truth table (:func:`truth_table`, ``truth.csv``), as a register would give them for small-area
    models (:mod:`survey.sae`).

    Columns: ``area`` (the domain's published value), ``households`` and ``adults`` (population
    counts: the denominators of the truth's prevalence), their shares ``share_households`` and
    ``share_adults`` (for benchmarking), and for each crime type and group of the truth
    ``recorded_<crime>_per_1000``: a stand-in for police-recorded crime, 10 x the true
    prevalence (%) x ``reporting`` x exp(N(0, ``noise``^2)) per 1,000 households (household
    crimes) or adults (personal ones).  Correlated with the true area rates by construction
    (real recorded crime is a weaker covariate); the noise is drawn with ``seed``."""
    t = truth[(truth["indicator"] == "prevalence") & (truth["domain"] == domain)]
    if t.empty:
        raise SurveyError(f"truth table: no prevalence rows for domain '{domain}' ({len(truth)} rows)")
    areas = list(dict.fromkeys(t["domain_value"].astype(str)))
    out = pd.DataFrame({"area": areas})
    for unit, col in (("household", "households"), ("person", "adults")):
        d = t[t["unit"] == unit].drop_duplicates("domain_value").set_index("domain_value")["denominator"]
        if len(d):
            out[col] = [int(d.get(a, 0)) for a in areas]
            out[f"share_{col}"] = out[col] / out[col].sum()
    rng = np.random.default_rng([int(seed), 20_240])
    for crime, g in t.groupby("crime_type", sort=False):
        rate = g.set_index(g["domain_value"].astype(str))["value"].reindex(areas).to_numpy(dtype=float)
        out[f"recorded_{crime}_per_1000"] = 10.0 * rate * reporting * np.exp(rng.normal(0.0, noise, len(areas)))
    return out


def write_area_covariates(path, truth: pd.DataFrame | str | Path, seed: int = 1, domain: str = "region") -> Path:
    """Write :func:`area_covariates` of ``truth`` (a truth table or the path of a ``truth.csv``)
    to ``path`` (CSV, written atomically: a temporary sibling renamed onto it)."""
    if not isinstance(truth, pd.DataFrame):
        truth = pd.read_csv(truth)
    frame = area_covariates(truth, seed=seed, domain=domain)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            frame.to_csv(fh, index=False, lineterminator="\n", float_format="%.6g")
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
