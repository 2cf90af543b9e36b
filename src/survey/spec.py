"""Survey specs: the declarative YAML description of a survey (schema version 1).

A national office describes its microdata once — files and their links, the design,
victimization (incident file or respondent items), perception items, domains and the
publication rule — and every notebook, batch run and dashboard works from it.  The schema is
documented in ``specs/SCHEMA.md``; :func:`read_spec` parses and validates it, turning every
problem into one ``SpecError`` line naming the spec file and the key.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import SurveyError

SCHEMA_VERSION = 1
Code = int | float | str


class SpecError(SurveyError, ValueError):
    """The spec file is missing, not YAML, or does not follow the schema."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


LANGUAGE = __import__("re").compile(r"^[a-z]{2}(-[A-Z]{2})?$")


def _split_text(value, where: str):
    """A label given in several languages (``{en: Burglary, fr: Cambriolage}``): (the English
    text, or the first given, for the tables; the mapping for translations)."""
    if not isinstance(value, dict):
        return value, None
    if not value:
        raise ValueError(f"{where}: a label in several languages needs at least one language")
    bad = [k for k in value if not isinstance(k, str) or not LANGUAGE.match(k)]
    if bad:
        raise ValueError(f"{where}: '{bad[0]}' is not a language code (en, fr, es, pt-BR...)")
    if not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{where}: each language's label is text")
    return value.get("en", next(iter(value.values()))), dict(value)


class _Labelled(_Model):
    """A model whose ``label`` may be given per language: ``label`` holds the English (or first)
    text that the tables carry, ``label_i18n`` every language's."""

    label_i18n: dict[str, str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _languages(cls, data):
        if isinstance(data, dict) and isinstance(data.get("label"), dict):
            data = dict(data)
            data["label"], data["label_i18n"] = _split_text(data["label"], "label")
        return data


# ---------------------------------------------------------------------------------------------
# files and design
# ---------------------------------------------------------------------------------------------
class LinkSpec(_Model):
    to: str
    on: list[str]
    unmatched: Literal["error", "exclude"] = "error"


class CombineSpec(_Model):
    """Rows of the design file that are one unit over the reference period (NCVS: one row per
    household per 6-month interview, the household is ``IDHH`` over the collection year).

    key: columns identifying the unit across its rows.  weights: how its rows' weights make
    the unit's weight, as the survey's documentation prescribes: ``sum`` (each row's weight is
    the row's share of the period, as NCVS collection-year weights: the population total is
    kept), ``mean`` (each row's weight stands for the whole population), ``first`` / ``last``
    (in ``order``).  order: columns ordering a unit's rows in time (default: file order); the
    unit's domain and perception values are those of its last respondent row that answered.
    period: label of the period the combined unit covers (default: the spec's ``period``)."""

    key: list[str]
    weights: Literal["sum", "mean", "first", "last"]
    order: list[str] = Field(default_factory=list)
    period: str | None = None

    @field_validator("key")
    @classmethod
    def _some(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("combine.key names at least one column")
        return v


class FileSpec(_Model):
    path: str
    unit: Literal["household", "person", "incident"]
    keys: list[str] = Field(default_factory=list)
    link: LinkSpec | None = None
    respondents: str | None = None  # expression: rows that are respondents
    columns: list[str] = Field(default_factory=list)  # extra columns to keep
    combine: CombineSpec | None = None  # rows that are one unit over the reference period
    encoding: str | None = None  # CSV files: the text encoding (default UTF-8)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v):
        import codecs

        if v is not None:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"unknown encoding '{v}' (e.g. utf-8, latin-1, cp1252)") from None
        return v


class ReplicateSpec(_Model):
    """Replicate weights: a list of columns or a regular expression, or one of those per unit
    (``{household: "^rwh", person: "^rwp"}``) to go with per-unit ``weights``."""

    columns: str | list[str] | dict[Literal["household", "person"], str | list[str]]
    method: Literal["BRR", "Fay", "JK1", "JKn", "bootstrap", "successive-difference", "ACS", "other"]
    rho: float | None = None
    scale: float | None = None
    rscales: list[float] | None = None
    mse: bool = False


class EngineSpec(_Model):
    """In memory or streamed (``design.engine``): ``auto`` streams when the design file's
    estimated in-memory size (rows x used columns x 8 bytes, from the Parquet footer) exceeds
    ``memory_limit`` (default: half the available memory); ``chunk_rows`` rows per batch."""

    mode: Literal["auto", "memory", "stream"] = "auto"
    chunk_rows: int = Field(default=65_536, gt=0, le=100_000_000)
    memory_limit: int | str | None = None

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, v):
        if v is not None:
            from .stream import parse_size

            parse_size(v, "memory_limit")
        return v


