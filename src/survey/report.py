"""Report helpers for the notebooks and batch runs: plotly figures of indicator tables, the
indicator table files (CSV, Parquet and a metadata sidecar), the Excel workbook and the HTML
reports without code.

Figures are plain ``plotly.graph_objects.Figure`` objects shown through the
``plotly_mimetype`` renderer (:func:`setup_notebook`): an executed notebook keeps each figure
as JSON (a few kB), never plotly.js (``FigureWidget`` or the ``notebook`` renderer put ~5 MB
of JavaScript into every executed notebook).  :func:`notebook_to_html` turns the figures
into HTML when a report is written, loading plotly.js once per report from a file next to it
(offline), inline, or from the CDN.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import html
import inspect
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ._safe_csv import FORMULA_START, neutral_frame, neutral_text, write_safe_csv  # noqa: F401  (re-exported)
from .errors import SurveyError
from .i18n import (
    _SEPARATORS,
    NNBSP,
    Translator,
    catalog,
    check_language,
    format_number,
    has_key,
    slug,
    translate,
)

PLOTLY_MIME = "application/vnd.plotly.v1+json"
TABLE_FILES = ("indicators.csv", "indicators.parquet", "indicators.meta.json")
EXCEL_COLUMNS = ["survey", "period", "crime_type", "crime_label", "iccs", "unit", "domain", "domain_value",
                 "estimate", "se", "ci_low", "ci_high", "df", "cv", "deff", "n", "n_cases", "weighted_base",
                 "measure", "reliability", "flag_reason", "suppressed", "suppression_reason", "sdg_indicator",
                 "sdg_deviation"]


# ---------------------------------------------------------------------------------------------
# notebooks
# ---------------------------------------------------------------------------------------------
def setup_notebook() -> None:
    """Plotly figures as JSON (``plotly_mimetype``), pandas display settings for reports."""
    import plotly.io as pio

    pio.renderers.default = "plotly_mimetype"
    pio.templates.default = "plotly_white"
    pd.set_option("display.max_rows", 200)
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 160)


def md(text: str) -> None:
    """Show Markdown built from results (prose that quotes the numbers).  HTML in it is shown
    as text (spec titles, sources and labels are data, never markup): see :func:`safe_markdown`."""
    from IPython.display import Markdown, display

    display(Markdown(safe_markdown(text)))


_HARMFUL_LINK = re.compile(r"\]\(\s*<?\s*(?:javascript|vbscript|data|file)\s*:", re.IGNORECASE)


def safe_markdown(text: str) -> str:
    """Markdown with raw HTML neutralized: ``<`` and ``>`` become entities (Markdown passes raw
    HTML such as ``<script>`` straight into the report), and links to ``javascript:``,
    ``vbscript:``, ``data:`` or ``file:`` URLs lose their target.  Idempotent (already escaped
    text is left alone), so the reports can apply it again to every Markdown output."""
    text = str(text).replace("<", "&lt;").replace(">", "&gt;")
    return _HARMFUL_LINK.sub("](#blocked:", text)


def publish_csv(frame: pd.DataFrame, path, index: bool = False) -> Path:
    """A CSV a run publishes (the notebooks' tables): text cells that a spreadsheet would run as
    a formula get a leading quote (:func:`neutral_frame`), ``\\n`` line ends, written atomically.
    Returns the path."""
    return write_safe_csv(frame, path, index=index)


def no_counts_sentence(what: str, lang: str = "en") -> str:
    """The one sentence a report section prints when the survey has screeners but no count item
    ("how many times") for the selected crime types."""
    return translate("report.no_counts", lang, what=what)


def fmt(x, digits: int = 1, lang: str = "en") -> str:
    """A number for prose: thousands separators (the language's), '..' when missing (suppressed)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ".."
    if lang != "en":
        return format_number(x, lang, 0 if abs(x) >= 1000 else digits)
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def _getter(row):
    def get(key, default=None):
        if hasattr(row, "_fields"):
            return getattr(row, key, default)
        return row.get(key, default) if hasattr(row, "get") else row[key]
    return get


def ci_text(row, digits: int = 1, lang: str = "en", reader: Reader | None = None) -> str:
    """'12.3% (95% CI 10.1 to 14.5)' for a row of the indicator table (a Series, a mapping or
    a row of ``itertuples``); '..' with the reason when suppressed.  In ``lang`` (or the
    language of ``reader``, which also translates the reason's data labels)."""
    reader = reader or Reader(lang)
    lang = reader.lang
    get = _getter(row)
    if bool(get("suppressed", False)) or pd.isna(get("estimate")):
        reason = get("suppression_reason")
        reason = reader.reason(reason) if reason else translate("report.word.not_estimable", lang)
        return translate("report.ci.suppressed", lang, reason=reason)
    measure = get("measure", "")
    if lang == "en":
        unit = "%" if measure == "%" else f" {measure}" if measure not in ("ratio", "index", "") else ""
    else:
        unit = (NNBSP + "%" if measure == "%" else f" {reader.tr.measure(measure)}"
                if measure not in ("ratio", "index", "") else "")
    return translate("report.ci.text", lang, value=fmt(get("estimate"), digits, lang) + unit,
                     low=fmt(get("ci_low"), digits, lang), high=fmt(get("ci_high"), digits, lang))


TABLE_COLUMNS_SHOWN = ["crime_label", "domain", "domain_value", "estimate", "ci_low", "ci_high", "cv", "n",
                       "n_cases", "reliability", "suppression_reason"]


def show_table(table: pd.DataFrame, columns=None, digits: int = 1, reader: Reader | None = None):
    """A compact, rounded view of indicator rows for a report.  With a ``reader`` in French or
    Spanish: translated headers and labels, numbers written the language's way (text)."""
    cols = columns or TABLE_COLUMNS_SHOWN
    view = table[[c for c in cols if c in table.columns]].copy()
    if reader is not None and reader.lang != "en":
        return reader.frame(table, [c for c in cols if c in table.columns], digits)
    for c in ("estimate", "ci_low", "ci_high", "se"):
        if c in view:
            view[c] = view[c].round(digits)
    if "cv" in view:
        view["cv"] = (view["cv"] * 100).round(1)
        view = view.rename(columns={"cv": "cv %"})
    return view.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# the language of a report
# ---------------------------------------------------------------------------------------------
CROSS = " × "
_DECIMAL = {lang: seps[1] for lang, seps in _SEPARATORS.items()}
_NUMERIC_DIGITS = {"estimate": None, "ci_low": None, "ci_high": None, "se": 3, "cv": 1, "deff": 2, "df": 0,
                   "n": 0, "n_cases": 0, "weighted_base": 0, "estimate_a": None, "estimate_b": None,
                   "difference": None, "p_value": 3, "cells": 0, "suppressed_cells": 0, "flagged": 0,
                   "events": 0, "observed": 3, "auc": 3, "brier": 4, "log_loss": 4, "F": 2, "df1": 0, "df2": 0,
                   "direct": None, "direct_se": None, "eblup": None, "rmse": None, "gamma": 3, "effect": None,
                   "t": 2}


class Reader:
    """What a report says in one language (``en``, ``fr``, ``es``): catalog strings
    (``survey.i18n``), numbers written the language's way, and the spec's labels in that
    language (``SurveySpec.translations``: title, crime types, items, domains and their
    values), else the catalogs' labels, else the data's.  In English the data's labels are
    kept as they are (the published English reports do not change).

    >>> Reader("fr").t("report.word.none")
    'aucune'
    """

    def __init__(self, lang: str = "en", spec=None, translations: list[dict] | None = None):
        self.lang = check_language(lang)
        self.tr = Translator(self.lang)
        self.spec = spec
        rows = translations if translations is not None else (spec.translations() if spec is not None else [])
        self._own = {(r["kind"], str(r["name"]), str(r.get("value") or "")): str(r["text"])
                     for r in rows if r.get("language") == self.lang}
        self._values = {str(r.get("value")): str(r["text"]) for r in rows
                        if r.get("language") == self.lang and r["kind"] == "value"}
        self.survey = getattr(spec, "survey", None)

    def t(self, key: str, **fmt_) -> str:
        return self.tr(key, **fmt_)

    __call__ = t

    @property
    def sep(self) -> str:
        """The separator of a list of clauses ("; ", French: a narrow no-break space first)."""
        return self.t("report.word.list_separator")

    # ----- numbers ----------------------------------------------------------------------------
    def num(self, x, digits: int = 1) -> str:
        """A number for prose (:func:`fmt`)."""
        return fmt(x, digits, self.lang)

    def ci(self, row, digits: int = 1) -> str:
        return ci_text(row, digits, reader=self)

    def count(self, n) -> str:
        return fmt(n, 0, self.lang)

    def sig(self, x, digits: int = 4) -> str:
        """A number with ``digits`` significant digits (``format(x, ".4g")``), the language's
        decimal separator."""
        text = format(float(x), f".{digits}g")
        return text.replace(".", _DECIMAL[self.lang])

    def method_note(self, changes: pd.DataFrame) -> str:
        """How a wave comparison (``survey.indicators.compare_waves``) got its SEs, in one
        sentence: independent samples (found or declared) or overlapping samples with the number
        of shared PSUs and households (the ``method`` column says it row by row)."""
        method = str(changes["method"].iloc[0]) if len(changes) and "method" in changes else ""
        if method.startswith("overlapping samples"):
            return self.t("report.sum.method_overlapping", psus=self.count(int(changes["shared_psus"].iloc[0])),
                          units=self.count(int(changes["shared_units"].iloc[0])))
        if method.startswith("independent samples (declared"):
            return self.t("report.sum.method_declared")
        if method.startswith("independent samples (streamed"):  # survey.tables.STREAMED_METHOD
            return self.t("report.sum.method_streamed")
        return self.t("report.sum.method_independent")

    # ----- labels -----------------------------------------------------------------------------
    def title(self, default: str = "") -> str:
        spec = self.spec
        own = self._own.get(("title", str(self.survey), ""))
        if own:
            return own
        return default or (getattr(spec, "title", None) or str(self.survey or ""))

    def crime(self, code: str, default: str | None = None) -> str:
        """A crime type, group or perception item."""
        if self.lang == "en" and default:
            return str(default)
        own = self._own.get(("crime", str(code), "")) or self._own.get(("item", str(code), ""))
        return own or self.tr.crime(str(code), default, survey=self.survey)

    def indicator(self, code: str, default: str | None = None) -> str:
        if self.lang == "en" and default:
            return str(default)
        return self.tr.indicator(code, default)

    def definition(self, code: str, default: str = "") -> str:
        return default if self.lang == "en" and default else self.tr.definition(code, default)

    def domain(self, name: str, default: str | None = None) -> str:
        """A domain's name (a crossed domain: its parts; ``victim__<crime>``: victims or not)."""
        name = str(name)
        if self.lang == "en" and default:
            return str(default)
        own = self._own.get(("domain", name, ""))
        if own:
            return own
        if name.startswith("victim__"):
            return self.t("domain.victim_status", crime=self.crime(name[len("victim__"):]))
        if has_key(f"domain.{name}") or "__" not in name:
            return self.tr.domain(name, default)
        return CROSS.join(self.domain(p) for p in name.split("__") if p)

    def value(self, domain: str, value) -> str:
        """A domain value (a crossed value: each part)."""
        value, domain = str(value), str(domain)
        if self.lang == "en":
            return value
        if domain == "overall":
            return self.t("value.all")
        if domain.startswith("victim__") and value in ("victims", "non-victims"):
            return self.t(f"value.{value.replace('-', '_')}")
        return CROSS.join(self._own.get(("value", domain, p)) or self._values.get(p) or self.tr.value(p)
                          for p in value.split(CROSS))

    def cell(self, value) -> str:
        """A domain value whose domain is not known (the cell a secondary suppression protects)."""
        value = str(value)
        if self.lang == "en":
            return value
        return CROSS.join(self._values.get(p) or self.tr.value(p) for p in value.split(CROSS))

    def period(self, period) -> str:
        period = str(period)
        if self.lang == "en":
            return period
        return ", ".join(self.tr.get(f"period.{slug(p.strip())}", p.strip()) for p in period.split(","))

    def unit(self, unit: str, plural: bool = True) -> str:
        if self.lang == "en":
            return {"household": "households", "person": "persons"}.get(str(unit), str(unit))
        return self.tr.unit(str(unit))

    def measure(self, measure: str) -> str:
        return str(measure) if self.lang == "en" else self.tr.measure(measure)

    def reliability(self, value: str) -> str:
        return str(value) if self.lang == "en" else self.tr.reliability(value)

    def reason(self, text: str) -> str:
        """A flag or suppression reason (the data text in English)."""
        text = str(text or "")
        if self.lang == "en" or not text:
            return text
        m = re.match(r"^secondary suppression \(protects (?P<cell>.+)\)$", text)
        if m:
            return self.t("reason.secondary", cell=self.cell(m["cell"]))
        return self.tr.reason(text)

    def data_text(self, text: str) -> str:
        """A fixed English text of the indicator table (cap rule, SDG deviation) in the language,
        when the catalogs know it (``report.data.*`` keys whose English is that text)."""
        text = str(text or "")
        if self.lang == "en" or not text:
            return text
        key = _data_texts().get(text)
        return self.t(key) if key else text

    def model(self, name: str) -> str:
        """A model of the risk report: ``risk_<crime>`` is the risk of that crime; other models
        (the run's ``models``) keep their names."""
        name = str(name)
        if self.lang == "en" or not name.startswith("risk_"):
            return name
        return self.t("report.risk.model", crime=self.crime(name[len("risk_"):]))

    def outcome(self, outcome: str) -> str:
        """A model's outcome (``victim:<crime>``, ``count:<crime>``, ``not <item>``, ``<item>``)."""
        outcome = str(outcome)
        if self.lang == "en":
            return outcome
        for prefix, key in (("victim:", "report.risk.outcome_victim"), ("count:", "report.risk.outcome_count")):
            if outcome.startswith(prefix):
                return self.t(key, crime=self.crime(outcome[len(prefix):]))
        if outcome.startswith("not "):
            return self.t("report.risk.outcome_not", item=self.crime(outcome[4:]))
        return self.crime(outcome)

    def term(self, term: str, reference: str = "") -> str:
        """A model term ``C(<domain>)[T.<level>]`` as '<domain>: <level> (vs <reference level>)'."""
        m = re.match(r"^C\((?P<var>\w+)\)\[T\.(?P<level>.*)\]$", str(term))
        if not m:
            return str(term)
        var, level = m["var"], m["level"]
        ref = str(reference or "").removesuffix(" (reference)").partition(": ")[2]
        label = f"{self.domain(var, var)}: {self.value(var, level)}"
        return self.t("report.risk.term", term=label, reference=self.value(var, ref)) if ref else label

    def status(self, value: str) -> str:
        """'suppressed' or a reliability word."""
        if value == "suppressed":
            return value if self.lang == "en" else self.t("word.suppressed")
        return self.reliability(value)

    # ----- the loader's row accounting --------------------------------------------------------
    def accounting_step(self, step: str) -> str:
        """A step of ``SurveyData.accounting`` (``read``, ``exclude: <rule>``...) in the language."""
        step = str(step)
        if self.lang == "en":
            return step
        if step.startswith("exclude: "):
            what = step[len("exclude: "):]
            if what == "unmatched":
                return self.t("report.acc.step.exclude_unmatched")
            if what == "non-respondent":
                return self.t("report.acc.step.exclude_non_respondent")
            if what.startswith("unmatched "):
                return self.t("report.acc.step.exclude_unmatched_file", file=what[len("unmatched "):])
            return self.t("report.acc.step.exclude", rule=self._rule(what) or self.t("report.acc.rule.unnamed", name=what))
        key = f"report.acc.step.{slug(step)}"
        return self.t(key) if has_key(key) else step

    def _rule(self, name: str) -> str | None:
        """An exclusion rule's label in the language: the spec's (``label: {fr: ...}``), else
        the catalogs' (``report.acc.rule.<survey>.<name>``, else ``report.acc.rule.<name>``),
        None when neither knows it."""
        own = self._own.get(("rule", str(name), ""))
        if own:
            return own
        for key in (f"report.acc.rule.{slug(str(self.survey or ''))}.{name}", f"report.acc.rule.{name}"):
            if has_key(key):
                return self.t(key)
        return None

    def accounting_detail(self, step: str, detail: str) -> str:
        """The detail of an accounting row in the language: the loader's fixed sentences
        (:data:`_ACCOUNTING_DETAILS`; crime types, items and domains by their labels); anything
        else (a spec's own text) as it is."""
        step, detail = str(step), str(detail or "")
        if self.lang == "en" or not detail:
            return detail
        if step.startswith("exclude: ") and not step.startswith(("exclude: unmatched", "exclude: non-respondent")):
            name = step[len("exclude: "):]
            return self._rule(name) or self.t("report.acc.detail.rule_unlabelled", name=name)
        if step == "cap":
            return self._cap_detail(detail)
        if step == "combine" and _COMBINE.match(detail):
            return self._combine_detail(_COMBINE.match(detail))
        if step == "series" and _SERIES.match(detail):
            m = _SERIES.match(detail)
            return self.t("report.acc.detail.series" + ("_cap" if m["cap"] else ""), var=m["var"],
                          unknown=self._decimal(m["unknown"]), cap=self._decimal(m["cap"] or ""),
                          n=self.count(int(m["n"])))
        if step == "incidents counted" and _COUNTED.match(detail):
            return ", ".join(f"{self.crime(c)}{self.t('report.acc.colon')}{self.count(int(n))}"
                             for c, n in (part.rsplit(": ", 1) for part in detail.split(", ")))
        for key, pattern, steps in _ACCOUNTING_DETAILS:
            if steps and step not in steps:
                continue
            m = pattern.match(detail)
            if m:
                g = m.groupdict()
                if "item" in g:
                    g["item"] = self.crime(g["item"])
                if "domain" in g:
                    g["domain"] = self.domain(g["domain"])
                if "parts" in g:
                    g["parts"] = ", ".join(self.domain(x) for x in g["parts"].split(", "))
                for k in ("n", "m", "chunk"):
                    if k in g:
                        g[k] = self.count(int(g[k]))
                return self.t(f"report.acc.detail.{key}", **g)
        return detail

    def _decimal(self, text: str) -> str:
        """A number the loader wrote with ``:g`` ("1.5") with the language's decimal separator."""
        return str(text).replace(".", _DECIMAL[self.lang])

    def _combine_detail(self, m: re.Match) -> str:
        """The combine row's detail (rows combined into units, how the unit's weight is made,
        domains whose value changed within the period) in the language."""
        text = self.t("report.acc.detail.combine", rows=self.count(int(m["rows"])), units=self.count(int(m["units"])),
                      keys=m["keys"], respondent=self.count(int(m["resp"])), several=self.count(int(m["multi"])),
                      weights=self.t(f"report.acc.combine.weights_{m['weights']}"))
        if m["changed"]:
            parts = []
            for part in m["changed"].split(", "):
                name, _, k = part.rpartition(" ")
                parts.append(f"{self.domain(name)} {self.count(int(k))}" if name and k.isdigit() else part)
            text += self.t("report.acc.combine.changed", domains=", ".join(parts))
        return text

    def _cap_detail(self, detail: str) -> str:
        """The cap row's detail ('percentile 98 per type: burglary cap 3 (2 respondents capped);
        ...'): the rule and each crime type's cap in the language; a part the patterns do not
        know stays as it is."""
        rule, sep, parts = detail.partition(": ")
        m = re.match(r"^percentile (?P<p>[\d.]+) (?P<by>pooled over types|per type)$", rule)
        if m:
            rule = self.t("report.acc.cap.percentile_" + ("pooled" if m["by"].startswith("pooled") else "per_type"),
                          p=m["p"].replace(".", _DECIMAL[self.lang]))
        elif re.match(r"^fixed [\d.]+$", rule):
            rule = self.t("report.acc.cap.fixed", value=rule[len("fixed "):].replace(".", _DECIMAL[self.lang]))
        out = []
        for part in parts.split("; ") if sep else []:
            m = re.match(r"^(?P<crime>[\w.-]+) cap (?P<value>[\d.]+) \((?P<n>\d+) respondents capped\)$", part)
            out.append(self.t("report.acc.cap.part", crime=self.crime(m["crime"]), n=self.count(int(m["n"])),
                              value=m["value"].replace(".", _DECIMAL[self.lang])) if m else part)
        return rule + (self.t("report.acc.colon") + self.sep.join(out) if sep else "")

    def accounting(self, acc: pd.DataFrame, headers: bool = True) -> pd.DataFrame:
        """The loader's row accounting (step, file, rows, detail) for a report: steps and
        details in the language, rows counted the language's way, headers translated
        (``headers``).  ``accounting.csv`` keeps the loader's English (it is data)."""
        out = acc.copy()
        if self.lang == "en":
            return out
        out["step"] = [self.accounting_step(x) for x in acc["step"]]
        out["detail"] = [self.accounting_detail(st, d) for st, d in zip(acc["step"], acc["detail"])]
        if headers:
            out["rows"] = [self.count(x) for x in acc["rows"]]
            out.columns = [self.t(f"report.acc.col.{c}") if has_key(f"report.acc.col.{c}") else c
                           for c in out.columns]
        return out

    # ----- tables -----------------------------------------------------------------------------
    def header(self, column: str) -> str:
        """A column header: the English column name, or its translation (``report.col.*``)."""
        if self.lang == "en":
            return column
        return self.tr.get(f"report.col.{column}", column)

    def labelled(self, table: pd.DataFrame) -> pd.DataFrame:
        """A copy of indicator rows whose label columns are in the language: ``crime_label``,
        ``domain`` (its name), ``domain_value``, ``indicator``, ``unit``, ``measure``,
        ``reliability``, the reasons, ``period``, ``cap_rule``, ``sdg_deviation``."""
        out = table.copy()
        if self.lang == "en":
            return out
        rows = table

        def col(name, fn):
            if name in out.columns:
                out[name] = [fn(r) for r in rows.itertuples(index=False)]

        for c in ("a", "b"):  # the two categories of a difference
            if c in rows.columns and "domain" in rows.columns:
                out[c] = [self.value(d, v) for d, v in zip(rows["domain"], rows[c])]
        if "crime_label" in rows.columns:
            codes = rows["crime_type"] if "crime_type" in rows.columns else rows["crime_label"]
            out["crime_label"] = [self.crime(c, lab) for c, lab in zip(codes, rows["crime_label"])]
        if "domain_value" in rows.columns:
            doms = rows["domain"] if "domain" in rows.columns else [""] * len(rows)
            out["domain_value"] = [self.value(d, v) for d, v in zip(doms, rows["domain_value"])]
        col("domain", lambda r: self.domain(r.domain))
        col("indicator", lambda r: self.indicator(r.indicator))
        col("unit", lambda r: self.unit(r.unit))
        col("measure", lambda r: self.measure(r.measure))
        col("reliability", lambda r: self.reliability(r.reliability))
        col("flag_reason", lambda r: self.reason(r.flag_reason))
        col("suppression_reason", lambda r: self.reason(r.suppression_reason))
        col("period", lambda r: self.period(r.period))
        col("cap_rule", lambda r: self.data_text(r.cap_rule))
        col("sdg_deviation", lambda r: self.data_text(r.sdg_deviation))
        if "crime_type" in rows.columns and "crime_label" not in rows.columns:
            out["crime_type"] = [self.crime(c) for c in rows["crime_type"]]
        return out

    def frame(self, table: pd.DataFrame, columns, digits: int = 1) -> pd.DataFrame:
        """Rows for display: labels in the language (:meth:`labelled`), numbers written the
        language's way (text), booleans as yes/no, headers translated."""
        view = (self.labelled(table) if self.lang != "en" else table)[list(columns)].copy()
        for c in view.columns:
            if c in _NUMERIC_DIGITS and pd.api.types.is_numeric_dtype(view[c]) and not pd.api.types.is_bool_dtype(view[c]):
                d = _NUMERIC_DIGITS[c]
                vals = view[c] * 100 if c == "cv" else view[c]
                view[c] = [format_number(v, self.lang, digits if d is None else d) for v in vals]
            elif pd.api.types.is_bool_dtype(view[c]):
                view[c] = [self.t("report.word.yes") if v else self.t("report.word.no") for v in view[c]]
        view.columns = [self.header(c) for c in view.columns]
        return view.reset_index(drop=True)


_COUNTED = re.compile(r"^[\w.-]+: \d+(, [\w.-]+: \d+)*$")
_COMBINE = re.compile(r"^(?P<rows>\d+) rows combined into (?P<units>\d+) units on (?P<keys>.+?) "
                      r"\((?P<resp>\d+) with a respondent row, (?P<multi>\d+) with 2\+\); "
                      r"weights: (?P<weights>sum|mean|first|last) over the unit's respondent rows"
                      r"(?:; domain value changed within the period \(last row's value used\): (?P<changed>.+))?$")
"""survey.ingest's ``combine`` detail."""
_SERIES = re.compile(r"^series incidents counted as (?P<var>\S+) \(unknown = (?P<unknown>[^,)]+)"
                     r"(?:, cap (?P<cap>[^)]+))?\); (?P<n>\d+) with unknown count$")
"""survey.ingest's ``series`` detail."""
_ACCOUNTING_DETAILS = [(key, re.compile(pattern), steps) for key, pattern, steps in (
    ("read", r"^(?P<file>.+): (?P<n>\d+) columns read$", ()),
    ("read_streamed", r"^(?P<file>.+): (?P<n>\d+) columns read in (?P<m>\d+) batches of up to (?P<chunk>\d+) rows "
                      r"\(streamed\)$", ()),
    ("joined", r"^columns of '(?P<file>.+)' joined on (?P<keys>.+)$", ()),
    ("all_respondents", r"^every row is a respondent$", ()),
    ("non_respondents_kept", r"^(?P<n>\d+) non-respondent rows kept for design information$", ()),
    ("unmatched_rows", r"^rows of '(?P<file>.+)' matching no row of '(?P<to>.+)' on (?P<keys>.+)$", ()),
    ("missing_weight", r"^non-respondent rows with a missing '(?P<var>.+)' get weight 0$", ()),
    ("unmatched_incidents", r"^incidents matching no respondent on (?P<keys>.+)$", ()),
    ("non_respondent_incidents", r"^incidents linked to non-respondent rows \(kept for design only\)$", ()),
    ("follow_up", r"^(?P<item>\S+): (?P<var>\S+) in (?P<codes>\[.*\]) answered by (?P<fu>\S+)$",
     ("perception follow-up",)),
    ("ignore_codes", r"^(?P<var>\S+) in (?P<codes>\[.*\])$", ("ignore codes",)),
    ("skip_zero", r"^(?P<var>\S+): not asked \(screener not yes\), counted as 0$", ()),
    ("skip_filter", r"^(?P<var>\S+): not asked \((?P<filter>\S+) in (?P<codes>\[.*\])\), counted as not a victim$", ()),
    ("skip_blank", r"^(?P<var>\S+): not asked \(blank: no\), counted as not a victim$", ()),
    ("dont_know", r"^(?P<var>\S+): (?P<codes>\[.*\]) counted as (?P<value>\S+)$", ("dont know",)),
    ("missing_count", r"^(?P<var>\S+): missing, a domain of its own$", ()),
    ("item_nonresponse", r"^(?P<var>\S+): (?P<codes>.*) \(refused, don't know\.\.\.\): out of the base$", ()),
    ("blank", r"^(?P<var>\S+): blank with no declared skip pattern: out of the base$", ()),
    ("perception_missing", r"^(?P<item>\S+): no answer \((?P<codes>.*); excluded from its base\)$", ()),
    ("below_band", r"^(?P<domain>\S+): (?P<n>\d+) rows below the first band$", ()),
    ("no_value_cross", r"^(?P<domain>\S+): respondents with no value in one of (?P<parts>.+)$", ()),
    ("no_value", r"^(?P<domain>\S+): respondents with no value$", ()),
)]
"""The loader's fixed accounting details (survey.ingest) -> catalog key ``report.acc.detail.<key>``
(placeholders: the named groups; only for the listed steps when given)."""


@functools.cache
def _data_texts() -> dict[str, str]:
    """English text of the indicator table's fixed phrases -> catalog key."""
    return {v: k for k, v in catalog("en").items() if k.startswith("report.data.")}


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def _hover(rows: pd.DataFrame, reader: Reader | None = None) -> list[str]:
    reader = reader or Reader()
    lang = reader.lang
    out = []
    for _, r in rows.iterrows():
        if bool(r["suppressed"]):
            out.append(translate("report.hover.suppressed", lang, reason=reader.reason(r["suppression_reason"]),
                                 n=fmt(r["n"], 0, lang) if lang != "en" else f"{r['n']:,}"))
            continue
        flag = reader.reason(r["flag_reason"]) if r["flag_reason"] else ""
        if lang == "en":
            n, cases = f"{r['n']:,}", f"{r['n_cases']:,}"
        else:
            n, cases = fmt(r["n"], 0, lang), fmt(r["n_cases"], 0, lang)
        out.append(translate("report.hover.estimate", lang, value=fmt(r["estimate"], 2, lang),
                             measure=reader.measure(r["measure"]), low=fmt(r["ci_low"], 2, lang),
                             high=fmt(r["ci_high"], 2, lang), cv=fmt(100 * r["cv"], 1, lang), n=n, cases=cases,
                             reliability=reader.reliability(r["reliability"]))
                   + (translate("report.hover.flag", lang, reason=flag) if flag else ""))
    return out


SEPARATORS = {"en": ".,", "fr": "," + NNBSP, "es": ",."}
"""plotly's ``layout.separators`` (decimal, thousands) per language."""


def _series_labels(rows: pd.DataFrame, column: str, reader: Reader) -> list[str]:
    """The labels of a category or series column of indicator rows, in the reader's language."""
    if reader.lang == "en" or column not in rows.columns:
        return rows[column].astype(str).tolist() if column in rows.columns else []
    if column == "crime_label":
        return [reader.crime(c, lab) for c, lab in zip(rows["crime_type"], rows["crime_label"])]
    if column == "domain_value":
        return [reader.value(d, v) for d, v in zip(rows["domain"], rows["domain_value"])]
    if column == "unit":
        return [reader.unit(u) for u in rows["unit"]]
    if column == "indicator":
        return [reader.indicator(i) for i in rows["indicator"]]
    if column == "domain":
        return [reader.domain(d) for d in rows["domain"]]
    return rows[column].astype(str).tolist()


def estimate_bars(rows: pd.DataFrame, category: str = "crime_label", series: str | None = None,
                  title: str = "", xaxis_title: str | None = None, height: int | None = None,
                  reader: Reader | None = None):
    """Horizontal bars of estimates with 95% CI error bars (one bar per ``category``, one colour
    per ``series``).  Suppressed cells have no bar; the hover text says why.  ``reader``: the
    language of the labels, hover texts and numbers (default English)."""
    import plotly.graph_objects as go

    reader = reader or Reader()
    rows = rows.copy()
    rows["_category"] = _series_labels(rows, category, reader)
    if series is not None:
        rows["_series"] = _series_labels(rows, series, reader)
    fig = go.Figure()
    groups = [(None, rows)] if series is None else list(rows.groupby("_series", sort=False, observed=True))
    for name, g in groups:
        est = g["estimate"].to_numpy(dtype=float)
        fig.add_trace(go.Bar(
            y=g["_category"].astype(str), x=est, orientation="h", name=str(name) if name is not None else "",
            error_x=dict(type="data", symmetric=False, array=g["ci_high"].to_numpy(dtype=float) - est,
                         arrayminus=est - g["ci_low"].to_numpy(dtype=float)),
            hovertext=_hover(g, reader), hoverinfo="text+y"))
    measure = reader.measure(rows["measure"].iloc[0]) if len(rows) else ""
    n_cat = rows[category].nunique()
    fig.update_layout(title=title, barmode="group", showlegend=series is not None,
                      xaxis_title=xaxis_title or measure, yaxis=dict(autorange="reversed"),
                      height=height or max(320, 60 + 26 * n_cat * (1 if series is None else max(1, rows[series].nunique()))),
                      margin=dict(l=10, r=10, t=60, b=40), legend=dict(orientation="h", y=-0.15))
    if reader.lang != "en":
        fig.update_layout(separators=SEPARATORS[reader.lang])
    return fig


def domain_bars(table: pd.DataFrame, indicator: str, crimes, domain: str, title: str = "",
                reader: Reader | None = None):
    """An indicator by the categories of one domain, one colour per crime type, with the
    overall value for reference."""
    rows = table[(table["indicator"] == indicator) & table["crime_type"].isin(list(crimes))
                 & (table["domain"] == domain)]
    return estimate_bars(rows, category="domain_value", series="crime_label", title=title, reader=reader)


def lorenz_figure(curves: pd.DataFrame, ginis: dict | None = None, title: str = "", reader: Reader | None = None):
    """Lorenz curves (population share vs share of victimizations), one per crime type, with the
    line of equality; ``ginis`` maps crime label -> Gini for the legend."""
    import plotly.graph_objects as go

    reader = reader or Reader()
    lang = reader.lang
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name=translate("report.lorenz.equal", lang),
                             line=dict(dash="dot", color="grey")))
    for label, g in curves.groupby("label", sort=False):
        gi = (ginis or {}).get(label)
        shown = reader.crime(g["crime_type"].iloc[0], label) if "crime_type" in g.columns else str(label)
        name = f"{shown} (Gini {fmt(gi, 2, lang) if lang != 'en' else f'{gi:.2f}'})" \
            if gi is not None and not math.isnan(gi) else shown
        fig.add_trace(go.Scatter(x=g["population_share"], y=g["victimization_share"], mode="lines", name=name))
    fig.update_layout(title=title, xaxis_title=translate("report.lorenz.x", lang),
                      yaxis_title=translate("report.lorenz.y", lang), xaxis=dict(tickformat=".0%"),
                      yaxis=dict(tickformat=".0%"), height=480, legend=dict(orientation="h", y=-0.2))
    if lang != "en":
        fig.update_layout(separators=SEPARATORS[lang])
    return fig


