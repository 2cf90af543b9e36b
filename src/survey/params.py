"""Parameters of the analysis notebooks and of parameter sets (``parameters/*.yaml``).

One schema serves three callers:

- the notebooks (``notebooks/*.ipynb``): each has one cell tagged ``parameters`` with the
  defaults, then calls :func:`check_notebook`, which fails the run with one clear line on an
  unknown or misspelt name (papermill itself only warns) or a bad value;
- parameter sets: :func:`read_parameter_set` reads one YAML file per run, checks every key
  and value before any kernel starts, and resolves paths (inputs relative to the parameter
  file, else to the project root; outputs relative to the project root; never to the caller's
  working directory);
- ``survey run`` / ``survey batch`` (``survey.batch``), which pass each notebook the
  parameters it declares, with absolute paths (schedulers such as Airflow's
  ``PapermillOperator`` set no working directory).

Parameters every notebook takes (:data:`COMMON`):

==============  ============================================================================
spec            the survey spec (YAML); required
data_dir        folder holding this wave's data files (file names from the spec); default:
                the paths in the spec.  The same spec then serves every quarter or year.
period          reference period label of the tables (default: the spec's ``period``)
domains         domain names (default: every domain of the spec)
crime_types     crime types and groups (default: every type and group of the spec)
publication     publication preset (``bjs``, ``ons``, ``cv_bands``, ``none``) or a mapping
                ``{preset: ons, min_base: 50}``; default: the spec's
cap_rule        cap on repeat counts, overriding the spec's: ``none``, ``fixed 5``,
                ``percentile 98`` or a mapping ``{rule: fixed, value: 5}`` (schema of the
                spec's ``victimization.cap``)
output_dir      folder the notebook writes its tables into
language        ``en``, ``fr`` or ``es``: the language of the HTML reports and the Excel workbook
                (the run-level keys ``description_fr`` and ``description_es`` give the run's
                description in French and Spanish; ``description`` is the fallback)
seed            random seed (numpy's global generator is seeded with it)
engine          in memory or streamed, overriding the spec's ``design.engine``: ``{mode: auto |
                memory | stream, chunk_rows: N, memory_limit: 4GB}``.  When the survey streams,
                :func:`load_survey` returns a :class:`survey.tables.StreamedSurvey` (no rows in
                memory) and the notebooks take their tables from the stream
                (:mod:`survey.tables`); a batch run passes the mode it chose
==============  ============================================================================

Notebook-specific parameters are in :data:`EXTRA`; run-level keys of a parameter set (not
passed to notebooks) are in :data:`RUN_KEYS`.
"""

from __future__ import annotations

import ast
import difflib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SurveyError

LANGUAGES = ("en", "fr", "es")
PRESETS = ("bjs", "ons", "cv_bands", "none")
PUBLICATION_KEYS = ("preset", "min_base", "min_cases", "max_cv", "cv_bands", "suppress_low")
NOTEBOOKS = ("ingest", "victimization", "fear", "repeat", "risk", "summary")
"""The analysis notebooks, in the order a run executes them (``notebooks/<name>.ipynb``)."""
STEP_NOTEBOOKS = ("local",)
"""Notebooks a run executes after :data:`NOTEBOOKS` when its parameter set asks for them (not
listed in ``notebooks``): ``local`` when the set has a ``small_areas`` section."""

PARAMETERS_MARKER = "# Notebook parameters"
"""First line of each notebook's ``parameters`` cell (how :func:`check_notebook` finds it)."""


class ParameterError(SurveyError, ValueError):
    """A parameter set or a notebook parameter is unknown, misspelt or has a bad value."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str
    default: Any
    help: str


COMMON: tuple[Param, ...] = (
    Param("spec", "input_file", None, "survey spec (YAML)"),
    Param("data_dir", "input_dir?", None, "folder with this wave's data files (names from the spec)"),
    Param("period", "str?", None, "reference period label (default: the spec's)"),
    Param("domains", "names?", None, "domains (default: all of the spec's)"),
    Param("crime_types", "names?", None, "crime types and groups (default: all of the spec's)"),
    Param("publication", "publication?", None, "publication preset or {preset:, min_base:, ...}"),
    Param("cap_rule", "cap?", None, "cap rule overriding the spec's: none | fixed N | percentile P"),
    Param("output_dir", "output_dir", "outputs/interactive", "folder the notebook writes its tables into"),
    Param("language", "language", "en", "en | fr | es"),
    Param("seed", "seed", 1, "random seed"),
    Param("engine", "engine?", None, "in memory or streamed, overriding the spec's design.engine: "
                                     "{mode: auto | memory | stream, chunk_rows: N, memory_limit: 4GB}"),
)
COMMON_NAMES = tuple(p.name for p in COMMON)
EXTRA: dict[str, tuple[Param, ...]] = {
    "risk": (Param("risk_crime_types", "names?", None,
                   "crime types or groups to model (default: the spec's groups, else its types)"),
             Param("risk_predictors", "names?", None,
                   "domains predicting victimization (default: the spec's domains except victim-status ones: "
                   "items of the victimization section)"),
             Param("risk_reference", "reference?", None,
                   "reference levels of the risk predictors: {domain: level} (others: reference_rule)"),
             Param("reference_rule", "reference_rule", "first",
                   "reference level of a categorical predictor: first (the first category holding a case) "
                   "| largest (the largest weighted category); empty categories are dropped first"),
             Param("models", "models?", None,
                   "other models: [{name:, outcome: <item> | not <item> | victim:<crime> | count:<crime>, "
                   "predictors: [domains, victim:<crime>], family: logistic | poisson | negbin, reference: {}}]"),
             Param("on_model_failure", "on_model_failure", "fail",
                   "a model that cannot be fitted: fail (the run fails, one line) | record (a 'not fitted' row "
                   "in risk_models.csv, risk_model_failures.csv, and the report)")),
    "summary": (Param("compare", "compare?", None,
                      "an earlier wave to compare with: {spec:, data_dir:, period:, samples: auto|independent|overlapping} "
                      "(spec default: the same)"),),
    "local": (Param("small_areas", "small_areas?", None,
                    "model-based small-area estimates (notebooks/local.py, small_areas.csv): {indicator:, "
                    "crime_type:, area: <domain>, auxiliary: <CSV of area covariates>, covariates: [..], "
                    "method: REML | ML, smooth_variances: gvf | none, benchmark: true | false}"),),
}
RUN_KEYS = {
    "name": "run name: the output folder outputs/<name> and the log name (default: the file name)",
    "description": "free text, copied into the manifest (English, and the fallback of the others)",
    "description_fr": "the description in French (reports and dashboards in French use it)",
    "description_es": "the description in Spanish (reports and dashboards in Spanish use it)",
    "notebooks": f"notebooks to run, in order (default: all: {', '.join(NOTEBOOKS)})",
    "timeout": "per-cell timeout in seconds (default: none)",
    "html_plotlyjs": "plotly.js in the HTML reports: file (one plotly.min.js per run, offline), "
                     "inline (self-contained files) or cdn",
    "evaluation": "a programme evaluation run after the other notebooks (notebooks/evaluation.ipynb): "
                  "{outcome:, treated:, period:, start:, ...} (see EVALUATION_KEYS); writes evaluation.csv "
                  "and cost_benefit.csv",
}
COMPARE_KEYS = ("spec", "data_dir", "period", "samples")
COMPARE_SAMPLES = ("auto", "independent", "overlapping")
"""``compare.samples``: ``auto`` looks for PSUs (same stratum and PSU codes) and households (same
key) in both waves; ``independent`` says the waves are separate samples whose codes only happen to
coincide (the independent-samples formula, whatever the codes); ``overlapping`` requires shared
PSUs or households and fails if there are none."""


def declared(notebook: str) -> dict[str, Param]:
    """The parameters a notebook declares (common ones, then its own)."""
    if notebook not in NOTEBOOKS and notebook not in STEP_NOTEBOOKS:
        raise ParameterError(f"unknown notebook '{notebook}'{_did_you_mean(notebook, NOTEBOOKS)} "
                             f"(notebooks: {', '.join(NOTEBOOKS)})")
    return {p.name: p for p in COMMON + EXTRA.get(notebook, ())}


def all_parameters() -> dict[str, Param]:
    out = {p.name: p for p in COMMON}
    for extra in EXTRA.values():
        out.update({p.name: p for p in extra})
    return out


def _did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---------------------------------------------------------------------------------------------
# paths
# ---------------------------------------------------------------------------------------------
_MARKERS = ("pyproject.toml", ".git")


def project_root(start: str | Path | None = None) -> Path:
    """The project root: ``$SURVEY_PROJECT_ROOT``, else the nearest folder at or above ``start``
    (default: the working directory) that holds ``pyproject.toml`` or ``.git``, else the folder
    above this package's ``src/`` when it is installed in development mode, else ``start``."""
    env = os.environ.get("SURVEY_PROJECT_ROOT")
    if env:
        return Path(env).expanduser().resolve()
    start = Path(start if start is not None else Path.cwd()).expanduser().resolve()
    if start.is_file():
        start = start.parent
    for p in (start, *start.parents):
        if any((p / m).exists() for m in _MARKERS):
            return p
    here = Path(__file__).resolve().parents[2]
    if (here / "pyproject.toml").exists():
        return here
    return start