class DesignSpec(_Model):
    file: str
    weights: str | dict[Literal["household", "person"], str]
    strata: str | list[str] | None = None
    psu: str | list[str] | None = None
    fpc: str | list[str] | None = None
    nest: bool = False
    lonely_psu: Literal["fail", "remove", "certainty", "adjust", "average"] = "fail"
    replicate: ReplicateSpec | None = None
    engine: EngineSpec = Field(default_factory=EngineSpec)

    def weight_for(self, unit: str, default_unit: str) -> str:
        """The weight column for household- or person-level estimates."""
        if isinstance(self.weights, str):
            if unit != default_unit:
                raise SpecError(f"{unit}-level estimates need design.weights: {{{unit}: <column>, ...}}")
            return self.weights
        if unit not in self.weights:
            raise SpecError(f"design.weights has no {unit} weight (has {', '.join(self.weights)})")
        return self.weights[unit]

    def weight_columns(self) -> list[str]:
        return [self.weights] if isinstance(self.weights, str) else list(dict.fromkeys(self.weights.values()))

    def replicate_columns_for(self, unit: str):
        """The replicate weight columns (list or regex) for household- or person-level estimates."""
        cols = self.replicate.columns
        if isinstance(cols, dict):
            if unit not in cols:
                raise SpecError(f"design.replicate.columns has no {unit} entry (has {', '.join(cols)})")
            return cols[unit]
        return cols

    def replicate_needs_all_columns(self) -> bool:
        """A regular expression can only be matched against every column of the file."""
        if self.replicate is None:
            return False
        cols = self.replicate.columns
        parts = cols.values() if isinstance(cols, dict) else [cols]
        return any(isinstance(p, str) for p in parts)


# ---------------------------------------------------------------------------------------------
# victimization
# ---------------------------------------------------------------------------------------------
class SkipRule(_Model):
    """A declared skip pattern: the item was not asked where ``variable`` has one of ``codes``
    (e.g. the 12-month follow-up is not asked when the 5-year screener is 2 "no")."""

    variable: str
    codes: list[Code]


class ItemCodes(_Model):
    """A screener: ``yes`` codes make a victim.  Item nonresponse (``missing`` codes such as
    refused and don't know, and the file's own user-missing codes) leaves the item's base.  A
    blank (system-missing) answer is "not asked": it counts as no only where a declared skip
    pattern explains it (``skip``), or for every blank with ``blank: "no"``; otherwise it is
    missing too.  Each case is counted in the row accounting."""

    variable: str
    yes: list[Code] = Field(default_factory=lambda: [1])
    missing: list[Code] = Field(default_factory=list)
    skip: SkipRule | None = None
    blank: Literal["missing", "no"] = "missing"


class CountItem(_Model):
    variable: str
    dont_know: list[Code] = Field(default_factory=list)  # "too many to remember" etc.
    dont_know_value: float | Literal["cap"] = "cap"


class ReportedItem(_Model):
    """Respondent-level: did the victim (or anyone) report it to the police."""

    variable: str
    yes: list[Code] = Field(default_factory=lambda: [1])
    no: list[Code] = Field(default_factory=lambda: [2])
    unknown: list[Code] = Field(default_factory=list)