def ratio_forest(table: pd.DataFrame, ratio: str = "odds_ratio", low: str = "or_ci_low", high: str = "or_ci_high",
                 title: str = "", label: str = "Odds ratio", reader: Reader | None = None):
    """Forest plot of odds or rate ratios with 95% CIs (log scale), intercept left out."""
    import plotly.graph_objects as go

    reader = reader or Reader()
    lang = reader.lang
    t = table[table["term"] != "Intercept"]
    if lang == "en":
        hover = [f"{r:.2f} (95% CI {lo:.2f} to {hi:.2f}), p = {p:.3g}"
                 for r, lo, hi, p in zip(t[ratio], t[low], t[high], t["p_value"])]
    else:
        hover = [translate("report.forest.hover", lang, value=fmt(r, 2, lang), low=fmt(lo, 2, lang),
                           high=fmt(hi, 2, lang), p=reader.tr.p(p))
                 for r, lo, hi, p in zip(t[ratio], t[low], t[high], t["p_value"])]
    fig = go.Figure(go.Scatter(
        x=t[ratio], y=t["term"], mode="markers",
        error_x=dict(type="data", symmetric=False, array=t[high] - t[ratio], arrayminus=t[ratio] - t[low]),
        hovertext=hover, hoverinfo="text+y"))
    fig.add_vline(x=1, line_dash="dot", line_color="grey")
    fig.update_layout(title=title, xaxis_type="log", xaxis_title=translate("report.forest.axis", lang, label=label),
                      showlegend=False, yaxis=dict(autorange="reversed"), height=max(320, 80 + 24 * len(t)),
                      margin=dict(l=10, r=10, t=60, b=40))
    if lang != "en":
        fig.update_layout(separators=SEPARATORS[lang])
    return fig


