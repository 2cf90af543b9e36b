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
# # Ingest and validation report
#
# This report reads the survey through its spec (the YAML description of its files, design,
# crime classification, domains and publication rule), checks it, and accounts for every row:
# nothing is dropped without a line below saying why. It is the first thing to read after a
# new data delivery: if a count here looks wrong, every estimate in the other reports is wrong
# too.

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
P = sp.check_notebook(globals(), "ingest")

# %% load the survey
import pandas as pd
import plotly.graph_objects as go

from survey import tables as st
from survey.codebook import write_codebook

data = sp.load_survey(P)  # streamed (survey.tables.StreamedSurvey) when the engine streams
S = data.spec
R = rp.Reader(P.language, S)  # the report's language: catalog strings, numbers, the spec's labels
acc = data.accounting
rp.md(R("report.ing.intro", title=R.title(S.title or S.survey), survey=S.survey,
        period=R.period(S.period) if S.period else R("report.sum.no_source"),
        source=S.source or R("report.sum.no_source"), licence=S.licence or R("report.sum.no_source"), spec=P.spec)
      + (R("report.ing.data_dir", data_dir=P.data_dir) if P.data_dir else "") + ".")
if st.streams(data):
    rp.md(st.engine_note(data, R))

# %% [markdown]
# ## Files
#
# Each file the spec declares, where it was read from and how many rows it holds. Respondent
# files are linked to the design file on their keys; incident files to their respondents.

# %% files
paths = dict(sp.data_files(P.as_dict()))
files = pd.DataFrame([
    {"file": name, "unit": f.unit, "path": str(paths[f"data:{name}"]),
     "keys": ", ".join(f.keys), "linked to": f.link.to if f.link else "",
     "rows read": int(acc.loc[(acc.step == "read") & (acc.file == name), "rows"].sum())}
    for name, f in S.files.items()])
if R.lang != "en":
    files["unit"] = [R.unit(u) for u in files["unit"]]
    files.columns = [R(f"report.ing.col.{c.replace(' ', '_')}") for c in files.columns]
files

# %% [markdown]
# ## Row accounting
#
# Every step of the loader, in order: rows read, linked, kept as respondents, incidents
# excluded by the spec's rules (outside the reference period, outside the country...), codes
# deliberately not counted, and items with no answer (left out of their own base only).

# %% accounting
rp.publish_csv(acc, f"{P.output_dir}/accounting.csv")
with pd.option_context("display.max_colwidth", 120):
    display(R.accounting(acc))  # steps and details in the report's language (accounting.csv: the loader's)

# %% [markdown]
# The chart follows the incident file from the rows read to the incidents counted: the
# difference is what the spec's rules set aside, each bar one rule.

# %% incident flow
inc_file = S.victimization.file if S.victimization is not None and S.victimization.source == "incidents" else None
if inc_file:
    flow = R.accounting(acc, headers=False)[(acc.file == inc_file) & acc.step.ne("link")]
    fig = go.Figure(go.Bar(x=flow["rows"], y=flow["step"], orientation="h", text=flow["rows"],
                           hovertext=flow["detail"], hoverinfo="text+x"))
    fig.update_layout(title=R("report.ing.flow_title", file=inc_file), xaxis_title=R("report.ing.incidents"),
                      yaxis=dict(autorange="reversed"), height=320)
    if R.lang != "en":
        fig.update_layout(separators=rp.SEPARATORS[R.lang])
    fig.show()
else:
    rp.md(R("report.ing.no_incident_file"))

# %% [markdown]
# ## Design
#
# Estimates use the full design: weights, strata and primary sampling units (PSUs). The
# degrees of freedom (PSUs minus strata) set the width of every confidence interval. Household
# crimes are counted against households, personal crimes against persons, each with its own
# weight.

# %% design
units = sorted({t.unit for t in S.victimization.types}) if S.victimization is not None else []
units = units or [S.files[S.design.file].unit]
chosen = P.domains or list(S.domains)
pairs = []  # (domain, the unit whose weight counts it)
for dom in chosen:
    units_ok = S.domains[dom].units or units
    pairs.append((dom, units_ok[0] if units_ok[0] in units else units[0]))
summary, dists = st.design_summary(data, units, pairs)  # streamed: one pass over the design file
rows = []
for r in summary.itertuples():
    what = (R("report.ing.design_desc", n=R.count(r.rows), strata=R.count(int(r.strata)), psu=R.count(int(r.psus)),
              df=R.count(r.df)) if r.kind == "taylor" else
            R("report.ing.design_replicates", n=R.count(r.rows), replicates=R.count(int(r.replicates)),
              method=r.method))
    rows.append({"unit": r.unit, "design": what, "respondents": int(r.respondents),
                 "weighted total": float(r.weighted_total)})
design_table = pd.DataFrame(rows, columns=["unit", "design", "respondents", "weighted total"])
design_note = rp.design_note(rp.design_info(S)["kind"], R.lang)
if design_note:
    rp.md(f"**Design: {design_note}.**" if R.lang == "en" else f"**{design_note}**")
if R.lang == "en":
    shown_design = design_table.style.format({"weighted total": "{:,.0f}"})
else:
    shown_design = design_table.assign(unit=[R.unit(u) for u in design_table["unit"]],
                                       respondents=[R.count(n) for n in design_table["respondents"]],
                                       **{"weighted total": [R.count(x) for x in design_table["weighted total"]]})
    shown_design.columns = [R(f"report.ing.col.{c.replace(' ', '_')}") for c in shown_design.columns]
with pd.option_context("display.max_colwidth", 120):
    display(shown_design)

# %% [markdown]
# ## Domains
#
# The weighted distribution of each domain (with its design-based standard error): a first
# check against known population figures. Respondents with no value for a domain are counted
# in the accounting above and left out of that domain's breakdowns only.

# %% domains
dist = []
for res, (dom, unit) in zip(dists, pairs):
    res = res.copy()
    res["domain"] = R.domain(dom, S.domains[dom].label or dom)
    res["level"] = [R.value(dom, lv) for lv in res["level"]]
    res["unit"] = unit
    dist.append(res)
dist = pd.concat(dist, ignore_index=True) if dist else pd.DataFrame(columns=["domain", "level", "estimate", "se"])
fig = go.Figure()
for dom, g in dist.groupby("domain", sort=False):
    fig.add_trace(go.Bar(y=[f"{dom}: {lv}" for lv in g["level"]], x=100 * g["estimate"], orientation="h",
                         name=dom, error_x=dict(type="data", array=100 * 1.96 * g["se"])))
fig.update_layout(title=R("report.ing.domains_title"), xaxis_title="%",
                  yaxis=dict(autorange="reversed"), height=max(320, 40 + 22 * len(dist)), showlegend=False)
if R.lang != "en":
    fig.update_layout(separators=rp.SEPARATORS[R.lang])
if len(dist):
    fig.show()

# %% codebook
if st.streams(data):  # (its frequencies count every row of every file)
    rp.md(R("report.stream.no_codebook"))
else:
    csv_path, html_path = write_codebook(data, P.output_dir)
    rp.md(R("report.ing.codebook", csv=csv_path.name, html=html_path.name))

# %% [markdown]
# ## Result
#
# Every row of every file is accounted for: the loader stops with an error naming the file,
# the variable and the number of rows when the data do not follow the spec (an incident that
# matches no respondent, a code outside the declared set, a negative weight...).

# %% result
rp.md(R("report.ing.result", steps=R.count(len(acc)),
        respondents=R.count(int(acc.loc[acc.step == "respondents", "rows"].sum()))))