class CrimeType(_Labelled):
    name: str
    label: str | None = None
    iccs: str | None = None
    unit: Literal["household", "person"]
    codes: list[Code] = Field(default_factory=list)  # incident source
    count: CountItem | None = None  # respondent source
    victim: ItemCodes | None = None  # respondent source: screener
    reported: ReportedItem | None = None  # respondent source: reported to the police
    violent: bool = False
    period: str = "12 months"  # reference period of the type (e.g. "5 years" for a screener)

    @field_validator("name")
    @classmethod
    def _identifier(cls, v: str) -> str:
        if not v.isidentifier():
            raise ValueError(f"crime type name '{v}' must be a plain identifier (letters, digits, _)")
        return v


class ExclusionRule(_Labelled):
    name: str
    where: str
    label: str | None = None


class SeriesRule(_Model):
    when: str
    count: str
    unknown_codes: list[Code] = Field(default_factory=list)
    unknown_value: float = 6
    cap: float | None = None


class CapRule(_Model):
    """How repeat counts are capped: ``none``; ``fixed`` (``value``, or ``values`` per crime type,
    e.g. ONS caps pooled over three years); ``percentile`` (the weighted ``value``-th percentile
    of the victims' counts, per crime type, or pooled over all types with ``by: all``)."""

    rule: Literal["none", "fixed", "percentile"] = "none"
    value: float | None = None
    values: dict[str, float] | None = None
    by: Literal["type", "all"] = "type"

    @model_validator(mode="after")
    def _needs_value(self):
        import math

        for v in [self.value] + list((self.values or {}).values()):
            if v is not None and not math.isfinite(v):
                raise ValueError(f"a cap must be a finite number, not {v}")
        if self.rule == "fixed":
            bad = [v for v in [self.value] + list((self.values or {}).values()) if v is not None and v < 1]
            if bad:
                raise ValueError(f"a fixed cap is a number of victimizations per respondent, at least 1 (not {bad[0]:g})")
        if self.rule == "fixed" and self.value is None and not self.values:
            raise ValueError("cap rule 'fixed' needs a value or values per crime type")
        if self.rule == "percentile" and self.value is None:
            raise ValueError("cap rule 'percentile' needs a value (e.g. 98)")
        if self.rule == "percentile" and not 0 < self.value <= 100:
            raise ValueError("a percentile cap must be in (0, 100]")
        return self


class ReportedSpec(_Model):
    variable: str
    yes: list[Code] = Field(default_factory=lambda: [1])
    no: list[Code] = Field(default_factory=lambda: [2])
    unknown: list[Code] = Field(default_factory=list)


class VictimizationSpec(_Model):
    source: Literal["incidents", "respondent"] = "incidents"
    file: str | None = None
    crime_code: str | None = None
    weight: str | None = None
    types: list[CrimeType]
    groups: dict[str, list[str]] = Field(default_factory=dict)
    ignore_codes: list[Code] = Field(default_factory=list)
    exclude: list[ExclusionRule] = Field(default_factory=list)
    series: SeriesRule | None = None
    cap: CapRule = Field(default_factory=CapRule)
    reported: ReportedSpec | None = None

    @model_validator(mode="after")
    def _consistent(self):
        names = [t.name for t in self.types]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"crime types declared twice: {', '.join(sorted(dup))}")
        for g, members in self.groups.items():
            if g in names:
                raise ValueError(f"group '{g}' has the name of a crime type")
            unknown = [m for m in members if m not in names]
            if unknown:
                raise ValueError(f"group '{g}' names unknown crime type(s): {', '.join(unknown)}")
        if self.source == "incidents":
            if not self.file or not self.crime_code:
                raise ValueError("source 'incidents' needs 'file' and 'crime_code'")
            empty = [t.name for t in self.types if not t.codes]
            if empty:
                raise ValueError(f"crime type(s) without codes: {', '.join(empty)}")
            seen: dict = {}
            for t in self.types:
                for c in t.codes:
                    if c in seen:
                        raise ValueError(f"code {c!r} is in both '{seen[c]}' and '{t.name}'")
                    seen[c] = t.name
        else:
            missing = [t.name for t in self.types if t.count is None and t.victim is None]
            if missing:
                raise ValueError(f"source 'respondent': crime type(s) without a count item or a victim screener: "
                                 f"{', '.join(missing)}")
            if self.reported is not None:
                raise ValueError("victimization.reported is for incident files; with source 'respondent' declare "
                                 "reported: {variable, yes, no} on each crime type")
        if self.cap.values:
            unknown = [k for k in self.cap.values if k not in names]
            if unknown:
                raise ValueError(f"cap.values names unknown crime type(s): {', '.join(unknown)}")
        return self

    def type_names(self) -> list[str]:
        return [t.name for t in self.types]

    def members(self, name: str) -> list[str]:
        """The crime types of a type or group name."""
        if name in self.groups:
            return list(self.groups[name])
        if name in self.type_names():
            return [name]
        raise SpecError(f"unknown crime type or group '{name}'")


