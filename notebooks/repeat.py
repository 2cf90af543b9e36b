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
# # Repeat victimization
#
# Crime is concentrated: a small share of households and persons suffer a large share of all
# victimizations. This report measures how concentrated it is (repeat victims, the share of
# crimes they suffer, Lorenz curves and the Gini coefficient) overall and by domain. The cap
# rule on repeat counts (see below) matters most here.

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
P = sp.check_notebook(globals(), "repeat")

# %% load the survey
from survey import tables as st

data = sp.load_survey(P)  # streamed (survey.tables.StreamedSurvey) when the engine streams
S = data.spec
R = rp.Reader(P.language, S)  # the report's language: catalog strings, numbers, the spec's labels
if S.victimization is None:
    raise sp.ParameterError(f"spec {P.spec} has no victimization section: this notebook has nothing to estimate")
if st.streams(data):
    rp.md(st.engine_note(data, R))
crimes = P.crime_types or (data.crime_types + data.crime_groups)
counted = st.counted(data, crimes)  # crimes with a count of victimizations
focus = [c for c in counted if c in data.crime_groups] or counted[:4]

# %% repeat table
table = st.indicator_table(data, crime_types=counted, domains=P.domains,
                           indicators=["concentration", "repeat_victims", "repeat_incidents", "multiple_victimization",
                                       "gini", "gini_victims"],
                           publication=P.publication_preset, **P.publication_params) if counted else None
overall = table[table.domain == "overall"] if table is not None else None
if counted:
    cap = R.sep.join(R.data_text(c) for c in sorted(set(table.cap_rule) - {""})) or R("report.word.none")
    rp.md(R("report.rep.cap", cap=cap))

# %% [markdown]
# ## Repeat victims and the crimes they suffer
#
# For each crime type, two shares: of victims who were victimized two or more times, and of
# all victimizations that were suffered by those repeat victims. The second is always the
# larger: repeat victims account for a disproportionate share of crime.

# %% repeat shares
if counted:
    rows = overall[overall.indicator.isin(["repeat_victims", "repeat_incidents"])].copy()
    rows["series"] = rows.indicator.map({"repeat_victims": R("report.rep.series_victims"),
                                         "repeat_incidents": R("report.rep.series_incidents")})
    rp.estimate_bars(rows, series="series", title=R("report.rep.title"), reader=R).show()
else:
    rp.md(rp.no_counts_sentence(R("report.rep.repeat"), R.lang))
lines = []
for c in focus:
    rv = overall[(overall.indicator == "repeat_victims") & (overall.crime_type == c)]
    ri = overall[(overall.indicator == "repeat_incidents") & (overall.crime_type == c)]
    if len(rv) and len(ri):
        lines.append(R("report.rep.line", crime=R.crime(c, rv.iloc[0].crime_label), victims=R.ci(rv.iloc[0]),
                       incidents=R.ci(ri.iloc[0])))
if lines:
    rp.md("\n".join(lines))

# %% [markdown]
# ## Lorenz curves
#
# Each curve orders the population from the least to the most victimized and plots the share of
# all victimizations held by each share of the population. The further the curve from the
# diagonal (an even spread), the more concentrated the crime; the Gini coefficient is twice the
# area between them (0 = evenly spread, 1 = all crimes suffered by one respondent). Over the
# whole population most respondents have no victimization, so the curve stays flat until the
# last few percent; among victims it shows how unevenly victims are hit.

# %% lorenz
if focus:  # (streamed: one pass over the file, the weighted histogram of the counts)
    curves = st.lorenz_curves(data, focus, overs=("population", "victims"))
    labels = {c: R.crime(c, overall.loc[overall.crime_type == c, "crime_label"].iloc[0]) for c in focus}
    curves["label"] = curves["crime_type"].map(labels)
    rp.publish_csv(curves.drop(columns="label"), f"{P.output_dir}/lorenz.csv")
    for over, fam in (("population", "gini"), ("victims", "gini_victims")):
        g = {R.crime(r.crime_type, r.crime_label): r.estimate for r in overall[overall.indicator == fam].itertuples()}
        rp.lorenz_figure(curves[curves.over == over].drop(columns="crime_type", errors="ignore"), g,
                         title=R(f"report.rep.lorenz_{over}"), reader=R).show()
else:
    rp.md(rp.no_counts_sentence(R("report.rep.lorenz"), R.lang))

# %% [markdown]
# ## Gini coefficients with their confidence intervals
#
# The Gini coefficient of victimizations over the population and over victims, with a
# design-based standard error (linearized).

# %% gini
rows = overall[overall.indicator.isin(["gini", "gini_victims"])].copy() if counted else []
if len(rows):
    rows["series"] = rows.indicator.map({"gini": R("report.rep.over_population"),
                                         "gini_victims": R("report.rep.over_victims")})
    rp.estimate_bars(rows, series="series", title=R("report.rep.gini_title"), reader=R).show()
else:
    rp.md(rp.no_counts_sentence(R("report.rep.gini"), R.lang))

# %% [markdown]
# ## By domain
#
# Concentration (victimizations per victim) by the categories of each domain, for the headline
# crime groups.

# %% domains
if not focus:
    rp.md(rp.no_counts_sentence(R("report.rep.by_domain_what"), R.lang))
for dom in (P.domains or list(S.domains)) if focus else []:
    rows = table[(table.indicator == "concentration") & table.crime_type.isin(focus) & (table.domain == dom)]
    if len(rows):
        label = R.domain(dom, S.domains[dom].label or dom)
        rp.estimate_bars(rows, category="domain_value", series="crime_label",
                         title=R("report.rep.by_domain", domain=label.lower()), reader=R).show()

# %% [markdown]
# ## Multiple victimization
#
# Victims of two or more *different* crime types of a group (for example burglary and vehicle
# theft), as a share of the group's victims.

# %% multiple
rows = overall[overall.indicator == "multiple_victimization"] if overall is not None else []
if len(rows):
    rp.estimate_bars(rows, title=R("report.rep.multiple_title"), reader=R).show()
elif not counted:
    rp.md(rp.no_counts_sentence(R("report.rep.multiple"), R.lang))
else:
    rp.md(R("report.rep.no_groups"))
