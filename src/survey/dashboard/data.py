"""The dashboards' data layer: published aggregate outputs of batch runs, never microdata.

A publication root (default ``<project>/outputs``) holds one folder per run written by
``survey run`` / ``survey batch``.  :class:`Publication` discovers the run folders that
succeeded, and each :class:`Run` opens only the file names in :data:`ALLOWED_FILES`, inside its
own folder (the resolved path must stay there), reads each once and keeps it (rendering never
re-reads a file).  The indicator table is checked against :data:`INDICATOR_COLUMNS`, the schema
``survey.indicators.TABLE_COLUMNS`` (a copy, pinned by a test, so that a dashboard kernel does not
import the estimation modules and scipy).

Every value a dashboard gets from a widget is untrusted (any websocket client can set it):
:func:`check_choice` compares it with an allow-list built from the data (exact string match),
and the tables are filtered with boolean masks, never with ``query``/``eval`` or file paths
built from input.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SurveyError

ALLOWED_FILES = frozenset({
    "manifest.json", "indicators.parquet", "indicators.meta.json", "lorenz.csv", "risk_models.csv",
    "risk_margins.csv", "risk_performance.csv", "trend.csv", "comparison.csv", "tile_grid.csv",
    "translations.csv", "areas.geojson", "small_areas.csv",
})
"""The only files a dashboard opens, each inside a run folder of the publication root."""

INDICATOR_COLUMNS = [
    "survey", "period", "indicator", "crime_type", "crime_label", "iccs", "unit", "domain", "domain_value",
    "estimate", "se", "ci_low", "ci_high", "df", "cv", "deff", "n", "n_cases", "weighted_base",
    "reliability", "flag_reason", "suppressed", "suppression_reason", "measure", "cap_rule", "definition",
    "sdg_indicator", "sdg_deviation", "numerator", "denominator",
]
"""``survey.indicators.TABLE_COLUMNS`` (the indicator table schema; equal, by a test)."""

MICRODATA_EXTENSIONS = (".sav", ".zsav", ".dta", ".sas7bdat", ".xpt", ".por")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

PERCEPTION_INDICATORS = ("feeling_safe", "worry", "likelihood", "likert")
VICTIMIZATION_INDICATORS = ("prevalence", "incidence", "concentration", "repeat_victims", "repeat_incidents",
                            "reporting_rate", "dark_figure", "reporting_rate_victims", "multiple_victimization")
REPEAT_INDICATORS = ("concentration", "repeat_victims", "repeat_incidents", "multiple_victimization", "gini",
                     "gini_victims")
HEADLINE_INDICATORS = ("prevalence", "incidence", "reporting_rate", "feeling_safe")

RISK_MODEL_COLUMNS = ("term", "odds_ratio", "or_ci_low", "or_ci_high", "p_value", "crime_type", "n")
RISK_PERFORMANCE_COLUMNS = ("crime_type", "model", "subgroup", "group", "n", "weighted_n", "events", "observed",
                            "mean_predicted", "auc", "brier", "log_loss", "note")
LORENZ_COLUMNS = ("crime_type", "over", "domain", "domain_value", "population_share", "victimization_share")
COMPARISON_COLUMNS = ("indicator", "crime_type", "domain", "domain_value", "a", "b", "estimate_a", "estimate_b",
                      "difference", "p_value", "ci_low", "ci_high", "significant")
TILE_GRID_COLUMNS = ("domain", "domain_value", "row", "col")
TRANSLATION_COLUMNS = ("kind", "name", "value", "language", "text")
TREND_COLUMNS = ("indicator", "crime_type", "domain", "domain_value", "period", "estimate", "ci_low", "ci_high")
CROSS = " × "


class DashboardInputError(SurveyError, ValueError):
    """A widget value that is not one of the allowed choices (refused, never used)."""


class PublicationError(SurveyError, ValueError):
    """A publication root or run folder that cannot be read as published outputs."""


def check_choice(value, allowed, what: str):
    """``value`` if it is exactly one of ``allowed`` (strings compared as strings), else a
    :class:`DashboardInputError` that does not echo long input."""
    if isinstance(value, str) and value in allowed:
        return value
    shown = repr(value) if isinstance(value, str) and len(value) <= 40 else f"<{type(value).__name__}>"
    raise DashboardInputError(f"refused {what} {shown}: not one of the published choices")


def default_root() -> Path:
    """``$SURVEY_DASHBOARD_OUTPUTS``, else ``<project root>/outputs``."""
    env = os.environ.get("SURVEY_DASHBOARD_OUTPUTS")
    if env:
        return Path(env).expanduser().resolve()
    from ..params import project_root

    return project_root() / "outputs"


def _within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


@dataclass
class Run:
    """One published run folder; files are read on first use and kept."""

    name: str
    folder: Path
    manifest: dict
    _cache: dict = field(default_factory=dict, repr=False)

    # ----- files ------------------------------------------------------------------------------
    def path(self, file: str) -> Path:
        if file not in ALLOWED_FILES:
            raise PublicationError(f"{file!r} is not a published aggregate file")
        p = (self.folder / file).resolve()
        if p.parent != self.folder or p.suffix.lower() in MICRODATA_EXTENSIONS:
            raise PublicationError(f"{file!r} resolves outside the run folder {self.name}")
        return p

    def has(self, file: str) -> bool:
        return self.path(file).is_file()

    def _read(self, file: str):
        if file in self._cache:
            return self._cache[file]
        p = self.path(file)
        if not p.is_file():
            out = None
        else:
            # every file through Python's open() (one choke point, visible to audit hooks)
            with open(p, "rb") as f:
                if file.endswith(".parquet"):
                    out = pd.read_parquet(f)
                elif file.endswith((".json", ".geojson")):
                    out = json.loads(f.read().decode("utf-8"))
                else:
                    out = pd.read_csv(f, dtype={"domain_value": str, "group": str, "level": str, "value": str,
                                                "name": str, "text": str, "period": str}, encoding="utf-8")
        self._cache[file] = out
        return out

    def _table(self, file: str, columns) -> pd.DataFrame | None:
        t = self._read(file)
        if t is None:
            return None
        missing = [c for c in columns if c not in t.columns]
        if missing:
            raise PublicationError(f"{self.name}/{file}: missing column(s) {', '.join(missing)}")
        return t

    @property
    def indicators(self) -> pd.DataFrame:
        if "_indicators" not in self._cache:
            t = self._table("indicators.parquet", INDICATOR_COLUMNS)
            if t is None:
                raise PublicationError(f"run {self.name} has no indicators.parquet")
            t = t[INDICATOR_COLUMNS].copy()
            for c in ("indicator", "crime_type", "domain", "domain_value", "period", "measure", "unit", "reliability",
                      "flag_reason", "suppression_reason", "crime_label", "survey"):
                t[c] = t[c].astype(object).where(t[c].notna(), "").astype(str)
            t["suppressed"] = t["suppressed"].astype(bool)
            self._cache["_indicators"] = t
        return self._cache["_indicators"]

    @property
    def meta(self) -> dict:
        return self._read("indicators.meta.json") or {}

    @property
    def lorenz(self) -> pd.DataFrame | None:
        return self._table("lorenz.csv", LORENZ_COLUMNS)

    @property
    def risk_models(self) -> pd.DataFrame | None:
        return self._table("risk_models.csv", RISK_MODEL_COLUMNS)

    @property
    def risk_performance(self) -> pd.DataFrame | None:
        return self._table("risk_performance.csv", RISK_PERFORMANCE_COLUMNS)

    @property
    def comparison(self) -> pd.DataFrame | None:
        return self._table("comparison.csv", COMPARISON_COLUMNS)

    @property
    def tile_grid(self) -> pd.DataFrame | None:
        return self._table("tile_grid.csv", TILE_GRID_COLUMNS)

    @property
    def areas(self) -> dict | None:
        """areas.geojson: the map areas of the spec's domains (a FeatureCollection whose features
        carry ``domain`` and ``domain_value``, checked when the run published it), or None."""
        a = self._read("areas.geojson")
        if a is None:
            return None
        if not isinstance(a, dict) or not isinstance(a.get("features"), list) or not all(
                isinstance(f, dict) and isinstance(f.get("properties"), dict) for f in a["features"]):
            raise PublicationError(f"{self.name}/areas.geojson: not a FeatureCollection of the run's areas")
        return a

    @property
    def trend(self) -> pd.DataFrame | None:
        """trend.csv as long rows (TREND_COLUMNS): the published file is wide (one estimate
        column per wave, then change/p/significant columns per pair), without intervals."""
        def compute():
            t = self._read("trend.csv")
            keys = ["indicator", "crime_type", "domain", "domain_value"]
            if t is None or any(c not in t.columns for c in keys):
                return None
            if all(c in t.columns for c in TREND_COLUMNS):
                return t[list(TREND_COLUMNS)]
            waves = [c for c in t.columns if c not in keys and not str(c).startswith(("change ", "p ", "significant "))]
            long = t.melt(id_vars=keys, value_vars=waves, var_name="period", value_name="estimate")
            long["ci_low"] = np.nan
            long["ci_high"] = np.nan
            long = long[pd.to_numeric(long["estimate"], errors="coerce").notna()]
            for c in keys + ["period"]:
                long[c] = long[c].astype(str)
            return long[list(TREND_COLUMNS)].reset_index(drop=True)
        return self._memo("trend", compute)

    def translation(self, kind: str, name: str, lang: str, value: str = "") -> str:
        """The spec's label of (kind, name, value) in ``lang`` from translations.csv, or ""."""
        def compute():
            t = self._table("translations.csv", TRANSLATION_COLUMNS)
            if t is None:
                return {}
            t = t.fillna("")
            return {(str(k), str(n), str(v), str(la)): str(x)
                    for k, n, v, la, x in zip(t["kind"], t["name"], t["value"], t["language"], t["text"])}
        return self._memo("translations", compute).get((kind, str(name), str(value), lang), "")

    def value_translation(self, value: str, lang: str) -> str:
        """The spec's label of a domain value in ``lang`` whatever its domain (the parts of a
        crossed domain come from their own domains), or ""."""
        def compute():
            self.translation("title", "", lang)
            out: dict = {}
            for (k, _n, v, la), x in self._memo("translations", dict).items():
                if k == "value":
                    out.setdefault((v, la), x)
            return out
        return self._memo("value_translations", compute).get((str(value), lang), "")

    # ----- allow-lists ------------------------------------------------------------------------
    # The published tables never change once read, so every look-up below is computed once per
    # run and argument and kept (a filter change re-uses them instead of masking the table again);
    # lists are returned as copies, frames are shared and must not be modified by callers.
    def _memo(self, key, compute):
        memo = self._cache.setdefault("_memo", {})
        if key not in memo:
            memo[key] = compute()
        return memo[key]

    def _positions(self) -> dict:
        """Row positions of the indicator table by (indicator, crime type, domain), in table order."""
        def compute():
            t = self.indicators
            out: dict = {}
            for i, key in enumerate(zip(t["indicator"].tolist(), t["crime_type"].tolist(), t["domain"].tolist())):
                out.setdefault(key, []).append(i)
            return {k: np.asarray(v, dtype=np.intp) for k, v in out.items()}
        return self._memo("positions", compute)

    @property
    def survey(self) -> str:
        def compute():
            t = self.indicators
            return str(t["survey"].iloc[0]) if len(t) else ""
        return self._memo("survey", compute)

    def periods(self) -> list[str]:
        return list(self._memo("periods", lambda: list(dict.fromkeys(self.indicators["period"]))))

    def indicator_codes(self, among=None) -> list[str]:
        codes = self._memo("indicator_codes", lambda: set(self.indicators["indicator"]))
        if not among:
            return list(self._memo("indicator_list", lambda: list(dict.fromkeys(self.indicators["indicator"]))))
        return [c for c in among if c in codes]

    def crime_types(self, indicator: str | None = None, among=None) -> list[str]:
        key = indicator if indicator is None or isinstance(indicator, str) else tuple(indicator)

        def compute():
            t = self.indicators
            if isinstance(indicator, str):
                t = t[t["indicator"].to_numpy() == indicator]
            elif indicator is not None:
                t = t[t["indicator"].isin(list(indicator)).to_numpy()]
            return list(dict.fromkeys(t["crime_type"]))
        out = self._memo(("crime_types", key), compute)
        return [c for c in out if among is None or c in among]

    def domains(self, indicator: str | None = None, crime_type: str | None = None) -> list[str]:
        def compute():
            t = self.indicators
            m = np.ones(len(t), dtype=bool)
            if indicator is not None:
                m &= t["indicator"].to_numpy() == indicator
            if crime_type is not None:
                m &= t["crime_type"].to_numpy() == crime_type
            return list(dict.fromkeys(t.loc[m, "domain"]))
        return list(self._memo(("domains", indicator, crime_type), compute))

    def crime_label(self, crime_type: str) -> str:
        def compute():
            t = self.indicators
            hit = t.loc[t["crime_type"].to_numpy() == crime_type, "crime_label"]
            return str(hit.iloc[0]) if len(hit) and hit.iloc[0] else crime_type
        return self._memo(("crime_label", crime_type), compute)

    def cells(self, indicator: str, crime_type: str, domain: str, period: str | None = None) -> pd.DataFrame:
        """The published rows of one indicator, crime type and domain (exact look-ups, no query)."""
        def compute():
            t = self.indicators
            pos = self._positions().get((indicator, crime_type, domain))
            sub = t.iloc[pos] if pos is not None else t.iloc[:0]
            if period is not None:
                sub = sub[sub["period"].to_numpy() == period]
            return sub
        return self._memo(("cells", indicator, crime_type, domain, period), compute)

    def changes(self, indicator: str, crime_type: str, domain: str) -> pd.DataFrame | None:
        """comparison.csv rows (change since the previous wave) for one indicator/crime/domain."""
        def compute():
            c = self.comparison
            if c is None:
                return None
            m = ((c["indicator"].to_numpy() == indicator) & (c["crime_type"].to_numpy() == crime_type)
                 & (c["domain"].to_numpy() == domain))
            return c[m]
        return self._memo(("changes", indicator, crime_type, domain), compute)

    def files_used(self) -> list[str]:
        return sorted(f for f in ALLOWED_FILES if f in self._cache)