# ---------------------------------------------------------------------------------------------
# perception, domains, publication
# ---------------------------------------------------------------------------------------------
class FollowUp(_Model):
    """Answers with one of ``codes`` (e.g. "never goes out alone after dark") are replaced by the
    answer to ``variable`` ("how safe would you feel"), coded like the item itself."""

    codes: list[Code]
    variable: str


class PerceptionItem(_Labelled):
    name: str
    variable: str
    follow_up: FollowUp | None = None
    label: str | None = None
    indicator: Literal["feeling_safe", "worry", "likelihood", "likert"] = "likert"
    positive: list[Code]
    missing: list[Code] = Field(default_factory=list)
    crime_type: str | None = None
    sdg: str | None = None


class DomainSpec(_Labelled):
    """A domain: one variable (with labels, bands or a recode), or the cross of two or three
    other domains (``cross: [sex, age_band]``: cells "Female × 16-24").  ``translations``
    gives the published values in other languages (``{fr: {Owned: Propriétaire}}``); value
    labels may also be given per language (``labels: {1: {en: North, fr: Nord}}``)."""

    variable: str | None = None
    cross: list[str] | None = None
    label: str | None = None
    units: list[Literal["household", "person"]] | None = None  # rates it applies to (default: all)
    labels: dict[Code, str] | None = None
    bands: list[float] | None = None
    recode: dict[str, list[Code]] | None = None
    file: str | None = None  # defaults to the design file
    # a tile-grid map of the domain for dashboards: published value (label) -> [row, column]
    tile_grid: dict[str, tuple[int, int]] | None = None
    # a GeoJSON file of the domain's areas for dashboard maps (path relative to the spec) and the
    # feature property holding a value code or label (checked by survey.areas when published)
    geojson: str | None = Field(default=None, max_length=500)
    id_property: str | None = Field(default=None, pattern=r"^[^\x00-\x1f]{1,100}$")
    translations: dict[str, dict[str, str]] | None = None  # language -> published value -> text

    @model_validator(mode="before")
    @classmethod
    def _value_languages(cls, data):
        if isinstance(data, dict) and isinstance(data.get("labels"), dict) and any(
                isinstance(v, dict) for v in data["labels"].values()):
            data = dict(data)
            plain, tr = {}, dict(data.get("translations") or {})
            for code, text in data["labels"].items():
                en, langs = _split_text(text, f"labels.{code}")
                plain[code] = en
                for lang, t in (langs or {}).items():
                    tr.setdefault(lang, {})[en] = t
            data["labels"], data["translations"] = plain, tr
        return data

    @model_validator(mode="after")
    def _one_transform(self):
        if (self.variable is None) == (self.cross is None):
            raise ValueError("a domain has a variable, or crosses other domains (cross: [a, b]), not both")
        if self.cross is not None:
            if not 2 <= len(self.cross) <= 3 or len(set(self.cross)) != len(self.cross):
                raise ValueError("cross names two or three different domains")
            if self.labels or self.bands or self.recode or self.file:
                raise ValueError("a crossed domain takes its values from the domains it crosses "
                                 "(no labels, bands, recode or file)")
        for lang in self.translations or {}:
            if not LANGUAGE.match(lang):
                raise ValueError(f"translations: '{lang}' is not a language code (en, fr, es, pt-BR...)")
        if self.bands is not None and self.recode is not None:
            raise ValueError("a domain takes bands or recode, not both")
        if (self.geojson is None) != (self.id_property is None):
            raise ValueError("geojson (a file of the areas) and id_property (the feature property holding the "
                             "value) go together")
        if self.geojson is not None and self.cross is not None:
            raise ValueError("geojson: a crossed domain has no map of its own")
        if self.tile_grid is not None:
            cells = list(self.tile_grid.values())
            dup = sorted({str(list(c)) for c in cells if cells.count(c) > 1})
            if dup:
                raise ValueError(f"tile_grid: two values share the tile(s) {', '.join(dup)}")
            if any(r < 0 or c < 0 for r, c in cells):
                raise ValueError("tile_grid: rows and columns are 0 or more")
        if self.bands is not None and sorted(self.bands) != list(self.bands):
            raise ValueError("bands must be increasing")
        return self


