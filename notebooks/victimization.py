# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Victimization: prevalence, incidence, concentration and reporting to the police
#
# How many households and persons were victimized in the reference period, how often, and how
# many of those crimes the police heard about. Every estimate comes with its 95% confidence
# interval from the survey design (strata, clusters, weights); cells the publication rule
# withholds are left blank and the reason is given.

# %% setup
from survey import params as sp
from survey import report as rp

rp.setup_notebook()

# %% parameters tags=["parameters"]
# Notebook parameters (a run's values are injected after this cell; see survey.params)
spec = "specs/synthetic.yaml"
data_dir = None
period = None
domains = None
crime_types = None
publication = None
cap_rule = None
output_dir = "outputs/interactive"
language = "en"
seed = 1
engine = None

# %% check parameters
P = sp.check_notebook(globals(), "victimization")

# %% load the survey
import pandas as pd

from survey import tables as st
from survey.indicators import INDICATORS

data = sp.load_survey(P)  # streamed (survey.tables.StreamedSurvey) when the engine streams
S = data.spec
R = rp.Reader(P.language, S)  # the report's language: catalog strings, numbers, the spec's labels
if S.victimization is None:
    raise sp.ParameterError(f"spec {P.spec} has no victimization section: this notebook has nothing to estimate")
if st.streams(data):
    rp.md(st.engine_note(data, R))

# %% indicator table
table = st.indicator_table(data, crime_types=P.crime_types, domains=P.domains,
                           publication=P.publication_preset, **P.publication_params)
rp.write_indicator_table(table, P.output_dir, data, P.as_dict())
rule = table.attrs.get("publication_rule") or {}
cap = R.sep.join(R.data_text(c) for c in sorted(set(table.cap_rule) - {""})) or R("report.word.none")
rp.md(R("report.vic.table", rows=R.count(len(table)), rule=rp.rule_text(rule, R.lang), cap=cap))

# %% crime selection
crimes = P.crime_types or (data.crime_types + data.crime_groups)
groups = [c for c in crimes if c in data.crime_groups]
types = [c for c in crimes if c in data.crime_types]
focus = groups or types[:4]
overall = table[table.domain == "overall"]
units = {c: data.unit_of(c) for c in crimes}

# %% [markdown]
# ## Prevalence
#
# Prevalence is the share of households (for household crimes) or persons (for personal
# crimes) victimized at least once in the reference period. The bars are estimates; the
# whiskers their 95% confidence intervals: two bars whose intervals overlap may still differ
# significantly, so differences are tested further below, never read off the chart.

# %% prevalence
for unit in ("household", "person"):
    rows = overall[(overall.indicator == "prevalence") & overall.crime_type.isin([c for c in crimes if units[c] == unit])]
    if len(rows):
        rp.estimate_bars(rows, title=R("report.vic.prevalence_title", units=R.unit(unit)), reader=R).show()

# %% prevalence prose
rows = overall[(overall.indicator == "prevalence") & overall.crime_type.isin(focus)]
rp.md("\n".join(R("report.vic.prevalence_line", crime=R.crime(r.crime_type, r.crime_label), ci=R.ci(r),
                    units=R.unit(r.unit)) for r in rows.itertuples()))

# %% [markdown]
# ## Incidence and concentration
#
# Incidence counts every victimization, not only victims: crimes per 1,000 households or
# persons. Concentration is the number of victimizations per victim (incidence divided by
# prevalence): a value well above 1 means that victims are often victimized again.

# %% incidence
rows = overall[(overall.indicator == "incidence")]
if len(rows):
    rp.estimate_bars(rows, series="unit", title=R("report.vic.incidence_title"), reader=R).show()
    rows = overall[(overall.indicator == "concentration")]
    rp.estimate_bars(rows, series="unit", title=R("report.vic.concentration_title"), reader=R).show()
else:
    rp.md(rp.no_counts_sentence(R("report.vic.incidence_concentration"), R.lang))

# %% [markdown]
# ## Reporting to the police
#
# Two reporting rates: among victimizations (how many crimes the police heard about) and among
# victims (how many victims reported at least one of their crimes; the basis of SDG 16.3.1
# for violent crime). The dark figure is the share of victimizations never reported.

# %% reporting
rows = overall[overall.indicator.isin(["reporting_rate", "reporting_rate_victims"])].copy()
if len(rows):
    rows["series"] = rows.indicator.map(lambda f: R.indicator(f, INDICATORS[f].label))
    rp.estimate_bars(rows, series="series", title=R("report.vic.reporting_title"), reader=R).show()
    dark = overall[(overall.indicator == "dark_figure") & overall.crime_type.isin(focus)]
    rp.md(R("report.vic.dark", items=R.sep.join(R("report.vic.dark_item", crime=R.crime(r.crime_type, r.crime_label),
                                                  ci=R.ci(r)) for r in dark.itertuples())))
else:
    rp.md(R("report.vic.no_reporting"))

# %% [markdown]
# ## By domain
#
# Prevalence by the categories of each domain, for the headline crime groups. A domain that
# applies to persons only (such as sex or age) is shown for personal crimes only. Cells with a
# base too small for the publication rule have no bar (hover for the reason).

# %% domains
doms = [d for d in (P.domains or list(S.domains))]
for dom in doms:
    rows = table[(table.indicator == "prevalence") & table.crime_type.isin(focus) & (table.domain == dom)]
    if len(rows):
        label = R.domain(dom, S.domains[dom].label or dom)
        rp.estimate_bars(rows, category="domain_value", series="crime_label",
                         title=R("report.vic.by_domain", domain=label.lower()), reader=R).show()

# %% [markdown]
# ## Differences between the two categories of a domain
#
# For domains with exactly two categories, the difference in prevalence with its standard
# error from the full covariance of the two domain estimates (a t test on the design degrees
# of freedom). "Significant" means that the 95% confidence interval of the difference
# excludes zero.

# %% differences
pairs = []
for dom in doms:
    cats = [v for v in table.loc[table.domain == dom, "domain_value"].unique()]
    if len(cats) != 2:
        continue
    for c in focus:
        if S.domains[dom].units and units[c] not in S.domains[dom].units:
            continue
        pairs.append(("prevalence", c, dom, cats[0], cats[1]))
diffs = st.domain_differences(data, pairs)  # streamed: one pass, the cells' covariance kept
if len(diffs):
    shown = ["crime_type", "domain", "a", "b", "estimate_a", "estimate_b", "difference", "ci_low", "ci_high",
             "p_value", "significant"]
    display(diffs[shown].round(3) if R.lang == "en" else R.frame(diffs, shown, 3))
else:
    rp.md(R("report.vic.no_two_categories"))

# %% [markdown]
# ## Quality of the estimates
#
# How many cells the publication rule flags or withholds, by indicator: a quick check of how
# far the sample supports the breakdowns requested.

# %% quality
quality = (table.assign(flagged=table.flag_reason.ne("") & ~table.suppressed)
           .groupby("indicator", sort=False)
           .agg(cells=("estimate", "size"), suppressed=("suppressed", "sum"), flagged=("flagged", "sum")))
quality if R.lang == "en" else R.frame(quality.reset_index().rename(columns={"suppressed": "suppressed_cells"}),
                                       ["indicator", "cells", "suppressed_cells", "flagged"])