class Publication:
    """The run folders of a publication root: the dashboards' only data source."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser().resolve() if root is not None else default_root()
        if not self.root.is_dir():
            raise PublicationError(f"publication root {self.root} is not a folder (run `survey batch` first)")
        self.runs: dict[str, Run] = {}
        for d in sorted(self.root.iterdir()):
            if not d.is_dir() or d.is_symlink() or not RUN_NAME.match(d.name):
                continue
            folder = d.resolve()
            if not _within(folder, self.root) or not (folder / "indicators.parquet").is_file():
                continue
            mf = folder / "manifest.json"
            if not mf.is_file():
                continue
            with open(mf, encoding="utf-8") as f:
                manifest = json.load(f)
            if manifest.get("status", "succeeded") != "succeeded":
                continue
            self.runs[d.name] = Run(d.name, folder, manifest)

    def run_names(self) -> list[str]:
        return list(self.runs)

    def run(self, name) -> Run:
        return self.runs[check_choice(name, self.runs, "run")]

    def default_run(self, prefer=("demo",)) -> str | None:
        for p in prefer:
            if p in self.runs:
                return p
        return next(iter(self.runs), None)


_PUBLICATIONS: dict[Path, Publication] = {}


def publication(root: str | Path | None = None) -> Publication:
    """A :class:`Publication`, one per root per process (tables stay in memory between apps)."""
    key = Path(root).expanduser().resolve() if root is not None else default_root()
    if key not in _PUBLICATIONS:
        _PUBLICATIONS[key] = Publication(key)
    return _PUBLICATIONS[key]