class PublicationSpec(_Model):
    preset: Literal["bjs", "ons", "cv_bands", "custom", "none"] = "none"
    min_base: int | None = Field(default=None, ge=0, le=10_000_000)
    min_cases: int | None = Field(default=None, ge=0, le=10_000_000)
    max_cv: float | None = None
    cv_bands: list[float] | None = None
    # df of incidence and concentration intervals (survey.indicators.indicator_table)
    effective_df: Literal["satterthwaite", "heavy_tailed"] = "satterthwaite"

    @model_validator(mode="after")
    def _finite(self):
        import math

        if self.max_cv is not None and not (math.isfinite(self.max_cv) and self.max_cv > 0):
            raise ValueError(f"max_cv is a coefficient of variation above 0 (e.g. 0.5), not {self.max_cv}")
        if self.cv_bands is not None:
            b = list(self.cv_bands)
            if not b or not all(math.isfinite(x) and x > 0 for x in b) or sorted(b) != b or len(set(b)) != len(b):
                raise ValueError(f"cv_bands are increasing coefficients of variation above 0 (e.g. [0.15, 0.3]), "
                                 f"not {b}")
        return self


class SurveySpec(_Model):
    schema_version: Literal[1] = 1
    survey: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")  # used in file and folder names
    title: str | None = None
    title_i18n: dict[str, str] | None = None  # title: {en: ..., fr: ...}
    period: str | None = None
    source: str | None = None
    licence: str | None = None
    files: dict[str, FileSpec]
    design: DesignSpec
    victimization: VictimizationSpec | None = None
    perception: list[PerceptionItem] = Field(default_factory=list)
    domains: dict[str, DomainSpec] = Field(default_factory=dict)
    publication: PublicationSpec = Field(default_factory=PublicationSpec)

    @model_validator(mode="before")
    @classmethod
    def _title_languages(cls, data):
        if isinstance(data, dict) and isinstance(data.get("title"), dict):
            data = dict(data)
            data["title"], data["title_i18n"] = _split_text(data["title"], "title")
        return data

    def translations(self) -> list[dict]:
        """Every label the spec gives in other languages, as rows (kind, name, value,
        language, text): kind ``title``, ``crime`` (name = crime type), ``rule`` (an exclusion
        rule's label, name = the rule), ``item`` (perception
        item), ``domain`` (name = domain; its label) and ``value`` (name = domain, value = the
        published value).  Published beside the indicator table so that reports and dashboards
        can speak the reader's language without the spec."""
        rows = [{"kind": "title", "name": self.survey, "value": "", "language": k, "text": t}
                for k, t in (self.title_i18n or {}).items()]
        v = self.victimization
        for t in (v.types if v else []):
            rows += [{"kind": "crime", "name": t.name, "value": "", "language": k, "text": x}
                     for k, x in (t.label_i18n or {}).items()]
        for r in (v.exclude if v else []):
            rows += [{"kind": "rule", "name": r.name, "value": "", "language": k, "text": x}
                     for k, x in (r.label_i18n or {}).items()]
        for i in self.perception:
            rows += [{"kind": "item", "name": i.name, "value": "", "language": k, "text": x}
                     for k, x in (i.label_i18n or {}).items()]
        for name, d in self.domains.items():
            rows += [{"kind": "domain", "name": name, "value": "", "language": k, "text": x}
                     for k, x in (d.label_i18n or {}).items()]
            for lang, values in (d.translations or {}).items():
                rows += [{"kind": "value", "name": name, "value": str(val), "language": lang, "text": x}
                         for val, x in values.items()]
        return rows

    @model_validator(mode="after")
    def _references(self):
        files = set(self.files)
        if self.design.file not in files:
            raise ValueError(f"design.file '{self.design.file}' is not one of the files ({', '.join(sorted(files))})")
        if self.files[self.design.file].unit == "incident":
            raise ValueError("design.file must be a household or person file, not an incident file")
        for name, f in self.files.items():
            if f.link and f.link.to not in files:
                raise ValueError(f"files.{name}.link.to '{f.link.to}' is not one of the files")
            if f.respondents and name != self.design.file:
                raise ValueError(f"files.{name}.respondents: the respondents rule applies to the design file "
                                 f"('{self.design.file}') only; it would be ignored here")
            if f.combine is not None and name != self.design.file:
                raise ValueError(f"files.{name}.combine: rows are combined into units on the design file "
                                 f"('{self.design.file}') only")
        v = self.victimization
        if v is not None and v.file is not None and v.file not in files:
            raise ValueError(f"victimization.file '{v.file}' is not one of the files")
        if v is not None and v.file is not None and self.files[v.file].unit != "incident":
            raise ValueError(f"victimization.file '{v.file}' must have unit: incident")
        for d, dom in self.domains.items():
            if dom.file is not None and dom.file not in files:
                raise ValueError(f"domains.{d}.file '{dom.file}' is not one of the files")
            for part in dom.cross or []:
                if part not in self.domains:
                    raise ValueError(f"domains.{d}.cross: '{part}' is not a domain of the spec")
                if self.domains[part].cross is not None:
                    raise ValueError(f"domains.{d}.cross: '{part}' is itself crossed; cross plain domains")
        names = set(v.type_names()) | set(v.groups) if v else set()
        for item in self.perception:
            if item.crime_type and item.crime_type not in names:
                raise ValueError(f"perception item '{item.name}': unknown crime_type '{item.crime_type}'")
        return self


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def _fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the model reached by ``loc`` (for "did you mean")."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        fields = getattr(current, "model_fields", {})
        if part not in fields:
            break
        ann = fields[part].annotation
        current = _first_model(ann)
    return list(getattr(current, "model_fields", {}))