# ---------------------------------------------------------------------------------------------
# the indicator table on disk
# ---------------------------------------------------------------------------------------------
def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, Path):
        return str(o)
    return o


DESIGN_NOTES = {
    "srswr": "simple random sampling with replacement assumed: the file has no strata or PSU; standard errors "
             "ignore clustering and stratification",
    "no_psu": "stratified simple random sampling assumed: the file has no PSU; standard errors ignore clustering",
    "no_strata": "clustered sampling without strata assumed: the file has no strata; standard errors ignore "
                 "stratification",
}
"""What a report says when the spec gives fewer design variables than a complex sample has."""


def design_info(spec) -> dict:
    """The design a run's estimates assume, from the spec: ``kind`` (``full``: strata and PSU;
    ``replicate``: replicate weights; ``srswr``: weights only; ``no_psu``; ``no_strata``), the
    design columns and ``note``: one sentence stating a simplified design ("" otherwise), the
    manifest's ``design`` entry, the reports' and the dashboards' design note."""
    d = spec.design
    strata = [d.strata] if isinstance(d.strata, str) else list(d.strata or [])
    psu = [d.psu] if isinstance(d.psu, str) else list(d.psu or [])
    if d.replicate is not None:
        kind = "replicate"
    elif not strata and not psu:
        kind = "srswr"
    elif not psu:
        kind = "no_psu"
    elif not strata:
        kind = "no_strata"
    else:
        kind = "full"
    return {"kind": kind, "weights": list(d.weight_columns()), "strata": strata, "psu": psu,
            "replicate_weights": d.replicate is not None, "note": DESIGN_NOTES.get(kind, "")}


