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
# # Fear of crime and feeling safe
#
# How safe people feel walking alone in their area after dark (SDG indicator 16.1.4) and how
# worried they are about becoming a victim, overall, by domain, and for victims compared with
# non-victims. Each estimate is the share of respondents who answered the question; those who
# did not answer are left out of its base only.

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
P = sp.check_notebook(globals(), "fear")

# %% load the survey
import pandas as pd
import plotly.graph_objects as go

from survey import tables as st

data = sp.load_survey(P)  # streamed (survey.tables.StreamedSurvey) when the engine streams
S = data.spec
R = rp.Reader(P.language, S)  # the report's language: catalog strings, numbers, the spec's labels
if st.streams(data):
    rp.md(st.engine_note(data, R))
items = list(S.perception)
if not items:
    rp.md(R("report.fear.no_items", title=R.title(S.title or S.survey)))

# %% perception table
table = None
if items:
    table = st.indicator_table(data, crime_types=[], domains=P.domains,
                               indicators=["feeling_safe", "worry", "likelihood", "likert"],
                               publication=P.publication_preset, **P.publication_params)
    overall = table[table.domain == "overall"]
    rp.estimate_bars(overall, title=R("report.fear.overall_title"), reader=R).show()

# %% [markdown]
# Feeling safe counts respondents who feel *very* or *fairly* safe; worry counts those *very*
# worried. An item with a follow-up (people who never go out alone after dark are asked how
# safe they *would* feel) uses the follow-up answer, as the SDG 16.1.4 metadata recommend.

# %% prose
if items:
    lines = []
    for it in items:
        r = overall[overall.crime_type == it.name].iloc[0]
        extra = R("report.fear.follow_up") if it.follow_up else ""
        sdg = R("report.fear.sdg", sdg=r.sdg_indicator) if r.sdg_indicator else ""
        lines.append(R("report.fear.line", crime=R.crime(r.crime_type, r.crime_label), sdg=sdg, ci=R.ci(r),
                       extra=extra))
    rp.md("\n".join(lines))

# %% [markdown]
# ## By domain
#
# Each item by the categories of each domain. Differences in feeling safe between groups
# (for example by sex or age) are usually larger than differences in victimization.

# %% domains
if items:
    for dom in (P.domains or list(S.domains)):
        rows = table[table.domain == dom]
        if len(rows):
            label = R.domain(dom, S.domains[dom].label or dom)
            rp.estimate_bars(rows, category="domain_value", series="crime_label",
                             title=R("report.fear.by_domain", domain=label.lower()), reader=R).show()

# %% [markdown]
# ## Victims and non-victims
#
# Feeling safe and worry among respondents who were victims of each crime group in the reference
# period and among those who were not (`survey.indicators.perception_by_victimization`: victim
# status as a domain of the full design, the table's intervals and publication rule).

# %% victims
if items and S.victimization is not None:
    crimes = P.crime_types or (data.crime_types + data.crime_groups)
    focus = [c for c in crimes if c in data.crime_groups] or [c for c in crimes if c in data.crime_types][:4]
    vic = st.perception_by_victimization(data, crime_types=focus, publication=P.publication_preset,
                                         **P.publication_params)
    vic["crime"] = vic["domain"].str.removeprefix("victim__")
    if R.lang != "en":
        vic["crime_label"] = [R.crime(c, lab) for c, lab in zip(vic["crime_type"], vic["crime_label"])]
        vic["crime"] = [R.crime(c) for c in vic["crime"]]
    fig = go.Figure()
    for who, g in vic.groupby("domain_value", sort=False):
        shown = g[~g["suppressed"]]
        fig.add_trace(go.Bar(y=shown["crime_label"] + " | " + shown["crime"], x=shown["estimate"], orientation="h",
                             name=R.value(g["domain"].iloc[0], who),
                             error_x=dict(type="data", symmetric=False, array=shown["ci_high"] - shown["estimate"],
                                          arrayminus=shown["estimate"] - shown["ci_low"])))
    fig.update_layout(title=R("report.fear.victims_title"), barmode="group", xaxis_title="%",
                      yaxis=dict(autorange="reversed"), height=max(320, 60 + 40 * len(vic) // 2),
                      legend=dict(orientation="h", y=-0.15))
    if R.lang != "en":
        fig.update_layout(separators=rp.SEPARATORS[R.lang])
    fig.show()
    shown = ["crime_label", "crime", "domain_value", "estimate", "ci_low", "ci_high", "n", "reliability",
             "suppression_reason"]
    display(vic[shown].round(1) if R.lang == "en" else R.frame(vic.drop(columns="crime_type"), shown, 1))
