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
# # Summary report
#
# The headline figures of the survey on one page: how many were victimized, how often, how
# many crimes reached the police and how safe people feel, with the quality of the estimates
# and, when an earlier wave is given, what changed since then.

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
compare = None

# %% check parameters
P = sp.check_notebook(globals(), "summary")

# %% load the survey
import pandas as pd
import plotly.graph_objects as go

from survey.indicators import compare_waves, indicator_table, trend_table

data = sp.load_survey(P)
S = data.spec
table = rp.read_indicator_table(P.output_dir, P.as_dict())
if table is None:  # not run after the victimization notebook with the same parameters
    table = indicator_table(data, crime_types=P.crime_types, domains=P.domains,
                            publication=P.publication_preset, **P.publication_params)
period_label = str(table.period.iloc[0])
rp.md(f"**{S.title or S.survey}**, reference period **{period_label}**. Source: {S.source or 'not stated'}.")

# %% headline
crimes = P.crime_types or (data.crime_types + data.crime_groups)
focus = [c for c in crimes if c in data.crime_groups] or [c for c in crimes if c in data.crime_types][:4]
overall = table[table.domain == "overall"]
lines = []
noun = {"household": "households", "person": "persons"}
for c in focus:
    for ind in ("prevalence", "incidence", "reporting_rate"):
        hit = overall[(overall.crime_type == c) & (overall.indicator == ind)]
        if not len(hit):
            continue
        r = hit.iloc[0]
        if ind == "prevalence":
            lines.append(f"- **{r.crime_label}**: {rp.ci_text(r)} of {noun.get(r.unit, r.unit)} victimized at least once")
        elif ind == "incidence" and not r.suppressed:
            lines.append(f"  - {rp.fmt(r.estimate)} victimizations per 1,000 {noun.get(r.unit, r.unit)} "
                         f"(95% CI {rp.fmt(r.ci_low)} to {rp.fmt(r.ci_high)})")
        elif ind == "reporting_rate":
            lines.append(f"  - {rp.ci_text(r)} of these victimizations reported to the police")
for r in overall[overall.indicator == "feeling_safe"].itertuples():
    lines.append(f"- **{r.crime_label}** [SDG {r.sdg_indicator or '16.1.4'}]: {rp.ci_text(r)} of respondents")
rp.md("## Headline figures\n\n" + "\n".join(lines))

# %% [markdown]
# The chart shows the same headline prevalence figures with their 95% confidence intervals.

# %% headline chart
rows = overall[(overall.indicator == "prevalence") & overall.crime_type.isin(focus)]
if len(rows):
    rp.estimate_bars(rows, title=f"Prevalence, {period_label} (%)").show()

# %% [markdown]
# ## Quality of the estimates
#
# How many cells of the indicator table are reliable, flagged or withheld under the publication
# rule. Withheld cells appear as blanks in every table and chart.

# %% quality
q = table.assign(status=table.suppressed.map({True: "suppressed", False: None}).fillna(table.reliability))
counts = q.groupby(["indicator", "status"], sort=False).size().unstack(fill_value=0)
fig = go.Figure([go.Bar(y=counts.index, x=counts[s], name=s, orientation="h") for s in counts.columns])
fig.update_layout(barmode="stack", title="Cells of the indicator table by reliability", xaxis_title="cells",
                  yaxis=dict(autorange="reversed"), height=max(320, 60 + 24 * len(counts)),
                  legend=dict(orientation="h", y=-0.15))
fig.show()
rp.md(rp.rule_text(table.attrs.get("publication_rule") or {}))

# %% [markdown]
# ## Change since the earlier wave
#
# When the run compares with an earlier wave, every indicator is estimated on it with the same
# rules, and the change is tested. Independent samples: the standard error of the change is the
# square root of the sum of the two variances. Waves that share PSUs or households (a rotating
# panel): both waves are stacked into one design and the shared units carry the covariance of
# the two estimates. The `method` column of `comparison.csv` says which was used. Overlapping
# confidence intervals do not mean "no change": only the test does.

# %% compare waves
changes = None
if P.compare:
    earlier = sp.load_survey(P, wave=P.compare)  # same cap rule; its own files and period
    before = indicator_table(earlier, crime_types=P.crime_types, domains=P.domains,
                             publication=P.publication_preset, **P.publication_params)
    if str(before.period.iloc[0]) == period_label:
        raise sp.ParameterError(f"compare: the earlier wave's period label '{period_label}' is this wave's too; "
                                "give compare.period (and period) to tell them apart")
    changes = compare_waves(before, table, data_a=earlier, data_b=data, samples=P.compare.get("samples", "auto"))
    changes.to_csv(f"{P.output_dir}/comparison.csv", index=False, lineterminator="\n")
    trend_table([before, table], changes=[changes]).to_csv(f"{P.output_dir}/trend.csv", index=False, lineterminator="\n")
    sel = changes[(changes.domain == "overall") & changes.indicator.isin(["prevalence", "feeling_safe"])
                  & (changes.crime_type.isin(focus) | changes.indicator.eq("feeling_safe"))]
    labels = dict(zip(overall.crime_type, overall.crime_label))
    fig = go.Figure()
    for _, r in sel.iterrows():
        name = f"{labels.get(r.crime_type, r.crime_type)} ({r.indicator.replace('_', ' ')})"
        fig.add_trace(go.Scatter(x=[r.estimate_a, r.estimate_b], y=[name, name], mode="lines+markers",
                                 line=dict(color="firebrick" if r.significant else "grey"),
                                 marker=dict(symbol=["circle-open", "circle"], size=10), showlegend=False,
                                 hovertext=[f"{r.a}: {r.estimate_a:.1f}", f"{r.b}: {r.estimate_b:.1f}; change "
                                            f"{r.difference:+.1f} (p = {r.p_value:.3f})"], hoverinfo="text"))
    fig.update_layout(title=f"From {before.period.iloc[0]} (open) to {period_label} (filled); red = significant change",
                      xaxis_title="%", yaxis=dict(autorange="reversed"), height=max(320, 60 + 36 * len(sel)))
    fig.show()
    sig = changes[changes.significant]
    how = changes.method.str.split(";|: stacked", regex=True).str[0].iloc[0]
    rp.md(f"{len(sig):,} of {len(changes):,} comparable cells changed significantly at the 5% level "
          "(with this many tests some will by chance; look for consistent patterns). "
          f"Method: {how} (row by row in the `method` column). Tables: `comparison.csv` and `trend.csv`.")
    display(sel[["indicator", "crime_type", "estimate_a", "estimate_b", "difference", "ci_low", "ci_high", "p_value",
                 "significant"]].round(3))
else:
    rp.md("No earlier wave was given (parameter `compare`).")

# %% [markdown]
# ## Methods
#
# Estimates are design-based: weights, strata and primary sampling units of the survey give
# the standard errors (Taylor linearization, or replicate weights when the survey has them);
# domains are estimated on the full design. Rates with an estimated denominator are ratios of
# estimated totals. Definitions of every indicator, the suppression and cap rules, and the
# source are in the notes sheet of `indicators.xlsx`.

# %% methods
design_note = rp.design_info(S)["note"]
if design_note:
    rp.md(f"**Design: {design_note}.**")
rp.md(f"Cap rule on repeat counts: {'; '.join(sorted(set(table.cap_rule) - {''})) or 'none'}.  \n"
      f"Parameters: spec `{P.spec}`, domains {P.domains or 'all'}, crime types {P.crime_types or 'all'}, "
      f"language {P.language}, seed {P.seed}.")
