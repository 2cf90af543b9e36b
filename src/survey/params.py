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
language        ``en``, ``fr`` or ``es`` (labels are English until the translation catalogs)
seed            random seed (numpy's global generator is seeded with it)
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
                      "an earlier wave to compare with: {spec:, data_dir:, period:} (spec default: the same)"),),
}
RUN_KEYS = {
    "name": "run name: the output folder outputs/<name> and the log name (default: the file name)",
    "description": "free text, copied into the manifest",
    "notebooks": f"notebooks to run, in order (default: all: {', '.join(NOTEBOOKS)})",
    "timeout": "per-cell timeout in seconds (default: none)",
    "html_plotlyjs": "plotly.js in the HTML reports: file (one plotly.min.js per run, offline), "
                     "inline (self-contained files) or cdn",
    "engine": "in memory or streamed, overriding the spec's design.engine: {mode: auto | memory | stream, "
              "chunk_rows: N, memory_limit: 4GB}; when the run streams, the batch computes the indicator "
              "table from the Parquet file in batches and runs no notebook",
}
COMPARE_KEYS = ("spec", "data_dir", "period")


def declared(notebook: str) -> dict[str, Param]:
    """The parameters a notebook declares (common ones, then its own)."""
    if notebook not in NOTEBOOKS:
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
    also writes its row accounting to ``output_dir/accounting.csv`` (the manifest's)."""
    from .ingest import load

    values = params.as_dict() if isinstance(params, Params) else params
    parsed, spec_path = spec_for(values, wave)
    data = load(parsed, spec_path=spec_path)
    if write_accounting and wave is None:
        out = Path(values["output_dir"])
        out.mkdir(parents=True, exist_ok=True)
        from .report import neutral_frame

        neutral_frame(data.accounting).to_csv(out / "accounting.csv", index=False)
    return data


def data_files(values: dict) -> list[tuple[str, Path]]:
    """(role, path) of every file a run reads: the spec and its data files (with ``data_dir``),
    and those of the wave it compares with."""
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
    engine: dict = field(default_factory=dict)

    def notebook_parameters(self, notebook: str, output_dir: Path) -> dict:
        """What papermill injects into ``notebook``: every parameter it declares, checked,
        with absolute paths (so the executed notebook records the whole run)."""
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
    engine = engine_override(raw.get("engine"), where)
    values = validate(given, None, base=path.parent, root=root, where=where)
    check_capabilities(values, notebooks, explicit="notebooks" in raw, where=where)
    if "output_dir" in given:
        output_dir = Path(values["output_dir"])
    else:
        output_dir = root / "outputs" / name
        values["output_dir"] = str(output_dir)
    return RunConfig(name=name, source=path, output_dir=output_dir, notebooks=notebooks, values=values,
                     given=given, root=root, timeout=timeout, html_plotlyjs=plotlyjs,
                     description=str(raw.get("description") or ""), raw=raw, engine=engine)


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
