"""The tables a notebook publishes, from the survey in memory or streamed from its file.

A run whose engine streams (the spec's ``design.engine`` or the ``engine`` parameter, see
:mod:`survey.stream_indicators`) never holds the respondent rows in memory:
:func:`survey.params.load_survey` then returns a :class:`StreamedSurvey` (the spec, the engine
plan, the row accounting; no microdata) instead of a :class:`survey.ingest.SurveyData`.  The
notebooks ask for their tables through this module, which sends each call to the in-memory
estimators or to the stream:

- :func:`indicator_table`, :func:`perception_by_victimization`: in memory, those of
  :mod:`survey.indicators`; streamed, rows of the run's indicator table.  That table is streamed
  once: a batch run streams it before its notebooks and writes it into the run folder with
  :data:`ENGINE_FILE` (the engine, the row accounting, the notebooks left out); a notebook run
  on its own streams it once per kernel.  Whole (indicator, crime, domain) blocks of one table
  are the table of a smaller selection (the publication rule's secondary suppression stays
  inside such a block), so a subset of the rows is what a call with that selection gives.  A
  selection the run's table does not hold is streamed on its own.  Families that cannot stream
  (:data:`survey.stream_indicators.STREAM_FAMILIES` says which) are left out and named in the
  table's ``attrs["not_streamed"]``;
- :func:`lorenz_curves`, :func:`design_summary` (and the domains' distributions),
  :func:`domain_differences`: in memory from the rows; streamed, each one more pass over the
  design file (:mod:`survey.stream_indicators`), with the same numbers;
- :func:`counted` and :func:`compare_waves`: the same answers without the microdata (a
  streamed wave is compared as an independent sample, and the comparison says so);
- what needs every row in memory raises :class:`StreamedError` (one line); the notebooks check
  :func:`streams` first and say in the report's language what is left out.  Whole notebooks
  left out of a streamed run: :data:`NEEDS_MEMORY`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import indicators as I
from .errors import SurveyError
from .ingest import SurveyData

ENGINE_FILE = "engine.json"
"""Written into a streamed run's folder by the batch: engine plan, the streamed table's
fingerprint, the row accounting and the notebooks left out (with their reasons)."""

NEEDS_MEMORY = {"risk": "report.stream.skip.risk", "evaluation": "report.stream.skip.evaluation"}
"""Notebooks a streamed run leaves out (they fit models on every respondent row) -> catalog key
of the reason (:func:`skip_reason`)."""

PERCEPTION_FAMILIES = ("feeling_safe", "worry", "likelihood", "likert")


class StreamedError(SurveyError, ValueError):
    """Something that needs the survey's rows in memory was asked of a streamed survey."""


# ---------------------------------------------------------------------------------------------
# the engine of a run
# ---------------------------------------------------------------------------------------------
def engine_plan_for(spec, spec_path, engine: dict | None = None):
    """The engine plan (:class:`survey.stream.EnginePlan`) of ``spec`` with a parameter set's or
    notebook's ``engine`` overrides, or None when it cannot be planned and stays in memory (a
    file that cannot stream under ``auto``).  A ``stream`` that cannot be is one line
    (:class:`survey.stream_indicators.StreamIndicatorError`)."""
    from .stream_indicators import StreamIndicatorError, engine_plan

    e = engine or {}
    try:
        return engine_plan(spec, spec_path, e.get("mode"), e.get("memory_limit"), e.get("chunk_rows"))
    except StreamIndicatorError:
        if (e.get("mode") or spec.design.engine.mode) == "stream":
            raise
        return None


def skip_reason(notebook: str, lang: str = "en") -> str:
    """Why ``notebook`` is not run when the survey streams, in ``lang``."""
    from .i18n import translate

    return translate(NEEDS_MEMORY[notebook], lang)


def skipped_notebooks(steps: list[str], lang: str = "en") -> list[dict]:
    """The steps of a run left out when it streams: [{notebook, reason}] (reason in ``lang``)."""
    return [{"notebook": nb, "reason": skip_reason(nb, lang)} for nb in steps if nb in NEEDS_MEMORY]