def design_note(kind: str | None, lang: str = "en") -> str:
    """The design note of :func:`design_info` (``kind``) in ``lang``: a lower-case clause in
    English (as the manifest's ``note``), the catalogs' sentence in French and Spanish; "" for
    a full or replicate design."""
    if kind not in DESIGN_NOTES:
        return ""
    return DESIGN_NOTES[kind] if check_language(lang) == "en" else translate(f"note.design.{kind}", lang)


def table_fingerprint(values: dict) -> str:
    """What determines an indicator table: spec, data, period, selections, rules."""
    keys = ("spec", "data_dir", "period", "domains", "crime_types", "publication", "cap_rule")
    return hashlib.sha256(json.dumps(_jsonable({k: values.get(k) for k in keys}), sort_keys=True).encode()).hexdigest()


def table_metadata(table: pd.DataFrame, data, values: dict | None = None) -> dict:
    """The indicator table's metadata: survey, source, rules, definitions, notes."""
    from .indicators import INDICATORS

    spec = data.spec
    fams = list(dict.fromkeys(table["indicator"]))
    return _jsonable({
        "survey": spec.survey, "title": spec.title, "period": spec.period, "source": spec.source,
        "licence": spec.licence, "publication_rule": table.attrs.get("publication_rule") or {},
        "cap_rule": sorted({c for c in table["cap_rule"].unique() if c}),
        "notes": list(table.attrs.get("notes") or []),
        "definitions": {f: {"label": INDICATORS[f].label, "measure": INDICATORS[f].measure,
                            "definition": INDICATORS[f].definition, "sdg": INDICATORS[f].sdg} for f in fams},
        "rows": int(len(table)), "columns": list(table.columns),
        "fingerprint": table_fingerprint(values or {}), "design": design_info(spec),
    })