def resolve_input(value, base: Path | None, root: Path, what: str, kind: str = "file") -> Path:
    """An input path: absolute as given; relative to ``base`` (the parameter file's folder)
    when it exists there, else to the project ``root``."""
    p = Path(str(value)).expanduser()
    tried = []
    if p.is_absolute():
        candidates = [p]
    else:
        candidates = ([base / p] if base is not None else []) + [root / p]
    for c in candidates:
        tried.append(str(c))
        if (c.is_file() if kind == "file" else c.is_dir()):
            return c.resolve()
    noun = "file" if kind == "file" else "folder"
    raise ParameterError(f"{what}: {noun} '{value}' not found (tried {' and '.join(dict.fromkeys(tried))})")


def resolve_output(value, root: Path) -> Path:
    """An output folder: absolute, relative to the project ``root``.  Symbolic links are NOT
    followed (so that a link is seen, and refused, as the output folder it is)."""
    p = Path(str(value)).expanduser()
    return Path(os.path.abspath(p if p.is_absolute() else root / p))


# ---------------------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------------------
def _names(value, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ParameterError(f"{what} must be a list of names, not {value!r}")
    if not value:
        raise ParameterError(f"{what} is empty: leave it out (or null) for the default")
    dup = sorted({v for v in value if list(value).count(v) > 1})
    if dup:
        raise ParameterError(f"{what}: {', '.join(dup)} given twice")
    return list(value)


def publication_rule(value, what: str = "publication") -> tuple[str | None, dict]:
    """``None`` | preset | mapping -> (preset or None for the spec's, rule parameters)."""
    if value is None:
        return None, {}
    if isinstance(value, str):
        value = {"preset": value}
    if not isinstance(value, dict):
        raise ParameterError(f"{what} must be a preset name or a mapping, not {value!r}")
    bad = [k for k in value if k not in PUBLICATION_KEYS]
    if bad:
        raise ParameterError(f"{what}: unknown key '{bad[0]}'{_did_you_mean(bad[0], PUBLICATION_KEYS)} "
                             f"(keys: {', '.join(PUBLICATION_KEYS)})")
    preset = value.get("preset")
    if preset is not None and preset not in PRESETS:
        raise ParameterError(f"{what}: preset must be one of {', '.join(PRESETS)}, not '{preset}'"
                             f"{_did_you_mean(preset, PRESETS)}")
    params = {k: v for k, v in value.items() if k != "preset"}
    for k in ("min_base", "min_cases"):
        if k in params and (isinstance(params[k], bool) or not isinstance(params[k], int) or params[k] < 0):
            raise ParameterError(f"{what}: {k} must be a whole number >= 0, not {params[k]!r}")
    if "max_cv" in params and (isinstance(params["max_cv"], bool) or not isinstance(params["max_cv"], (int, float))):
        raise ParameterError(f"{what}: max_cv must be a number (percent), not {params['max_cv']!r}")
    if "cv_bands" in params:
        b = params["cv_bands"]
        if not (isinstance(b, (list, tuple)) and len(b) == 2 and all(isinstance(x, (int, float)) for x in b)
                and b[0] < b[1]):
            raise ParameterError(f"{what}: cv_bands must be two increasing numbers (percent), not {b!r}")
        params["cv_bands"] = tuple(float(x) for x in b)
    if "suppress_low" in params and not isinstance(params["suppress_low"], bool):
        raise ParameterError(f"{what}: suppress_low must be true or false")
    _check_with_publication_spec(params, what)
    return preset, params


def _check_with_publication_spec(params: dict, what: str) -> None:
    """Ranges and finiteness of the publication parameters: the spec's own validators
    (:class:`survey.spec.PublicationSpec`: ``max_cv`` finite and above 0, ``cv_bands`` finite,
    above 0 and increasing, ``min_base``/``min_cases`` within bounds)."""
    from pydantic import ValidationError

    from .spec import PublicationSpec

    keys = ("min_base", "min_cases", "max_cv", "cv_bands")
    try:
        PublicationSpec.model_validate({k: (list(v) if k == "cv_bands" else v) for k, v in params.items()
                                        if k in keys})
    except ValidationError as err:
        e = err.errors()[0]
        loc = ".".join(str(x) for x in e.get("loc", ()))
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        raise ParameterError(f"{what}: {loc + ': ' if loc else ''}{msg}") from None


def cap_rule(value, what: str = "cap_rule") -> dict | None:
    """``None`` | ``"none"`` | ``"fixed 5"`` | ``"percentile 98"`` | mapping -> the spec's
    ``victimization.cap`` mapping (validated with the spec schema)."""
    from pydantic import ValidationError

    from .spec import CapRule

    if value is None:
        return None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(none|fixed|percentile)(?:\s*[ :=]\s*([-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
                         r"(?:[eE][-+]?[0-9]+)?))?\s*", value)
        if not m:
            raise ParameterError(f"{what}: '{value}' is not a cap rule (none | fixed N | percentile P | "
                                 "{rule: ..., value: ...})")
        value = {"rule": m.group(1)} | ({"value": float(m.group(2))} if m.group(2) else {})
    if not isinstance(value, dict):
        raise ParameterError(f"{what} must be a cap rule (none | fixed N | percentile P) or a mapping, not {value!r}")
    numbers = [("value", value.get("value"))] + [(f"values.{k}", v) for k, v in (
        value.get("values").items() if isinstance(value.get("values"), dict) else ())]
    for key, v in numbers:
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ParameterError(f"{what}: {key} must be a number, not {v!r}")
    try:
        rule = CapRule.model_validate(value)
    except ValidationError as err:
        e = err.errors()[0]
        if e["type"] == "extra_forbidden":
            key = str(e["loc"][-1])
            raise ParameterError(f"{what}: unknown key '{key}'{_did_you_mean(key, CapRule.model_fields)} "
                                 f"(keys: {', '.join(CapRule.model_fields)})") from None
        loc = ".".join(str(x) for x in e.get("loc", ()))
        msg = e.get("msg", "invalid").removeprefix("Value error, ")
        raise ParameterError(f"{what}: {loc + ': ' if loc else ''}{msg}") from None
    return rule.model_dump(exclude_none=True)


def _scalar_str(value, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ParameterError(f"{what} must be text, not {value!r}")
    return str(value)


MAX_SEED = 2**32 - 1
"""numpy's global generator takes seeds up to 2**32 - 1."""
MAX_TIMEOUT = 7 * 24 * 3600
"""Longest per-cell timeout of a parameter set (a week)."""
MAX_LABEL = 200
MAX_DESCRIPTION = 1000
"""Longest run description (``description``, ``description_<lang>``), in characters."""
DESCRIPTION_KEYS = {"en": "description", "fr": "description_fr", "es": "description_es"}
"""The parameter-set key of the run's description in each language."""


def run_descriptions(raw: dict, where: str = "") -> dict[str, str]:
    """The run's descriptions by language (``description``, ``description_fr``,
    ``description_es``): each text of at most :data:`MAX_DESCRIPTION` characters, no control
    character but line feeds and tabs; absent or empty ones left out."""
    out = {}
    for lang, key in DESCRIPTION_KEYS.items():
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ParameterError(f"{where}{key} must be text, not {type(value).__name__}")
        value = str(value)
        if len(value) > MAX_DESCRIPTION or any((ord(c) < 32 and c not in "\n\t") or ord(c) == 127 for c in value):
            raise ParameterError(f"{where}{key} must be text of at most {MAX_DESCRIPTION} characters without "
                                 f"control characters, not {value[:40]!r}{'...' if len(value) > 40 else ''}")
        if value.strip():
            out[lang] = value
    return out


def description_in(descriptions: dict[str, str], lang: str) -> str:
    """The run's description in ``lang``, else the English one (``description``), else ""."""
    return descriptions.get(lang) or descriptions.get("en") or ""


def _label(value: str | None, what: str) -> str | None:
    """A label (period): one line of at most :data:`MAX_LABEL` printable characters."""
    if value is None:
        return None
    if len(value) > MAX_LABEL or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ParameterError(f"{what} must be one line of at most {MAX_LABEL} printable characters, "
                             f"not {value[:40]!r}{'...' if len(value) > 40 else ''}")
    return value


def _check_value(p: Param, value, what: str, base: Path | None, root: Path):
    """Check (and normalize) one value; paths are resolved against ``base``/``root``."""
    kind = p.kind
    optional = kind.endswith("?")
    kind = kind.rstrip("?")
    if value is None:
        if optional:
            return None
        if p.default is None:
            raise ParameterError(f"{what} is required")
        value = p.default
    if kind == "input_file":
        if not isinstance(value, (str, os.PathLike)):
            raise ParameterError(f"{what} must be a path, not {value!r}")
        return str(resolve_input(value, base, root, what))
    if kind == "input_dir":
        if not isinstance(value, (str, os.PathLike)):
            raise ParameterError(f"{what} must be a folder path, not {value!r}")
        return str(resolve_input(value, base, root, what, kind="dir"))
    if kind == "output_dir":
        if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
            raise ParameterError(f"{what} must be a folder path, not {value!r}")
        return str(resolve_output(value, root))
    if kind == "str":
        return _label(_scalar_str(value, what), what)
    if kind == "names":
        return _names(value, what)
    if kind == "publication":
        publication_rule(value, what)
        return value
    if kind == "cap":
        return cap_rule(value, what)
    if kind == "language":
        if value not in LANGUAGES:
            raise ParameterError(f"{what} must be one of {', '.join(LANGUAGES)}, not {value!r}"
                                 f"{_did_you_mean(value, LANGUAGES)}")
        return value
    if kind == "engine":
        return engine_override(value, what.removesuffix("engine")) or None
    if kind == "seed":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
            raise ParameterError(f"{what} must be a whole number from 0 to {MAX_SEED}, not {value!r}")
        return value
    if kind in ("reference", "models", "reference_rule", "on_model_failure"):  # risk notebook (survey.models)
        from .models import (
            ON_FAILURE,
            REFERENCE_RULES,
            ModelSpecError,
            check_models_value,
            check_reference_value,
        )

        if kind in ("reference_rule", "on_model_failure"):
            allowed = REFERENCE_RULES if kind == "reference_rule" else ON_FAILURE
            if value not in allowed:
                raise ParameterError(f"{what} must be one of {', '.join(allowed)}, not {value!r}"
                                     f"{_did_you_mean(value, allowed)}")
            return value
        try:
            return (check_models_value if kind == "models" else check_reference_value)(value, what)
        except ModelSpecError as e:
            raise ParameterError(str(e)) from None
    if kind == "small_areas":
        return small_areas_value(value, what, base, root)
    if kind == "compare":
        if not isinstance(value, dict):
            raise ParameterError(f"{what} must be a mapping {{spec:, data_dir:, period:}}, not {value!r}")
        bad = [k for k in value if k not in COMPARE_KEYS]
        if bad:
            raise ParameterError(f"{what}: unknown key '{bad[0]}'{_did_you_mean(bad[0], COMPARE_KEYS)} "
                                 f"(keys: {', '.join(COMPARE_KEYS)})")
        if not value.get("spec") and not value.get("data_dir"):
            raise ParameterError(f"{what} needs a spec or a data_dir for the earlier wave")
        out = {}
        if value.get("spec"):
            out["spec"] = str(resolve_input(value["spec"], base, root, f"{what}.spec"))
        if value.get("data_dir"):
            out["data_dir"] = str(resolve_input(value["data_dir"], base, root, f"{what}.data_dir", kind="dir"))
        out["period"] = _label(_scalar_str(value.get("period"), f"{what}.period"), f"{what}.period")
        samples = value.get("samples", "auto")
        if samples not in COMPARE_SAMPLES:
            raise ParameterError(f"{what}.samples must be one of {', '.join(COMPARE_SAMPLES)}, not {samples!r}"
                                 f"{_did_you_mean(str(samples), COMPARE_SAMPLES)}")
        out["samples"] = samples
        return out
    raise AssertionError(kind)  # pragma: no cover


def check_against_spec(values: dict, where: str = "") -> None:
    """Domain and crime type names exist in the spec (with a "did you mean")."""
    from .spec import read_spec

    spec = read_spec(values["spec"])
    v = spec.victimization
    crimes = (v.type_names() + list(v.groups)) if v is not None else []
    checks = [("domains", list(spec.domains)), ("crime_types", crimes), ("risk_crime_types", crimes)]
    for key, known in checks:
        for name in values.get(key) or []:
            if name not in known:
                raise ParameterError(f"{where}{key}: '{name}' is not in spec {Path(values['spec']).name}"
                                     f"{_did_you_mean(name, known)} (known: {', '.join(known) or 'none'})")
    if any(values.get(k) for k in ("risk_predictors", "risk_reference", "models")):
        from .models import ModelSpecError, check_risk_parameters

        try:
            check_risk_parameters(spec, values, where)
        except ModelSpecError as e:
            raise ParameterError(str(e)) from None
    if values.get("cap_rule") and v is None:
        raise ParameterError(f"{where}cap_rule: spec {Path(values['spec']).name} has no victimization section")
    cap = values.get("cap_rule") or {}
    unknown = [k for k in (cap.get("values") or {}) if v is not None and k not in v.type_names()]
    if unknown:
        raise ParameterError(f"{where}cap_rule.values: unknown crime type '{unknown[0]}'"
                             f"{_did_you_mean(unknown[0], v.type_names())}")
    if values.get("small_areas"):
        check_small_areas(spec, values, where)
    cmp = values.get("compare")
    if cmp:
        this = values.get("period") or spec.period
        other_spec = read_spec(cmp["spec"]) if cmp.get("spec") else spec
        earlier = cmp.get("period") or other_spec.period
        if str(this) == str(earlier):
            raise ParameterError(f"{where}compare.period: the earlier wave's period label '{earlier}' is this "
                                 "wave's too; give compare.period (and period) to tell the waves apart")
    for role, path in data_files(values):
        if not path.is_file():
            how = "compare.data_dir" if role.startswith("compare") and (values.get("compare") or {}).get(
                "data_dir") else "data_dir" if values.get("data_dir") and not role.startswith("compare") else "the spec"
            raise ParameterError(f"{where}{role}: data file {path} not found (its folder comes from {how})")


NEEDS_VICTIMIZATION = ("victimization", "repeat", "risk")
"""Notebooks that estimate victimization: they cannot run on a spec without that section."""


def counted_crimes(spec) -> list[str]:
    """Crime types and groups of a spec with a count of victimizations (an incident file, or a
    count item on the respondent record for every member); the others are prevalence-only."""
    v = spec.victimization
    if v is None:
        return []
    if v.source == "incidents":
        return v.type_names() + list(v.groups)
    has = {t.name for t in v.types if t.count is not None}
    return [t for t in v.type_names() if t in has] + [g for g, m in v.groups.items() if set(m) <= has]


def check_capabilities(values: dict, notebooks: list[str], explicit: bool = True, where: str = "") -> None:
    """A static check (the spec only, no data read) that the notebooks of a run can do what it
    asks on its spec: victimization notebooks need a victimization section; a run that asks
    for the repeat notebook (``explicit``: listed in ``notebooks``) needs a selected crime type
    with a count item; one that asks for the fear notebook needs perception items.  Without an
    explicit list, notebooks that have nothing to estimate say so in one sentence and the run
    goes on.  One :class:`ParameterError` line naming the spec and what is missing."""
    from .spec import read_spec

    spec = read_spec(values["spec"])
    name = Path(values["spec"]).name
    v = spec.victimization
    for nb in notebooks:
        if nb in NEEDS_VICTIMIZATION and v is None:
            raise ParameterError(f"{where}notebooks: '{nb}' estimates victimization, but spec {name} has no "
                                 "victimization section (run ingest, fear and summary only)")
    cap = values.get("cap_rule")
    if cap and v is not None:
        if cap.get("rule") != "none" and not counted_crimes(spec):
            raise ParameterError(f"{where}cap_rule: spec {name} has no count item (screeners only): there are no "
                                 "repeat counts to cap")
        if cap.get("rule") == "none" and v.source == "respondent":
            takes_cap = [t.count.variable for t in v.types if t.count is not None and t.count.dont_know_value == "cap"]
            if takes_cap:
                raise ParameterError(f"{where}cap_rule: none, but in spec {name} 'too many to remember' takes the "
                                     f"cap (count item '{takes_cap[0]}', dont_know_value: cap): give it a number "
                                     "in a copy of the spec, or keep a cap rule")
    if not explicit:
        return
    selected = values.get("crime_types") or ((v.type_names() + list(v.groups)) if v is not None else [])
    if "repeat" in notebooks:
        counted = [c for c in selected if c in counted_crimes(spec)]
        if not counted:
            raise ParameterError(f"{where}notebooks: 'repeat' needs crime types with a count item (how many "
                                 f"times); the {len(selected)} selected in spec {name} "
                                 f"({', '.join(selected[:4])}{', ...' if len(selected) > 4 else ''}) have "
                                 "screeners only (prevalence only)")
    if "fear" in notebooks and not spec.perception:
        raise ParameterError(f"{where}notebooks: 'fear' needs perception items; spec {name} declares none")


def validate(values: dict, notebook: str | None = None, base: Path | None = None,
             root: Path | None = None, where: str = "") -> dict:
    """Check a mapping of parameter values (unknown names, types, allowed values, paths) and
    return it normalized, with defaults filled in and paths absolute.  ``notebook``: check
    against that notebook's declarations (default: every notebook's)."""
    root = root or project_root(base)
    known = declared(notebook) if notebook else all_parameters()
    for name in values:
        if name not in known:
            raise ParameterError(f"{where}unknown parameter '{name}'{_did_you_mean(name, known)}; "
                                 f"parameters: {', '.join(known)}")
    out = {}
    for name, p in known.items():
        out[name] = _check_value(p, values.get(name), f"{where}{name}", base, root)
    check_against_spec(out, where)
    return out


# ---------------------------------------------------------------------------------------------
# notebooks
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Params:
    """Checked notebook parameters (paths absolute), with the publication rule split into its
    preset and parameters."""

    notebook: str
    values: dict

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def publication_preset(self) -> str | None:
        return publication_rule(self.values.get("publication"))[0]

    @property
    def publication_params(self) -> dict:
        return publication_rule(self.values.get("publication"))[1]

    def as_dict(self) -> dict:
        return dict(self.values)


def _assigned_names(source: str) -> list[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise ParameterError(f"the parameters cell is not valid Python: {e.msg} (line {e.lineno})") from None
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        for t in targets:
            for n in ast.walk(t):
                if isinstance(n, ast.Name) and n.id not in names:
                    names.append(n.id)
    return names


def _given_names(ns: dict) -> list[str] | None:
    """Names assigned by the notebook's parameters cell and by papermill's injected cell after
    it, from IPython's input history (``In``); None outside IPython."""
    history = ns.get("In")
    if not isinstance(history, list) or not history:
        return None
    own = injected = None
    for i, src in enumerate(history):
        first = src.lstrip().split("\n", 1)[0].strip() if isinstance(src, str) else ""
        if first.startswith(PARAMETERS_MARKER):
            own, injected = i, None
        elif first == "# Parameters" and own is not None and i > own:
            injected = i
    if own is None:
        return None
    names = _assigned_names(history[own])
    if injected is not None:
        names += [n for n in _assigned_names(history[injected]) if n not in names]
    return names


def check_notebook(ns: dict, notebook: str) -> Params:
    """Check the parameters of a running notebook (``check_notebook(globals(), "fear")``).

    Unknown or misspelt names (in the notebook's parameters cell or in papermill's injected
    cell) and bad values raise :class:`ParameterError` with a "did you mean"; relative paths are
    resolved against the project root; numpy's global generator is seeded with ``seed``.
    """
    known = declared(notebook)
    given = _given_names(ns)
    if given is not None:
        unknown = [n for n in given if n not in known]
        if unknown:
            n = unknown[0]
            raise ParameterError(f"notebook '{notebook}': unknown parameter '{n}'{_did_you_mean(n, known)}; "
                                 f"it takes: {', '.join(known)}")
    values = {name: ns.get(name) for name in known}
    out = validate(values, notebook, base=None, root=project_root(), where=f"notebook '{notebook}': ")
    import numpy as np

    np.random.seed(out["seed"])
    Path(out["output_dir"]).mkdir(parents=True, exist_ok=True)
    return Params(notebook, out)


def spec_for(params: Params | dict, wave: dict | None = None):
    """The survey spec with the run's overrides: the data files taken from ``data_dir`` (same
    file names), the ``period`` label and the ``cap_rule``.  ``wave``: another wave
    (``{spec, data_dir, period}``, as the ``compare`` parameter) read with the same cap rule;
    its spec defaults to the run's, its data and period to its spec's.  Returns (spec, path)."""
    from .spec import parse_spec, read_spec

    values = params.as_dict() if isinstance(params, Params) else params
    if wave is not None:
        spec_path, data_dir, period = Path(wave.get("spec") or values["spec"]), wave.get("data_dir"), wave.get("period")
    else:
        spec_path, data_dir, period = Path(values["spec"]), values.get("data_dir"), values.get("period")
    parsed = read_spec(spec_path)
    cap = values.get("cap_rule")
    if not (data_dir or period or cap):
        return parsed, spec_path
    d = parsed.model_dump(exclude_none=True)
    if data_dir:
        for f in d["files"].values():
            f["path"] = str(Path(data_dir).resolve() / Path(f["path"]).name)
    if period:
        d["period"] = str(period)
    if cap:
        d["victimization"]["cap"] = dict(cap)
    return parse_spec(d, str(spec_path)), spec_path


def load_survey(params: Params | dict, wave: dict | None = None, write_accounting: bool = True):
    """Load the survey for a notebook run (:func:`spec_for` overrides); the run's own wave
    also writes its row accounting to ``output_dir/accounting.csv`` (the manifest's).

    When the survey streams (the spec's ``design.engine`` with the ``engine`` parameter's
    overrides: :func:`survey.tables.engine_plan_for`), nothing is loaded: the result is a
    :class:`survey.tables.StreamedSurvey` (spec, engine plan, the streamed row accounting), whose
    tables the notebooks get through :mod:`survey.tables`."""
    from .ingest import load
    from .tables import StreamedSurvey, engine_plan_for

    values = params.as_dict() if isinstance(params, Params) else params
    parsed, spec_path = spec_for(values, wave)
    try:
        plan = engine_plan_for(parsed, spec_path, values.get("engine"))
    except SurveyError:
        if wave is None:
            raise
        plan = None  # an earlier wave that cannot stream is loaded in memory
    if plan is not None and plan.mode == "stream":
        data = StreamedSurvey(parsed, spec_path, plan, values, publication_rule(values.get("publication")), wave)
    else:
        data = load(parsed, spec_path=spec_path)
    if write_accounting and wave is None:
        out = Path(values["output_dir"])
        out.mkdir(parents=True, exist_ok=True)
        from .report import neutral_frame

        neutral_frame(data.accounting).to_csv(out / "accounting.csv", index=False)
    return data


def data_files(values: dict) -> list[tuple[str, Path]]:
    """(role, path) of every file a run reads: the spec and its data files (with ``data_dir``),
    its GeoJSON map areas, and the spec and data files of the wave it compares with."""
    out = []
    waves = [("", None)]
    if values.get("compare"):
        waves.append(("compare ", values["compare"]))
    for prefix, wave in waves:
        parsed, spec_path = spec_for({"spec": values["spec"], "data_dir": values.get("data_dir")}, wave)
        out.append((f"{prefix}spec", Path(spec_path).resolve()))
        for name, f in parsed.files.items():
            p = Path(f.path)
            p = p if p.is_absolute() else Path(spec_path).parent / p
            out.append((f"{prefix}data:{name}", p.resolve()))
        if not prefix:  # the GeoJSON map areas of the spec's domains (survey.areas checks them)
            for name, dom in parsed.domains.items():
                if dom.geojson:
                    g = Path(dom.geojson)
                    out.append((f"areas:{name}", (g if g.is_absolute() else Path(spec_path).parent / g).resolve()))
    if (values.get("small_areas") or {}).get("auxiliary"):  # the small-area model's area covariates
        out.append(("small_areas.auxiliary", Path(values["small_areas"]["auxiliary"]).resolve()))
    return out


# ---------------------------------------------------------------------------------------------
# the evaluation section of a parameter set (notebooks/evaluation.ipynb)
# ---------------------------------------------------------------------------------------------
EVALUATION_KEYS = {
    "outcome": "victim:<crime> (0/1 victim), count:<crime> (victimizations) or a column of the respondent file",
    "treated": "the programme areas: a condition of survey.expr (\"region in ['North', 'East']\") or "
               "{variable: <column>, codes: [...]}; optional with a start per area",
    "period": "the column of the wave or period",
    "start": "the first treated period (one for all), or {<area code>: <first period>, ...} with area:",
    "area": "the column of the area codes that start: {...} refers to (staggered starts)",
    "model": "linear (default) | logistic",
    "covariates": "categorical covariates: a list of column names",
    "event_study": "true | false: one effect per period as well",
    "programme_cost": "the programme's cost, or one cost per year [year 0, year 1, ...] (optional: no "
                      "cost-benefit without it)",
    "exposed": "treated units (e.g. households) exposed, or one number per year",
    "crime_type": "the crime type of the unit-cost table that values a crime (or victim) averted",
    "currency": "the currency of the costs (must be the unit-cost table's)",
    "unit_costs": "default (Home Office 2018, GBP) | a CSV of unit costs",
    "discount_rate": "discount rate a year for several years (default 0.035, the Green Book's)",
    "effects": "the effect each programme year is valued with: pooled (default: the one difference in "
               "differences every year) | event_study (year k: the event-study effect of the k-th period from "
               "the start) | [<period>, ...] (year k: the event-study effect of that period; periods may repeat)",
}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")


def _finite_number(v, what: str, positive: bool = False, allow_zero: bool = True) -> float:
    """A finite number; with ``positive``: >= 0 (``allow_zero``) or > 0."""
    ok = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
    if ok and positive:
        ok = v > 0 or (allow_zero and v == 0)
    if not ok:
        bound = (" >= 0" if allow_zero else " > 0") if positive else ""
        raise ParameterError(f"{what} must be a finite number{bound}, not {v!r}")
    return float(v)


def _per_year(v, what: str) -> float | list[float]:
    """A positive number, or a list (at most 100 years) of numbers >= 0 with a positive sum."""
    if isinstance(v, list):
        if not 1 <= len(v) <= 100:
            raise ParameterError(f"{what} must have 1 to 100 yearly values, not {len(v)}")
        out = [_finite_number(x, f"{what}[{i}]", positive=True) for i, x in enumerate(v)]
        if not sum(out) > 0:
            raise ParameterError(f"{what}: the yearly values add up to 0")
        return out
    return _finite_number(v, what, positive=True, allow_zero=False)


def _check_effects(value: dict, out: dict, what: str):
    """``effects``: pooled | event_study | a list of 1-100 periods (numbers or text); effects per
    year need a programme cost, the event study, one start for every area and the linear model,
    and a list of periods as many years as yearly costs or exposures."""
    eff = value.get("effects", "pooled")
    if isinstance(eff, list):
        if not 1 <= len(eff) <= 100:
            raise ParameterError(f"{what}.effects must list 1 to 100 periods (one a year), not {len(eff)}")
        for i, p in enumerate(eff):
            if isinstance(p, bool) or not isinstance(p, (int, float, str)) or (isinstance(p, float)
                                                                             and not math.isfinite(p)):
                raise ParameterError(f"{what}.effects[{i}] must be a period (a number or text), not {p!r}")
    elif eff not in ("pooled", "event_study"):
        raise ParameterError(f"{what}.effects must be pooled, event_study or a list of periods, not {eff!r}"
                             f"{_did_you_mean(str(eff), ('pooled', 'event_study'))}")
    if eff == "pooled":
        return eff
    if out.get("programme_cost") is None:
        raise ParameterError(f"{what}.effects is given without programme_cost (effects per year value a cost-benefit)")
    if not out["event_study"] or isinstance(out["start"], dict) or out["model"] != "linear":
        raise ParameterError(f"{what}.effects per year come from the event study: they need event_study: true, one "
                             "start for every area and the linear model")
    if isinstance(eff, list):
        for k in ("programme_cost", "exposed"):
            if isinstance(out[k], list) and len(out[k]) != len(eff):
                raise ParameterError(f"{what}: {k} has {len(out[k])} years and effects {len(eff)}")
    return eff


def check_evaluation(value, where: str = "", base: Path | None = None, root: Path | None = None,
                     spec_path=None) -> dict | None:
    """Check the ``evaluation`` section of a parameter set as data (nothing is run): known keys,
    types, finite numbers, the treated condition parsed by :mod:`survey.expr` (never evaluated
    as code), names of columns as identifiers, the crime types in the spec and the unit-cost
    table.  Returns it normalized (defaults filled in, the unit-cost path absolute)."""
    if value is None:
        return None
    what = f"{where}evaluation"
    if not isinstance(value, dict):
        raise ParameterError(f"{what} must be a mapping {{outcome:, treated:, period:, start:, ...}}, not {value!r}")
    bad = [k for k in value if k not in EVALUATION_KEYS]
    if bad:
        raise ParameterError(f"{what}: unknown key '{bad[0]}'{_did_you_mean(bad[0], EVALUATION_KEYS)} "
                             f"(keys: {', '.join(EVALUATION_KEYS)})")
    for k in ("outcome", "period", "start"):
        if value.get(k) is None:
            raise ParameterError(f"{what}: missing key '{k}' ({EVALUATION_KEYS[k]})")
    out: dict = {}
    oc = value["outcome"]
    if not isinstance(oc, str) or not (_IDENT.match(oc) or re.match(r"^(victim|count):[A-Za-z_][A-Za-z0-9_]*$", oc)):
        raise ParameterError(f"{what}.outcome must be victim:<crime>, count:<crime> or a column name, not {oc!r}")
    out["outcome"] = oc
    for k in ("period", "area"):
        v = value.get(k)
        if v is not None and not (isinstance(v, str) and _IDENT.match(v)):
            raise ParameterError(f"{what}.{k} must be a column name (letters, digits, _), not {v!r}")
        out[k] = v
    start = value["start"]
    if isinstance(start, dict):
        if not start:
            raise ParameterError(f"{what}.start: an empty mapping (give {{<area code>: <first period>}})")
        if out["area"] is None:
            raise ParameterError(f"{what}.start gives a first period per area: add area: <the column of the area codes>")
        for k, v in start.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, str)) or (isinstance(v, float)
                                                                              and not math.isfinite(v)):
                raise ParameterError(f"{what}.start: the first period of area {k!r} must be a number or text, not {v!r}")
        if value.get("model", "linear") != "linear":
            raise ParameterError(f"{what}: staggered starts (start per area) use the linear model only")
    elif isinstance(start, bool) or not isinstance(start, (int, float, str)) or (
            isinstance(start, float) and not math.isfinite(start)):
        raise ParameterError(f"{what}.start must be the first treated period (a number or text), not {start!r}")
    out["start"] = start
    tr = value.get("treated")
    if tr is None and not isinstance(start, dict):
        raise ParameterError(f"{what}: missing key 'treated' ({EVALUATION_KEYS['treated']})")
    if isinstance(tr, str):
        from .expr import ExpressionError, parse

        try:
            parse(tr)
        except ExpressionError as e:
            raise ParameterError(f"{what}.treated: {e}") from None
    elif isinstance(tr, dict):
        if set(tr) != {"variable", "codes"}:
            raise ParameterError(f"{what}.treated must be a condition or {{variable:, codes: [...]}}, not {tr!r}")
        if not (isinstance(tr["variable"], str) and _IDENT.match(tr["variable"])):
            raise ParameterError(f"{what}.treated.variable must be a column name, not {tr['variable']!r}")
        codes = tr["codes"]
        if not isinstance(codes, list) or not codes or not all(
                isinstance(c, (int, float, str)) and not isinstance(c, bool) for c in codes):
            raise ParameterError(f"{what}.treated.codes must be a list of codes, not {codes!r}")
    elif tr is not None:
        raise ParameterError(f"{what}.treated must be a condition or {{variable:, codes: [...]}}, not {tr!r}")
    out["treated"] = tr
    model = value.get("model", "linear")
    if model not in ("linear", "logistic"):
        raise ParameterError(f"{what}.model must be linear or logistic, not {model!r}{_did_you_mean(model, ('linear', 'logistic'))}")
    out["model"] = model
    cov = value.get("covariates")
    if cov is not None:
        if isinstance(cov, str):
            cov = [cov]
        if not isinstance(cov, list) or not all(isinstance(c, str) and _IDENT.match(c) for c in cov):
            raise ParameterError(f"{what}.covariates must be a list of column names, not {value.get('covariates')!r}")
    out["covariates"] = cov
    es = value.get("event_study", False)
    if not isinstance(es, bool):
        raise ParameterError(f"{what}.event_study must be true or false, not {es!r}")
    out["event_study"] = es
    rate = value.get("discount_rate", 0.035)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or not 0 <= rate < 1:
        raise ParameterError(f"{what}.discount_rate must be a number from 0 to below 1 (0.035 = 3.5% a year), "
                             f"not {rate!r}")
    out["discount_rate"] = float(rate)
    uc = value.get("unit_costs") or "default"
    if not isinstance(uc, str) or not uc.strip():
        raise ParameterError(f"{what}.unit_costs must be default or a CSV path, not {uc!r}")
    out["unit_costs"] = None if uc == "default" else str(resolve_input(uc, base, root or project_root(base),
                                                                         f"{what}.unit_costs"))
    cost = value.get("programme_cost")
    if cost is None:
        for k in ("exposed", "crime_type", "currency"):
            if value.get(k) is not None:
                raise ParameterError(f"{what}.{k} is given without programme_cost (no cost-benefit without it)")
        out.update(programme_cost=None, exposed=None, crime_type=None, currency=None)
    else:
        out["programme_cost"] = _per_year(cost, f"{what}.programme_cost")
        if value.get("exposed") is None or value.get("crime_type") is None:
            raise ParameterError(f"{what}: programme_cost needs exposed (units exposed) and crime_type (the unit "
                                 "cost of a crime averted)")
        out["exposed"] = _per_year(value["exposed"], f"{what}.exposed")
        n_c = len(out["programme_cost"]) if isinstance(out["programme_cost"], list) else 1
        n_e = len(out["exposed"]) if isinstance(out["exposed"], list) else 1
        if n_c > 1 and n_e > 1 and n_c != n_e:
            raise ParameterError(f"{what}: programme_cost has {n_c} years and exposed {n_e}")
        from .cost import CostError, load_unit_costs

        try:
            tab = load_unit_costs(out["unit_costs"])
        except CostError as e:
            raise ParameterError(f"{what}.unit_costs: {e}") from None
        ct = value["crime_type"]
        known = list(tab.crime_type)
        if ct not in known:
            raise ParameterError(f"{what}.crime_type: {ct!r} is not in the unit-cost table{_did_you_mean(str(ct), known)} "
                                 f"({len(known)} rows: {', '.join(known[:6])}, ...)")
        out["crime_type"] = ct
        cur = value.get("currency")
        if cur is not None and str(cur) != str(tab.currency.iloc[0]):
            raise ParameterError(f"{what}.currency: {cur!r} but the unit-cost table is in {tab.currency.iloc[0]} "
                                 "(convert the costs first)")
        out["currency"] = str(tab.currency.iloc[0])
    out["effects"] = _check_effects(value, out, what)
    if spec_path is not None and ":" in oc:
        from .spec import read_spec

        spec = read_spec(spec_path)
        v = spec.victimization
        crimes = (v.type_names() + list(v.groups)) if v is not None else []
        crime = oc.split(":", 1)[1]
        if crime not in crimes:
            raise ParameterError(f"{what}.outcome: crime type '{crime}' is not in spec {Path(spec_path).name}"
                                 f"{_did_you_mean(crime, crimes)} (known: {', '.join(crimes) or 'none'})")
    return out


# ---------------------------------------------------------------------------------------------
# parameter sets
# ---------------------------------------------------------------------------------------------
@dataclass
class RunConfig:
    """One parameter set, checked: run name, notebooks, options and notebook parameters."""

    name: str
    source: Path
    output_dir: Path
    notebooks: list[str]
    values: dict
    given: dict
    root: Path
    timeout: float | None = None
    html_plotlyjs: str = "file"
    description: str = ""
    raw: dict = field(default_factory=dict)
    evaluation: dict | None = None
    descriptions: dict = field(default_factory=dict)
    """The run's descriptions by language (:func:`run_descriptions`; ``description`` is the
    English one)."""
    engine: dict = field(default_factory=dict)

    def notebook_parameters(self, notebook: str, output_dir: Path) -> dict:
        """What papermill injects into ``notebook``: every parameter it declares, checked,
        with absolute paths (so the executed notebook records the whole run).  The evaluation
        notebook (not one of :data:`NOTEBOOKS`): the survey, the checked ``evaluation``
        section, the output folder and the report's language."""
        if notebook == "evaluation":
            return {"spec": self.values["spec"], "data_dir": self.values.get("data_dir"),
                    "cap_rule": self.values.get("cap_rule"), "evaluation": dict(self.evaluation or {}),
                    "output_dir": str(output_dir), "seed": self.values.get("seed", 1),
                    "language": self.values.get("language") or "en"}
        out = {k: self.values[k] for k in declared(notebook)}
        out["output_dir"] = str(output_dir)
        return out


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def read_parameter_set(path: str | Path, root: str | Path | None = None) -> RunConfig:
    """Read and check one parameter set (see the module docstring); every problem is one
    :class:`ParameterError` line naming the file and the key."""
    from .spec import read_yaml_file

    path = Path(path).expanduser()
    where = f"{path}: "
    raw = read_yaml_file(path, ParameterError, where, missing="parameter file not found")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParameterError(f"{where}the top level must be a mapping of parameters")
    path = path.resolve()
    root = Path(root).resolve() if root else project_root(path.parent)
    known = all_parameters()
    for key in raw:
        if key not in known and key not in RUN_KEYS:
            allowed = list(RUN_KEYS) + list(known)
            raise ParameterError(f"{where}unknown key '{key}'{_did_you_mean(key, allowed)}; keys: {', '.join(allowed)}")
    given = {k: v for k, v in raw.items() if k in known}
    if "spec" not in given:
        raise ParameterError(f"{where}missing required key 'spec'")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 100:
        raise ParameterError(f"{where}name must be letters, digits, '.', '_' or '-', not {name!r}")
    notebooks = raw.get("notebooks", list(NOTEBOOKS))
    if isinstance(notebooks, str):
        notebooks = [n.strip() for n in notebooks.split(",") if n.strip()]
    if not isinstance(notebooks, list) or not notebooks:
        raise ParameterError(f"{where}notebooks must be a list of notebook names")
    for nb in notebooks:
        if nb not in NOTEBOOKS:
            raise ParameterError(f"{where}notebooks: unknown notebook '{nb}'{_did_you_mean(nb, NOTEBOOKS)} "
                                 f"(notebooks: {', '.join(NOTEBOOKS)})")
    notebooks = [nb for nb in NOTEBOOKS if nb in notebooks]  # run order
    timeout = raw.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                or not math.isfinite(timeout) or not 0 < timeout <= MAX_TIMEOUT):
        raise ParameterError(f"{where}timeout must be a number of seconds > 0 and at most {MAX_TIMEOUT} (a week), "
                             f"not {timeout!r}")
    plotlyjs = raw.get("html_plotlyjs", "file")
    if plotlyjs not in ("file", "inline", "cdn"):
        raise ParameterError(f"{where}html_plotlyjs must be file, inline or cdn, not {plotlyjs!r}")
    descriptions = run_descriptions(raw, where)
    engine = engine_override(raw.get("engine"), where)
    values = validate(given, None, base=path.parent, root=root, where=where)
    check_capabilities(values, notebooks, explicit="notebooks" in raw, where=where)
    if values.get("small_areas") and "victimization" not in notebooks:  # (--notebooks subsets skip the step)
        raise ParameterError(f"{where}small_areas: the small-area step models the indicator table, which the "
                             f"'victimization' notebook writes; it is not among the notebooks "
                             f"({', '.join(notebooks)})")
    evaluation = check_evaluation(raw.get("evaluation"), where, base=path.parent, root=root,
                                  spec_path=values["spec"]) if "evaluation" in raw else None
    if "output_dir" in given:
        output_dir = Path(values["output_dir"])
    else:
        output_dir = root / "outputs" / name
        values["output_dir"] = str(output_dir)
    return RunConfig(name=name, source=path, output_dir=output_dir, notebooks=notebooks, values=values,
                     given=given, root=root, timeout=timeout, html_plotlyjs=plotlyjs,
                     description=descriptions.get("en", ""), raw=raw, evaluation=evaluation,
                     descriptions=descriptions, engine=engine)


# ---------------------------------------------------------------------------------------------
# small_areas: model-based small-area estimates (notebooks/local.py, survey.sae)
# ---------------------------------------------------------------------------------------------
SMALL_AREA_KEYS = ("indicator", "crime_type", "area", "auxiliary", "area_column", "area_label", "covariates",
                   "method", "smooth_variances", "benchmark", "shares")
"""Keys of a parameter set's ``small_areas`` section (see :func:`small_areas_value`)."""
SMALL_AREA_METHODS = ("REML", "ML")
SMALL_AREA_SMOOTHING = ("gvf", "none")
SMALL_AREA_REQUIRED = ("indicator", "crime_type", "area", "auxiliary", "covariates")


def _name_value(value, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_LABEL or any(
            ord(c) < 32 or ord(c) == 127 for c in value):
        raise ParameterError(f"{what} must be a name (one line of text), not {value!r}")
    return value


def _rows_text(mask, frame) -> str:
    """'3 of 8 rows (first: row 2)': data rows counted from 1 after the header."""
    import numpy as np

    idx = np.flatnonzero(np.asarray(mask, bool))
    return f"{len(idx)} of {len(frame)} rows (first: row {int(idx[0]) + 1})"


def small_areas_value(value, what: str, base: Path | None, root: Path) -> dict:
    """Check the ``small_areas`` section as data (types, allowed values), read its auxiliary
    file (CSV, one row per area) and check it: readable, the area column present with one
    non-empty id per row, every covariate (and the shares column) present and numeric and finite
    in every row, enough areas for the covariates.  Returns the section normalized (defaults
    filled in, ``auxiliary`` absolute).  The names are checked against the spec, and the area
    ids against the domain's values, by :func:`check_small_areas`."""
    import numpy as np
    import pandas as pd

    if not isinstance(value, dict):
        raise ParameterError(f"{what} must be a mapping {{indicator:, crime_type:, area:, auxiliary:, "
                             f"covariates:, ...}}, not {value!r}")
    bad = [k for k in value if k not in SMALL_AREA_KEYS]
    if bad:
        raise ParameterError(f"{what}: unknown key '{bad[0]}'{_did_you_mean(bad[0], SMALL_AREA_KEYS)} "
                             f"(keys: {', '.join(SMALL_AREA_KEYS)})")
    missing = [k for k in SMALL_AREA_REQUIRED if value.get(k) is None]
    if missing:
        raise ParameterError(f"{what}: missing required key '{missing[0]}' (required: {', '.join(SMALL_AREA_REQUIRED)})")
    out = {k: _name_value(value[k], f"{what}.{k}") for k in ("indicator", "crime_type", "area")}
    out["area_column"] = _name_value(value.get("area_column", "area"), f"{what}.area_column")
    out["area_label"] = (None if value.get("area_label") is None
                         else _name_value(value["area_label"], f"{what}.area_label"))
    out["covariates"] = _names(value["covariates"], f"{what}.covariates")
    method = value.get("method", "REML")
    if not isinstance(method, str) or method.upper() not in SMALL_AREA_METHODS:
        raise ParameterError(f"{what}.method must be one of {', '.join(SMALL_AREA_METHODS)}, not {method!r}")
    out["method"] = method.upper()
    smooth = value.get("smooth_variances", "none")
    if smooth is False:
        smooth = "none"
    if smooth not in SMALL_AREA_SMOOTHING:
        raise ParameterError(f"{what}.smooth_variances must be one of {', '.join(SMALL_AREA_SMOOTHING)}, "
                             f"not {smooth!r}{_did_you_mean(smooth, SMALL_AREA_SMOOTHING)}")
    out["smooth_variances"] = smooth
    bench = value.get("benchmark", False)
    if not isinstance(bench, bool):
        raise ParameterError(f"{what}.benchmark must be true or false, not {bench!r}")
    out["benchmark"] = bench
    out["shares"] = None if value.get("shares") is None else _name_value(value["shares"], f"{what}.shares")
    if bench and out["shares"] is None:
        raise ParameterError(f"{what}.benchmark: true needs 'shares' (the auxiliary file's column of population "
                             "shares of the areas)")
    aux = value["auxiliary"]
    if not isinstance(aux, (str, os.PathLike)):
        raise ParameterError(f"{what}.auxiliary must be a path, not {aux!r}")
    path = resolve_input(aux, base, root, f"{what}.auxiliary")
    out["auxiliary"] = str(path)
    try:
        frame = pd.read_csv(path, dtype={out["area_column"]: str}, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        first = " ".join(str(e).split())[:160]
        raise ParameterError(f"{what}.auxiliary: {path}: not a readable CSV file ({type(e).__name__}: {first})") from None
    where = f"{what}.auxiliary: {path}"
    if frame.empty:
        raise ParameterError(f"{where}: no rows (one row per area is needed)")
    col = out["area_column"]
    if col not in frame.columns:
        raise ParameterError(f"{where}: no area column '{col}'{_did_you_mean(col, frame.columns)} "
                             f"(columns: {', '.join(map(str, frame.columns))}; set small_areas.area_column)")
    ids = frame[col]
    empty = ids.isna() | (ids.astype(str).str.strip() == "")
    if empty.any():
        raise ParameterError(f"{where}: area column '{col}' is empty in {_rows_text(empty, frame)}")
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise ParameterError(f"{where}: area column '{col}' repeats area '{ids[dup].iloc[0]}' in "
                             f"{_rows_text(dup, frame)}")
    numeric = list(out["covariates"]) + ([out["shares"]] if out["shares"] else [])
    for c in numeric + ([out["area_label"]] if out["area_label"] else []):
        if c not in frame.columns:
            key = "shares" if c == out["shares"] else "area_label" if c == out["area_label"] else "covariates"
            raise ParameterError(f"{what}.{key}: column '{c}' is not in {path}{_did_you_mean(c, frame.columns)} "
                                 f"(columns: {', '.join(map(str, frame.columns))}; {len(frame)} rows)")
    for c in numeric:
        x = pd.to_numeric(frame[c], errors="coerce")
        bad = ~np.isfinite(x.to_numpy(dtype=float))
        key = "shares" if c == out["shares"] else "covariates"
        if bad.any():
            raise ParameterError(f"{what}.{key}: column '{c}' of {path} is not a finite number in "
                                 f"{_rows_text(bad, frame)}")
        if c == out["shares"] and ((x < 0).any() or x.sum() <= 0):
            raise ParameterError(f"{what}.shares: column '{c}' of {path} has negative shares or sums to 0 "
                                 f"({len(frame)} rows)")
    if len(frame) < len(out["covariates"]) + 3:
        raise ParameterError(f"{where}: {len(frame)} areas for {len(out['covariates'])} covariate(s) and an "
                             f"intercept: the model needs at least {len(out['covariates']) + 3}")
    return out


def domain_values(spec, domain: str, values: dict) -> list[str] | None:
    """The published values of a one-variable domain, from the spec (labels, recode groups)
    or the value labels in the data file's header; for a file without value labels the
    distinct values of the column.  None when they cannot be known before estimation (bands,
    crossed domains)."""
    dom = spec.domains[domain]
    if dom.cross is not None or dom.bands is not None:
        return None
    if dom.recode is not None:
        return [str(k) for k in dom.recode]
    if dom.labels:
        return [str(v) for v in dom.labels.values()]
    parsed, spec_path = spec_for({"spec": values["spec"], "data_dir": values.get("data_dir")})
    fname = dom.file or parsed.design.file
    f = parsed.files[fname]
    p = Path(f.path)
    p = p if p.is_absolute() else Path(spec_path).parent / p
    if p.suffix.lower() in (".sav", ".zsav", ".dta", ".por", ".sas7bdat", ".xpt"):
        import pyreadstat

        reader = {".sav": pyreadstat.read_sav, ".zsav": pyreadstat.read_sav, ".dta": pyreadstat.read_dta,
                  ".por": pyreadstat.read_por, ".sas7bdat": pyreadstat.read_sas7bdat,
                  ".xpt": pyreadstat.read_xport}[p.suffix.lower()]
        try:
            _, meta = reader(str(p), metadataonly=True)
        except Exception:  # an unreadable file is reported by the run's own checks
            return None
        labels = (meta.variable_value_labels or {}).get(dom.variable)
        if labels:
            return [str(v) for v in labels.values()]
    from .io import read

    try:
        frame, _ = read(p, columns=[dom.variable])
    except Exception:
        return None
    return sorted({str(v) for v in frame[dom.variable].dropna()})


def check_small_areas(spec, values: dict, where: str = "") -> None:
    """The ``small_areas`` section against the spec: the indicator exists, the crime type and the
    area domain are the spec's (and among the run's ``crime_types``/``domains`` when given), and
    every value of the domain has a row in the auxiliary file (areas only in the file are
    out-of-sample areas: they get synthetic estimates)."""
    import pandas as pd

    from .indicators import INDICATORS

    sa = values["small_areas"]
    what = f"{where}small_areas"
    name = Path(values["spec"]).name
    if sa["indicator"] not in INDICATORS:
        raise ParameterError(f"{what}.indicator: '{sa['indicator']}' is not an indicator"
                             f"{_did_you_mean(sa['indicator'], INDICATORS)} (indicators: {', '.join(INDICATORS)})")
    v = spec.victimization
    crimes = (v.type_names() + list(v.groups)) if v is not None else []
    if sa["crime_type"] not in crimes:
        raise ParameterError(f"{what}.crime_type: '{sa['crime_type']}' is not in spec {name}"
                             f"{_did_you_mean(sa['crime_type'], crimes)} (known: {', '.join(crimes) or 'none'})")
    if values.get("crime_types") and sa["crime_type"] not in values["crime_types"]:
        raise ParameterError(f"{what}.crime_type: '{sa['crime_type']}' is not among the run's crime_types "
                             f"({', '.join(values['crime_types'])}): the indicator table would not have it")
    if sa["area"] not in spec.domains:
        raise ParameterError(f"{what}.area: '{sa['area']}' is not a domain of spec {name}"
                             f"{_did_you_mean(sa['area'], spec.domains)} (domains: {', '.join(spec.domains)})")
    if values.get("domains") and sa["area"] not in values["domains"]:
        raise ParameterError(f"{what}.area: '{sa['area']}' is not among the run's domains "
                             f"({', '.join(values['domains'])}): the indicator table would not have it")
    known = domain_values(spec, sa["area"], values)
    if known is None:
        return
    aux = pd.read_csv(sa["auxiliary"], dtype={sa["area_column"]: str}, keep_default_na=False, na_values=[""])
    ids = set(aux[sa["area_column"]].astype(str))
    absent = [k for k in known if k not in ids]
    if absent:
        raise ParameterError(f"{what}.auxiliary: {sa['auxiliary']}: {len(absent)} of the {len(known)} values of "
                             f"domain '{sa['area']}' have no row in its {len(aux)} rows (column "
                             f"'{sa['area_column']}'): {', '.join(absent[:5])}{', ...' if len(absent) > 5 else ''}")


def engine_override(value, where: str = "") -> dict:
    """A parameter set's ``engine:`` (the schema of the spec's ``design.engine``), checked; only
    the keys given (they override the spec's)."""
    if value is None:
        return {}
    from pydantic import ValidationError

    from .spec import EngineSpec

    if not isinstance(value, dict):
        raise ParameterError(f"{where}engine must be a mapping {{mode:, chunk_rows:, memory_limit:}}, not {value!r}")
    keys = tuple(EngineSpec.model_fields)
    bad = [k for k in value if k not in keys]
    if bad:
        raise ParameterError(f"{where}engine: unknown key '{bad[0]}'{_did_you_mean(bad[0], keys)} "
                             f"(keys: {', '.join(keys)})")
    try:
        EngineSpec.model_validate(value)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise ParameterError(f"{where}engine.{loc}: {err['msg']} (got {err.get('input')!r})") from None
    return dict(value)