def _first_model(ann) -> type[BaseModel] | None:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        m = _first_model(arg)
        if m is not None:
            return m
    return None


def _one_line(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    loc = tuple(e.get("loc", ()))
    where = ".".join(str(p) for p in loc) or "(top level)"
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    if e["type"] == "extra_forbidden":
        key = str(loc[-1])
        parent = loc[:-1]
        close = difflib.get_close_matches(key, _fields_at(SurveySpec, parent), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        at = ".".join(str(p) for p in parent) or "the top level"
        return f"spec {source}: unknown key '{key}' at {at}{hint}{more}"
    if e["type"] == "missing":
        return f"spec {source}: missing required key '{where}'{more}"
    msg = e.get("msg", "invalid").removeprefix("Value error, ")
    return f"spec {source}: {where}: {msg}{more}"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml when available
    """YAML 1.2 booleans: only true/false.  YAML 1.1 would read the keys ``on``, ``yes`` and
    ``no`` (link keys, reporting codes) as booleans."""


YAML_MAX_BYTES = 2_000_000
"""Largest spec or parameter file read (a spec is a few KB)."""
YAML_MAX_NODES = 100_000
"""Most YAML nodes a document may hold once its aliases are expanded (nested aliases can
otherwise make a 1 KB file expand to gigabytes)."""


class YamlRefused(ValueError):
    """A YAML document is too large once expanded, or repeats a key."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _Loader.yaml_implicit_resolvers.setdefault(_first, []).insert(
        0, ("tag:yaml.org,2002:bool", __import__("re").compile(r"^(?:true|True|TRUE|false|False|FALSE)$")))


def load_yaml(text: str):
    """Parse YAML with YAML 1.2 booleans (see ``_Loader``), refusing (``YamlRefused``) a
    document of more than :data:`YAML_MAX_BYTES`, of more than :data:`YAML_MAX_NODES` nodes
    once aliases are expanded, or with a key given twice in one mapping."""
    if len(text) > YAML_MAX_BYTES:
        raise YamlRefused(f"the file is {len(text):,} characters long (at most {YAML_MAX_BYTES:,})")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_nodes(root) -> None:
    """Count the nodes as a reader of the expanded document would see them (an alias is its
    anchor's nodes again), stopping at the limit; refuse repeated mapping keys."""
    seen = 0
    stack = [root]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > YAML_MAX_NODES:
            raise YamlRefused(f"more than {YAML_MAX_NODES:,} values once its aliases (*) are expanded")
        if isinstance(node, yaml.MappingNode):
            keys: dict = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode):
                    if k.value in keys:
                        raise YamlRefused(f"the key '{k.value}' is given twice in one mapping (lines "
                                          f"{keys[k.value] + 1} and {k.start_mark.line + 1})")
                    keys[k.value] = k.start_mark.line
                stack.append(k)
                stack.append(v)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def parse_spec(data: Any, source: str = "<spec>") -> SurveySpec:
    """Validate a spec already parsed from YAML (schema, references and expressions)."""
    if not isinstance(data, dict):
        raise SpecError(f"spec {source}: the top level must be a mapping of keys, not {type(data).__name__}")
    try:
        spec = SurveySpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(_one_line(err, source)) from None
    for key, expr in _expressions(spec):
        try:
            expression_names(expr)
        except SpecError as e:
            raise SpecError(f"spec {source}: {key}: {e}") from None
    return spec


def _expressions(spec: SurveySpec):
    """(key, expression) of every expression in a spec."""
    for name, f in spec.files.items():
        if f.respondents:
            yield f"files.{name}.respondents", f.respondents
    v = spec.victimization
    if v is not None:
        for i, rule in enumerate(v.exclude):
            yield f"victimization.exclude.{i}.where", rule.where
        if v.series is not None:
            yield "victimization.series.when", v.series.when


def read_yaml_file(path: Path, error: type[Exception], where: str, missing: str = "file not found"):
    """The YAML document in ``path``; a missing or unreadable file or a syntax error is one
    ``error`` line starting with ``where`` (e.g. "spec x.yaml: ")."""
    try:
        if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO, a device...
            raise error(f"{where}not a regular file")
        if path.is_file() and path.stat().st_size > YAML_MAX_BYTES:
            raise error(f"{where}the file is {path.stat().st_size:,} bytes (at most {YAML_MAX_BYTES:,})")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{where}{missing}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"{where}cannot be read ({e.__class__.__name__}: {e})") from None
    try:
        return load_yaml(text)
    except YamlRefused as e:
        raise error(f"{where}{e}") from None
    except RecursionError:
        raise error(f"{where}nested too deeply") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise error(f"{where}YAML syntax error{at}: {problem}") from None


def read_spec(path: str | Path) -> SurveySpec:
    """Read and validate a spec file; every problem is one ``SpecError`` line."""
    path = Path(path)
    return parse_spec(read_yaml_file(path, SpecError, f"spec {path}: "), str(path))


def expression_names(expr: str) -> set[str]:
    """Column names a condition reads (``survey.expr``: the conditions are data, parsed and
    checked by the project, never evaluated as code).  A condition outside the expression
    language is a ``SpecError`` naming what is refused and where."""
    from .expr import ExpressionError, parse

    try:
        return set(parse(expr).names)
    except ExpressionError as e:
        raise SpecError(str(e)) from None