def write_engine_file(run_dir, plan, table: pd.DataFrame, values: dict, skipped: list[dict]) -> dict:
    """:data:`ENGINE_FILE` of a streamed run (returns its content)."""
    from .report import table_fingerprint

    info = {"mode": plan.mode, "engine": plan.line(), "chunk_rows": int(plan.chunk_rows),
            "rows": plan.rows, "table": table.attrs.get("engine"), "fingerprint": table_fingerprint(values),
            "accounting": list(table.attrs.get("accounting") or []), "skipped": list(skipped)}
    path = Path(run_dir) / ENGINE_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(info, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return info


def read_engine_file(out_dir) -> dict | None:
    """The content of :data:`ENGINE_FILE` in ``out_dir``, or None."""
    try:
        info = json.loads((Path(out_dir) / ENGINE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


# ---------------------------------------------------------------------------------------------
# the streamed survey
# ---------------------------------------------------------------------------------------------
class StreamedSurvey:
    """A survey whose design file is streamed (:mod:`survey.stream_indicators`): what
    :class:`survey.ingest.SurveyData` says about the spec (crime types and groups, units,
    reference period), the engine plan and the row accounting; no rows.  ``values``: the run's
    parameters (selections, output folder); ``publication``: (preset, parameters) of the run's
    rule; ``wave``: another wave (``compare``) than the run's own, never read from the run folder."""

    streamed = True

    def __init__(self, spec, spec_path, plan, values: dict, publication: tuple = (None, {}),
                 wave: dict | None = None):
        self.spec, self.spec_path, self.plan = spec, (Path(spec_path) if spec_path else None), plan
        self.values = dict(values)
        self.publication = (publication[0], dict(publication[1] or {}))
        self.wave = wave
        self._meta = SurveyData(spec=spec, spec_path=self.spec_path, respondents=pd.DataFrame(), incidents=None,
                                accounting=pd.DataFrame())
        self._table: pd.DataFrame | None = None
        self._accounting: pd.DataFrame | None = None
        self.info: dict | None = None
        self.source: str | None = None  # "run folder" (the batch's table) or "stream" (streamed here)

    def __repr__(self) -> str:
        return f"StreamedSurvey({self.spec.survey!r}, {self.engine})"

    # what the spec says
    @property
    def crime_types(self) -> list[str]:
        return self._meta.crime_types

    @property
    def crime_groups(self) -> list[str]:
        return self._meta.crime_groups

    def unit_of(self, crime: str) -> str:
        return self._meta.unit_of(crime)

    @property
    def reference_period(self) -> str:
        """As :attr:`survey.ingest.SurveyData.reference_period` (the streamed units are the
        combined ones where the spec combines rows)."""
        comb = self.spec.files[self.spec.design.file].combine
        if comb is not None and comb.period:
            return comb.period
        return self.spec.period or ""

    @property
    def engine(self) -> str:
        """The engine line (:meth:`survey.stream.EnginePlan.line`)."""
        return self.plan.line()

    # what the stream gives
    @property
    def accounting(self) -> pd.DataFrame:
        """The row accounting of the streamed pass (as :func:`survey.ingest.load`'s)."""
        if self._accounting is None:
            self._load()
        return self._accounting

    def table(self) -> pd.DataFrame:
        """The run's indicator table (its selections, every family that streams)."""
        if self._table is None:
            self._load()
        return self._table

    @property
    def skipped(self) -> list[dict]:
        """The notebooks the batch left out of this streamed run ([] when run on its own)."""
        if self._table is None:
            self._load()
        return list((self.info or {}).get("skipped") or [])

    def _load(self) -> None:
        from .report import read_indicator_table, table_fingerprint

        out = self.values.get("output_dir")
        if self.wave is None and out:
            info = read_engine_file(out)
            if info and info.get("fingerprint") == table_fingerprint(self.values) and \
                    info.get("chunk_rows") == int(self.plan.chunk_rows):
                table = read_indicator_table(out, self.values)
                if table is not None:
                    self._table, self.info, self.source = table, info, "run folder"
                    self._accounting = pd.DataFrame(info.get("accounting") or [],
                                                    columns=["step", "file", "rows", "detail"])
                    return
        from .stream_indicators import indicator_table as streamed

        preset, params = self.publication
        table = streamed(self.spec, self.spec_path, crime_types=self.values.get("crime_types"),
                         domains=self.values.get("domains"), publication=preset, chunk_rows=self.plan.chunk_rows,
                         **params)
        self._table, self.source = table, "stream"
        self._accounting = pd.DataFrame(table.attrs["accounting"], columns=["step", "file", "rows", "detail"])

    # what it cannot give
    def _memory(self, what: str):
        raise StreamedError(f"spec '{self.spec.survey}': {what} needs the survey's rows in memory, and this run "
                            f"streams its design file ({self.engine}); use engine mode: memory for it")

    def design(self, unit: str | None = None):
        self._memory("the design object (design(unit))")

    @property
    def respondents(self):
        self._memory("the respondent rows")

    @property
    def incidents(self):
        self._memory("the incident rows")


def streams(data) -> bool:
    """True for a :class:`StreamedSurvey` (the notebooks' test before what needs the rows)."""
    return isinstance(data, StreamedSurvey)


def engine_note(data, reader) -> str:
    """One paragraph for a streamed survey's report, in the reader's language: the engine, where
    the tables come from; "" in memory."""
    if not streams(data):
        return ""
    p = data.plan
    rows = reader.count(p.rows) if p.rows is not None else "?"
    return reader("report.stream.note", rows=rows, chunk=reader.count(int(p.chunk_rows)))


def skipped_text(data, reader) -> str:
    """The notebooks a streamed batch run left out, with their reasons, in the reader's
    language (Markdown); "" when none (in memory, or a notebook run on its own)."""
    if not streams(data) or not data.skipped:
        return ""
    lines = [reader("report.stream.skipped")]
    for s in data.skipped:
        nb = s["notebook"]
        lines.append(f"- **{reader(f'report.notebook.{nb}')}** (`{nb}`): {skip_reason(nb, reader.lang)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the tables
# ---------------------------------------------------------------------------------------------
def _status_crimes(spec, crimes: list[str]) -> list[str]:
    """The crimes whose victims and non-victims the perception items are split by (as
    :func:`survey.indicators.indicator_table`)."""
    v = spec.victimization
    if v is None or not crimes:
        return []
    return [c for c in crimes if c in v.groups] or [c for c in crimes if c in v.type_names()]


def _run_selection(data: StreamedSurvey) -> tuple[list[str], list[str]]:
    all_crimes = data.crime_types + data.crime_groups
    crimes = data.values.get("crime_types")
    doms = data.values.get("domains")
    return (list(crimes) if crimes is not None else all_crimes,
            list(doms) if doms is not None else list(data.spec.domains))


def _part_of_run_table(data: StreamedSurvey, crimes, doms, families, by_victimization, publication,
                       effective_df) -> pd.DataFrame | None:
    """The rows of the run's table that make the table of this selection, or None when the run's
    table does not hold it (another rule, crimes or domains outside the run's)."""
    if (publication[0], dict(publication[1])) != data.publication:
        return None
    if effective_df not in (None, data.spec.publication.effective_df):
        return None
    run_crimes, run_doms = _run_selection(data)
    if not (set(crimes) <= set(run_crimes) and set(doms) <= set(run_doms)):
        return None
    items = [i for i in data.spec.perception if i.indicator in families]
    status = _status_crimes(data.spec, crimes) if by_victimization and items else []
    if not set(status) <= set(_status_crimes(data.spec, run_crimes)):
        return None
    full = data.table()
    vic = full["indicator"].isin(I.VICTIMIZATION_FAMILIES)
    dom = full["domain"].astype(str)
    keep = (full["indicator"].isin(families)
            & (~vic | full["crime_type"].isin(crimes))
            & (dom.isin(["overall", *doms]) | dom.isin([f"victim__{c}" for c in status])))
    out = full[keep.to_numpy()].reset_index(drop=True)
    out.attrs = dict(full.attrs)
    return out


def indicator_table(data, crime_types=None, domains=None, indicators=None, publication=None, method: str = "auto",
                    by_victimization: bool = True, effective_df: str | None = None,
                    **publication_params) -> pd.DataFrame:
    """:func:`survey.indicators.indicator_table` of a survey in memory, or the same table of a
    :class:`StreamedSurvey` (the rows of the run's streamed table, else a stream of its own).
    Streamed, families that cannot stream are left out (``attrs["not_streamed"]``)."""
    if not streams(data):
        return I.indicator_table(data, crime_types=crime_types, domains=domains, indicators=indicators,
                                 publication=publication, method=method, by_victimization=by_victimization,
                                 effective_df=effective_df, **publication_params)
    from .stream_indicators import STREAM_FAMILIES
    from .stream_indicators import indicator_table as streamed

    families = list(indicators) if indicators is not None else list(I.INDICATORS)
    unknown = [f for f in families if f not in I.INDICATORS]
    if unknown:
        raise I.IndicatorError(f"unknown indicator(s): {', '.join(unknown)} (known: {', '.join(I.INDICATORS)})")
    left_out = [f for f in families if f not in STREAM_FAMILIES]
    families = [f for f in families if f in STREAM_FAMILIES]
    all_crimes = data.crime_types + data.crime_groups if data.spec.victimization is not None else []
    crimes = list(crime_types) if crime_types is not None else all_crimes
    doms = list(domains) if domains is not None else list(data.spec.domains)
    table = _part_of_run_table(data, crimes, doms, families, by_victimization, (publication, publication_params),
                               effective_df)
    if table is None:
        table = streamed(data.spec, data.spec_path, crime_types=crimes, domains=doms, indicators=families,
                         publication=publication, by_victimization=by_victimization, effective_df=effective_df,
                         chunk_rows=data.plan.chunk_rows, **publication_params)
    table.attrs["not_streamed"] = left_out
    return table


def perception_by_victimization(data, crime_types=None, publication=None, **publication_params) -> pd.DataFrame:
    """:func:`survey.indicators.perception_by_victimization` of a survey in memory or streamed
    (the victim-status rows of the streamed indicator table)."""
    if not streams(data):
        return I.perception_by_victimization(data, crime_types=crime_types, publication=publication,
                                             **publication_params)
    spec = data.spec
    if spec.victimization is None or not spec.perception:
        raise I.IndicatorError("perceptions by victimization need the spec's victimization and perception sections")
    known = data.crime_types + data.crime_groups
    crimes = list(crime_types) if crime_types is not None else (list(data.crime_groups) or list(data.crime_types))
    bad = [c for c in crimes if c not in known]
    if bad:
        raise I.IndicatorError(f"unknown crime type(s) or group(s): {', '.join(bad)} (known: {', '.join(known)})")
    families = list(dict.fromkeys(i.indicator for i in spec.perception))
    table = _part_of_run_table(data, crimes, [], families, True, (publication, publication_params), None)
    if table is None or not {f"victim__{c}" for c in crimes} <= set(table["domain"]):
        from .stream_indicators import indicator_table as streamed

        table = streamed(spec, data.spec_path, crime_types=crimes, domains=[], indicators=families,
                         publication=publication, by_victimization=True, chunk_rows=data.plan.chunk_rows,
                         **publication_params)
    wanted = table["domain"].astype(str).isin([f"victim__{c}" for c in crimes])
    if set(crimes) - set(table.loc[wanted, "domain"].astype(str).str.removeprefix("victim__")):
        raise StreamedError(f"spec '{spec.survey}': perceptions by victimization of {', '.join(crimes)} (groups and "
                            "types mixed) cannot be streamed in one table; ask for groups or for types")
    out = table[wanted.to_numpy()].reset_index(drop=True)
    out.attrs = dict(table.attrs)
    return out


def lorenz_curves(data, crimes: list[str], overs=("population", "victims"), points: int = 101) -> pd.DataFrame:
    """The Lorenz curves (overall) of each crime over each of ``overs``: in memory
    :func:`survey.lorenz.lorenz`, streamed one pass over the design file
    (:func:`survey.stream_indicators.lorenz_curves`: the weighted histogram of the counts gives
    the same curve).  Columns :data:`survey.lorenz.LORENZ_COLUMNS`, over by over, crime by crime."""
    if not streams(data):
        from .lorenz import lorenz

        return pd.concat([lorenz(data, c, over=o, points=points) for o in overs for c in crimes], ignore_index=True)
    from .stream_indicators import lorenz_curves as streamed

    return streamed(data.spec, data.spec_path, crimes=crimes, overs=overs, points=points,
                    chunk_rows=data.plan.chunk_rows)


def design_summary(data, units: list[str], domains=()) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """The design of each unit (columns :data:`survey.stream_indicators.DESIGN_SUMMARY_COLUMNS`)
    and the weighted distribution of each (domain, unit) pair of ``domains`` (the proportion of
    each value among the respondents, a column ``domain`` first): in memory from
    :meth:`survey.ingest.SurveyData.design`, streamed from one pass over the design file
    (:func:`survey.stream_indicators.design_summary`)."""
    if streams(data):
        from .stream_indicators import design_summary as streamed

        return streamed(data.spec, data.spec_path, units=units, domains=domains, chunk_rows=data.plan.chunk_rows)
    from .stream_indicators import DESIGN_SUMMARY_COLUMNS

    rows = []
    for unit in units:
        d = data.design(unit)
        row = {"unit": unit, "rows": d.n, "respondents": int((d.w > 0).sum()), "weighted_total": float(d.w.sum())}
        if hasattr(d, "n_strata"):
            row.update(kind="taylor", strata=d.n_strata, psus=d.n_psu, df=float(d.df))
        else:
            row.update(kind="replicate", replicates=d.n_replicates, method=d.method)
        rows.append({"method": "", **row})
    summary = pd.DataFrame(rows, columns=DESIGN_SUMMARY_COLUMNS)
    dists = []
    for dom, unit in domains:
        res = data.design(unit).proportion(dom)
        res.insert(0, "domain", dom)
        dists.append(res)
    return summary, dists


def domain_differences(data, comparisons, level: float = 0.95) -> pd.DataFrame:
    """:func:`survey.indicators.domain_difference` of each (indicator, crime, domain, a, b) of
    ``comparisons``, one row each (:data:`survey.indicators.COMPARISON_COLUMNS`): in memory, or
    streamed from one pass over the design file (the streamed estimate by the domain keeps the
    covariance of its cells: :func:`survey.stream_indicators.domain_differences`)."""
    comparisons = [tuple(c) for c in comparisons]
    if not comparisons:
        return pd.DataFrame(columns=I.COMPARISON_COLUMNS)
    if streams(data):
        from .stream_indicators import domain_differences as streamed

        return streamed(data.spec, data.spec_path, comparisons=comparisons, level=level,
                        chunk_rows=data.plan.chunk_rows)
    return pd.concat([I.domain_difference(data, *c, level=level) for c in comparisons], ignore_index=True)


def counted(data, crimes: list[str]) -> list[str]:
    """The crimes of ``crimes`` with a count of victimizations (the others are prevalence only)."""
    if not streams(data):
        return [c for c in crimes if data.respondents[f"n__{c}"].notna().any()]
    v = data.spec.victimization
    if v is None:
        return []
    has = {t.name for t in v.types if t.count is not None}
    return [c for c in crimes if set(v.members(c)) <= has]


STREAMED_METHOD = ("independent samples (streamed wave: the PSUs and households the waves share are not looked "
                   "for): SE = sqrt(se1^2 + se2^2), z test")


def compare_waves(before: pd.DataFrame, after: pd.DataFrame, data_a=None, data_b=None, samples: str = "auto",
                  level: float = 0.95) -> pd.DataFrame:
    """:func:`survey.indicators.compare_waves`; when a wave is streamed, its rows are not in
    memory to find the PSUs the waves share: the independent-samples formula, said in
    ``method`` (``samples: overlapping`` is then an error: one line)."""
    if not (streams(data_a) or streams(data_b)):
        return I.compare_waves(before, after, level, data_a=data_a, data_b=data_b, samples=samples)
    if samples == "overlapping":
        which = data_b if streams(data_b) else data_a
        raise StreamedError(f"compare.samples: overlapping needs both waves' rows in memory to find the PSUs they "
                            f"share, and this run streams ({which.engine}); use engine mode: memory")
    out = I.compare_waves(before, after, level)
    if samples != "independent":
        out["method"] = STREAMED_METHOD
    else:
        out["method"] = ("independent samples (declared: compare.samples = independent): "
                         "SE = sqrt(se1^2 + se2^2), z test")
    return out