def write_indicator_table(table: pd.DataFrame, out_dir, data, values: dict | None = None) -> list[Path]:
    """Write ``indicators.csv``, ``indicators.parquet`` and ``indicators.meta.json`` into
    ``out_dir``.  The same table gives the same bytes (no timestamps)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, pq, meta = (out / f for f in TABLE_FILES)
    tmp = out / ".indicators.tmp"
    tmp.mkdir(exist_ok=True)
    neutral_frame(table).to_csv(tmp / csv.name, index=False, lineterminator="\n")
    plain = table.copy()
    plain.attrs = {}
    plain.to_parquet(tmp / pq.name, index=False)
    (tmp / meta.name).write_text(json.dumps(table_metadata(table, data, values), indent=1, sort_keys=True) + "\n",
                                 encoding="utf-8")
    written = [csv, pq, meta]
    grid = tile_grid_frame(data.spec, table)
    if grid is not None:
        neutral_frame(grid).to_csv(tmp / TILE_GRID_FILE, index=False, lineterminator="\n")
        written.append(out / TILE_GRID_FILE)
    from .areas import AREAS_FILE, area_collection  # a spec's GeoJSON map areas, checked (issue 13)

    areas = area_collection(data.spec, getattr(data, "spec_path", None), table)
    if areas is not None:
        (tmp / AREAS_FILE).write_text(json.dumps(areas, separators=(",", ":")) + "\n", encoding="utf-8")
        written.append(out / AREAS_FILE)
    for f in written:
        (tmp / f.name).replace(f)
    tmp.rmdir()
    return written


TILE_GRID_FILE = "tile_grid.csv"


def tile_grid_frame(spec, table: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """The tile-grid maps the spec declares (``domains.<name>.tile_grid``) as one table with
    columns domain, domain_value, row, col (the dashboards' map input), or None.  With ``table``,
    a grid value that is not a published value of its domain is an error naming it."""
    rows = []
    for name, dom in spec.domains.items():
        if not dom.tile_grid:
            continue
        if table is not None:
            published = set(table.loc[table["domain"] == name, "domain_value"].astype(str))
            unknown = sorted(set(dom.tile_grid) - published)
            if published and unknown:
                raise SurveyError(f"spec domain '{name}': tile_grid value(s) {', '.join(unknown)} are not values of "
                                  f"the domain (published: {', '.join(sorted(published))})")
        for value, (r, c) in dom.tile_grid.items():
            rows.append({"domain": name, "domain_value": str(value), "row": int(r), "col": int(c)})
    return pd.DataFrame(rows, columns=["domain", "domain_value", "row", "col"]) if rows else None


def read_indicator_table(out_dir, values: dict | None = None) -> pd.DataFrame | None:
    """The indicator table written in ``out_dir`` (Parquet), or None when there is none or it
    was made with other parameters (``values``' fingerprint)."""
    out = Path(out_dir)
    pq, meta = out / "indicators.parquet", out / "indicators.meta.json"
    if not (pq.exists() and meta.exists()):
        return None
    m = json.loads(meta.read_text(encoding="utf-8"))
    if values is not None and m.get("fingerprint") != table_fingerprint(values):
        return None
    table = pd.read_parquet(pq)
    table.attrs["publication_rule"] = m.get("publication_rule")
    table.attrs["notes"] = m.get("notes")
    return table


# ---------------------------------------------------------------------------------------------
# Excel
# ---------------------------------------------------------------------------------------------
def rule_text(rule: dict, lang: str = "en") -> str:
    """The publication rule in words, with its effective parameters, in ``lang``."""
    from . import quality

    preset = (rule or {}).get("preset", "none")
    fn = quality.RULES.get(preset)
    params = {}
    if fn is not None:
        params = {k: p.default for k, p in inspect.signature(fn).parameters.items()
                  if p.default is not inspect.Parameter.empty}
    params.update({k: v for k, v in (rule or {}).items() if k != "preset" and v is not None})
    bands = params.get("cv_bands", (15.0, 30.0))
    if check_language(lang) != "en":
        def t(key, **kw):
            return translate(key, lang, **kw)

        def cap(text):
            return text[:1].upper() + text[1:]

        def pct(x):
            return format_number(x, lang, 0 if float(x).is_integer() else 1)

        bands_text = cap(t("rule.cv_bands", low=pct(bands[0]), high=pct(bands[1])))
        if preset == "bjs":
            text = t("report.rule.preset", preset="BJS", text=t("rule.bjs", min_cases=params.get("min_cases", 10),
                                                               max_cv=pct(params.get("max_cv", 50.0))))
        elif preset == "ons":
            text = t("report.rule.preset", preset="ONS", text=t("rule.ons", min_base=params.get("min_base", 50)))
            text += " " + bands_text
        elif preset == "cv_bands":
            text = bands_text + (" " + t("rule.cv_bands_suppress") if params.get("suppress_low") else "")
        else:
            text = cap(t("rule.none")) + " " + bands_text
        return " ".join((text, t("rule.secondary"), t("report.rule.no_case")))
    if preset == "bjs":
        text = (f"BJS: estimates resting on {params.get('min_cases', 10)} or fewer sample cases or with a CV above "
                f"{params.get('max_cv', 50.0):g}% are flagged 'interpret with caution'; nothing is suppressed")
    elif preset == "ons":
        text = (f"ONS: estimates on an unweighted base below {params.get('min_base', 50)} are suppressed; "
                f"reliability bands by CV (high up to {bands[0]:g}%, moderate up to {bands[1]:g}%, low above)")
    elif preset == "cv_bands":
        text = (f"CV bands: reliability high up to {bands[0]:g}%, moderate up to {bands[1]:g}%, low above"
                + ("; low-reliability estimates are suppressed" if params.get("suppress_low") else ""))
    else:
        text = f"none: reliability bands by CV ({bands[0]:g}%, {bands[1]:g}%); nothing suppressed"
    return (text + ". Secondary suppression: when a single cell of a domain is suppressed and the other cells and "
            "the overall value would give it back, the next smallest cell is suppressed too. Cells without a "
            "sample case are marked 'no sample cases'.")


def _cut(text: str, n: int) -> str:
    """``text`` in at most ``n`` characters, cut at a word boundary when it has to be cut."""
    if len(text) <= n:
        return text
    cut = text[:n]
    at = cut.rfind(" ")
    return (cut[:at] if at > n // 2 else cut).rstrip(" ,;:-–(")


def _sheet_name(name: str, used: set) -> str:
    """A sheet name Excel takes (31 characters, none of []:*?/\\), unique (case aside); a name
    cut to fit is cut between words, and a repeated one numbered."""
    base = _cut("".join(ch for ch in name if ch not in "[]:*?/\\").strip(), 31) or "sheet"
    out, i = base, 2
    while out.lower() in used:
        out = f"{_cut(base, 26)} ({i})"
        i += 1
    used.add(out.lower())
    return out


EXCEL_FORMATS = {"estimate": "#,##0.000", "se": "#,##0.000", "ci_low": "#,##0.000", "ci_high": "#,##0.000",
                 "cv": "0.0%", "deff": "0.00", "df": "#,##0", "n": "#,##0", "n_cases": "#,##0",
                 "weighted_base": "#,##0"}
"""Number formats of the workbook's numeric columns (the numbers stay numbers; Excel shows them
with the reader's decimal and thousands separators)."""

EXCEL_READER_COLUMNS = ["period", "crime_label", "iccs", "unit", "domain", "domain_value", "estimate", "se",
                        "ci_low", "ci_high", "df", "cv", "deff", "n", "n_cases", "weighted_base", "measure",
                        "reliability", "flag_reason", "suppressed", "suppression_reason", "sdg_indicator",
                        "sdg_deviation"]
"""The columns of a family sheet in French or Spanish: labels, not codes (the codes and the
English column names are in ``indicators.csv``, the machine-readable table)."""


def write_workbook(table: pd.DataFrame, meta: dict, path, run: dict | None = None, lang: str = "en",
                   translations: list[dict] | None = None) -> Path:
    """Excel workbook: a ``notes`` sheet (definitions, suppression rule, cap rule, source, date,
    run) and one sheet per indicator family.

    ``lang``: ``en`` (sheets named by family code, the indicator table's column names) or
    ``fr``/``es``: sheet names, column headers, notes, indicator names, definitions and the
    labels of crime types, domains and values in that language (the spec's ``translations``,
    rows of ``SurveySpec.translations``, then the catalogs); numbers stay numbers with a
    number format in every language.  Text cells are neutralized (:func:`neutral_text`).
    ``run``: name, date, parameters, software and ``description`` (in ``lang``)."""
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    from .indicators import INDICATORS

    path = Path(path)
    run = run or {}
    reader = Reader(lang, translations=translations or [])
    reader.survey = meta.get("survey")
    lang = reader.lang
    en = lang == "en"

    def t(key, **kw):
        return translate(key, lang, **kw)

    families = [f for f in INDICATORS if f in set(table["indicator"])] + \
        [f for f in dict.fromkeys(table["indicator"]) if f not in INDICATORS]
    used: set = set()
    notes_sheet = _sheet_name(t("excel.sheet.notes"), used)
    sheet_names = {fam: _sheet_name(fam if en else reader.indicator(fam), used) for fam in families}
    period = str(table["period"].iloc[0]) if len(table) else meta.get("period") or ""
    design = design_note((meta.get("design") or {}).get("kind"), lang) if not en else \
        (meta.get("design") or {}).get("note")
    notes = [
        (t("excel.item.survey"), f"{reader.title(meta.get('title') or '') if not en else meta.get('title') or ''} "
                                 f"({meta.get('survey')})"),
        (t("excel.item.period"), reader.period(period)),
        (t("excel.item.source"), meta.get("source") or ""),
        (t("excel.item.licence"), meta.get("licence") or ""),
        (t("excel.item.rule"), rule_text(meta.get("publication_rule") or {}, lang)),
        (t("excel.item.cap"), reader.sep.join(reader.data_text(c) for c in meta.get("cap_rule") or [])
         or t("excel.no_counts")),
        (t("excel.item.date"), run.get("date") or _dt.date.today().isoformat()),
        (t("excel.item.run"), run.get("name", "")),
    ]
    if run.get("description"):
        notes.append((t("excel.item.description"), str(run["description"])))
    notes += [
        (t("excel.item.parameters"), json.dumps(run.get("parameters", {}), sort_keys=True, default=str)),
        (t("excel.item.software"), run.get("software", "")),
        (t("excel.item.notes"), reader.sep.join(reader.data_text(n) for n in meta.get("notes") or [])
         or t("excel.none")),
        (t("excel.item.design"), design or t("excel.design_declared")),
        (t("excel.item.reading"), t("excel.reading")),
    ]
    defs_cols = ["indicator", "sheet", "label", "measure", "definition", "SDG"] if en else \
        [t("excel.col.indicator"), t("excel.col.sheet"), t("excel.col.measure"), t("excel.col.definition"),
         t("excel.col.sdg")]
    if en:
        defs = [[f, f, d["label"], d["measure"], d["definition"], d["sdg"]]
                for f, d in (meta.get("definitions") or {}).items()]
    else:
        defs = [[reader.indicator(f), sheet_names.get(f, ""), reader.measure(d["measure"]),
                 reader.definition(f, d["definition"]), d["sdg"]] for f, d in (meta.get("definitions") or {}).items()]
    defs = pd.DataFrame(defs, columns=defs_cols)
    columns = [c for c in (EXCEL_COLUMNS if en else EXCEL_READER_COLUMNS) if c in table.columns]
    tmp = path.with_name(f".{path.name}.tmp")
    with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
        notes_df = neutral_frame(pd.DataFrame(notes, columns=[t("excel.col.item"), t("excel.col.value")]))
        defs = neutral_frame(defs)
        notes_df.to_excel(xw, sheet_name=notes_sheet, index=False)
        start = len(notes_df) + 3
        if len(defs):
            defs.to_excel(xw, sheet_name=notes_sheet, index=False, startrow=start)
        for fam in families:
            rows = table.loc[table["indicator"] == fam]
            if not en:
                rows = reader.labelled(rows)[columns]
                rows.columns = [reader.header(c) for c in columns]
            else:
                rows = rows[columns]
            neutral_frame(rows).to_excel(xw, sheet_name=sheet_names[fam], index=False)
        wb = xw.book
        ws = wb[notes_sheet]
        ws.column_dimensions["A"].width = 22
        ws.column_dimensions["B"].width = 100
        for row in ws.iter_rows(min_row=1, max_row=len(notes) + 1):
            for c in row:
                c.alignment = Alignment(wrap_text=True, vertical="top")
        ws.cell(row=1, column=1).font = Font(bold=True)
        for col, width in zip("CDEF", (10, 12, 90, 8)):
            ws.column_dimensions[col].width = width
        for fam in families:
            ws = wb[sheet_names[fam]]
            ws.freeze_panes = "A2"
            ws.auto_filter.ref = ws.dimensions
            for i, c in enumerate(columns, start=1):
                ws.column_dimensions[get_column_letter(i)].width = max(10, min(40, len(reader.header(c)) + 4))
                if c in EXCEL_FORMATS:
                    for (cell,) in ws.iter_rows(min_row=2, min_col=i, max_col=i):
                        cell.number_format = EXCEL_FORMATS[c]
        wb.properties.creator = "survey workbench"
        wb.properties.language = lang
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# HTML reports
# ---------------------------------------------------------------------------------------------
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block extra_css %}<style>body{max-width:72em;margin:auto} .jp-Cell{padding:0 1em}</style>{% endblock extra_css %}
"""


def plotly_js_path() -> Path:
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@functools.cache
def _notebook_prose() -> dict[str, str]:
    """English text of the notebooks' Markdown cells -> catalog key (``report.nb.*``)."""
    return {_prose_key(v): k for k, v in catalog("en").items() if k.startswith("report.nb.")}


def _prose_key(text: str) -> str:
    return " ".join(str(text).split())


def translate_markdown_cells(nb, lang: str) -> int:
    """Replace the notebook's Markdown cells by their text in ``lang`` (catalog keys
    ``report.nb.<notebook>.<part>`` whose English is the cell's text, whitespace aside).
    Returns how many cells were translated; a cell the catalogs do not know stays as it is."""
    if check_language(lang) == "en":
        return 0
    known = _notebook_prose()
    k = 0
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        key = known.get(_prose_key(cell.source))
        if key:
            cell.source = translate(key, lang)
            k += 1
    return k


def notebook_to_html(nb_path, html_path, title: str | None = None, plotlyjs: str = "file",
                     design_note: str = "", lang: str = "en", description: str = "") -> Path:
    """An executed notebook as an HTML report without code (as ``nbconvert --no-input``).

    plotlyjs: ``file`` (a ``plotly.min.js`` next to the report, copied there; offline),
    ``inline`` (self-contained, ~4.6 MB per report) or ``cdn``.  No other script is loaded
    from the network (the require.js, MathJax and Mermaid tags of nbconvert's template are
    left out).  ``design_note`` (see :func:`design_info`, :func:`design_note`): shown at the
    top of the report.  ``lang``: the report's language (the page's ``lang``, the notebooks'
    Markdown cells from the catalogs: :func:`translate_markdown_cells`; the notebooks write
    their outputs in the run's language themselves); ``description``: the run's description
    (in ``lang``), shown at the top.
    """
    lang = check_language(lang)
    import jinja2
    import nbformat
    import plotly.io as pio
    from nbconvert import HTMLExporter

    nb_path, html_path = Path(nb_path), Path(html_path)
    nb = nbformat.read(nb_path, as_version=4)
    translate_markdown_cells(nb, lang)
    include = {"file": "directory", "inline": True, "cdn": "cdn"}[plotlyjs]
    k = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data") if out.get("output_type") in ("display_data", "execute_result") else None
            if data and isinstance(data.get("text/markdown"), (str, list)):  # spec strings are text, not HTML
                md_text = data["text/markdown"]
                data["text/markdown"] = safe_markdown("".join(md_text) if isinstance(md_text, list) else md_text)
            if not data or PLOTLY_MIME not in data:
                continue
            fig = dict(data[PLOTLY_MIME])
            height = (fig.get("layout") or {}).get("height")
            data["text/html"] = pio.to_html(fig, include_plotlyjs=include if k == 0 else False, full_html=False,
                                            validate=False, div_id=f"figure-{k + 1}",
                                            default_height=f"{height}px" if height else "480px",
                                            config={"displaylogo": False, "responsive": True})
            k += 1
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                            extra_loaders=[jinja2.DictLoader({"survey_report.html.j2": _TEMPLATE})],
                            template_file="survey_report.html.j2")
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": html.escape(title or nb_path.stem)}})
    head = ""
    if description:
        head += ('\n<p class="survey-run-description" style="max-width:72em;margin:1em auto;padding:0 1em;'
                 'font-style:italic">' + html.escape(str(description)) + "</p>")
    if design_note:
        text = design_note[:1].upper() + design_note[1:]
        if lang == "en":
            text = "<strong>Design:</strong> " + html.escape(text) + "."
        else:  # the catalogs' sentence starts with its own label ("Plan de sondage : ...")
            label, sep, rest = text.partition(NNBSP + ":") if lang == "fr" else text.partition(":")
            text = (f"<strong>{html.escape(label + sep)}</strong>{html.escape(rest)}" if sep
                    else html.escape(text))
        head += ('\n<p class="survey-design-note" style="max-width:72em;margin:1em auto;padding:.5em 1em;'
                 'border-left:4px solid #c77700;background:#fff6e0">' + text + "</p>")
    if head:
        at = body.find(">", body.find("<body")) + 1
        body = body[:at] + head + body[at:]
    body = re.sub(r"<html\b[^>]*>", f'<html lang="{lang}">', body, count=1)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_name(f".{html_path.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(html_path)
    if k and plotlyjs == "file":
        js = html_path.parent / "plotly.min.js"
        if not js.exists():
            shutil.copyfile(plotly_js_path(), js)
    return html_path
