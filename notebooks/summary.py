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
engine = None
compare = None

# %% check parameters
P = sp.check_notebook(globals(), "summary")

# %% load the survey
import pandas as pd
import plotly.graph_objects as go

from survey import tables as st
from survey.indicators import trend_table

data = sp.load_survey(P)  # streamed (survey.tables.StreamedSurvey) when the engine streams
S = data.spec
R = rp.Reader(P.language, S)  # the report's language: catalog strings, numbers, the spec's labels
table = rp.read_indicator_table(P.output_dir, P.as_dict())
if table is None:  # not run after the victimization notebook with the same parameters
    table = st.indicator_table(data, crime_types=P.crime_types, domains=P.domains,
                               publication=P.publication_preset, **P.publication_params)
period_label = str(table.period.iloc[0])
rp.md(R("report.sum.intro", title=R.title(S.title or S.survey), period=R.period(period_label),
        source=S.source or R("report.sum.no_source")))

# %% headline
crimes = P.crime_types or (data.crime_types + data.crime_groups)
focus = [c for c in crimes if c in data.crime_groups] or [c for c in crimes if c in data.crime_types][:4]
overall = table[table.domain == "overall"]
lines = []
for c in focus:
    for ind in ("prevalence", "incidence", "reporting_rate"):
        hit = overall[(overall.crime_type == c) & (overall.indicator == ind)]
        if not len(hit):
            continue
        r = hit.iloc[0]
        crime = R.crime(r.crime_type, r.crime_label)
        if ind == "prevalence":
            lines.append(R("report.sum.prevalence", crime=crime, ci=R.ci(r), units=R.unit(r.unit)))
        elif ind == "incidence" and not r.suppressed:
            lines.append(R("report.sum.incidence", value=R.num(r.estimate), units=R.unit(r.unit),
                           low=R.num(r.ci_low), high=R.num(r.ci_high)))
        elif ind == "reporting_rate":
            lines.append(R("report.sum.reporting", ci=R.ci(r)))
for r in overall[overall.indicator == "feeling_safe"].itertuples():
    lines.append(R("report.sum.feeling_safe", crime=R.crime(r.crime_type, r.crime_label),
                   sdg=r.sdg_indicator or "16.1.4", ci=R.ci(r)))
rp.md(R("report.sum.headline") + "\n\n" + "\n".join(lines))

# %% [markdown]
# The chart shows the same headline prevalence figures with their 95% confidence intervals.

# %% headline chart
rows = overall[(overall.indicator == "prevalence") & overall.crime_type.isin(focus)]
if len(rows):
    rp.estimate_bars(rows, title=R("report.sum.prevalence_title", period=R.period(period_label)), reader=R).show()

# %% [markdown]
# ## Quality of the estimates
#
# How many cells of the indicator table are reliable, flagged or withheld under the publication
# rule. Withheld cells appear as blanks in every table and chart.

# %% quality
q = table.assign(status=table.suppressed.map({True: "suppressed", False: None}).fillna(table.reliability))
counts = q.groupby(["indicator", "status"], sort=False).size().unstack(fill_value=0)
fig = go.Figure([go.Bar(y=[R.indicator(i, i) for i in counts.index], x=counts[s], name=R.status(s), orientation="h")
                 for s in counts.columns])
fig.update_layout(barmode="stack", title=R("report.sum.quality_title"), xaxis_title=R("report.sum.cells"),
                  yaxis=dict(autorange="reversed"), height=max(320, 60 + 24 * len(counts)),
                  legend=dict(orientation="h", y=-0.15))
fig.show()
rp.md(rp.rule_text(table.attrs.get("publication_rule") or {}, R.lang))

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
    before = st.indicator_table(earlier, crime_types=P.crime_types, domains=P.domains,
                                publication=P.publication_preset, **P.publication_params)
    if str(before.period.iloc[0]) == period_label:
        raise sp.ParameterError(f"compare: the earlier wave's period label '{period_label}' is this wave's too; "
                                "give compare.period (and period) to tell them apart")
    changes = st.compare_waves(before, table, data_a=earlier, data_b=data, samples=P.compare.get("samples", "auto"))
    rp.publish_csv(changes, f"{P.output_dir}/comparison.csv")
    rp.publish_csv(trend_table([before, table], changes=[changes]), f"{P.output_dir}/trend.csv")
    sel = changes[(changes.domain == "overall") & changes.indicator.isin(["prevalence", "feeling_safe"])
                  & (changes.crime_type.isin(focus) | changes.indicator.eq("feeling_safe"))]
    labels = dict(zip(overall.crime_type, overall.crime_label))
    fig = go.Figure()
    for _, r in sel.iterrows():
        crime = R.crime(r.crime_type, labels.get(r.crime_type, r.crime_type))
        what = r.indicator.replace("_", " ") if R.lang == "en" else R.indicator(r.indicator)
        name = f"{crime} ({what})"
        change = f"{r.difference:+.1f}" if R.lang == "en" else ("+" if r.difference > 0 else "") + R.num(r.difference)
        fig.add_trace(go.Scatter(x=[r.estimate_a, r.estimate_b], y=[name, name], mode="lines+markers",
                                 line=dict(color="firebrick" if r.significant else "grey"),
                                 marker=dict(symbol=["circle-open", "circle"], size=10), showlegend=False,
                                 hovertext=[f"{R.period(r.a)}: {R.num(r.estimate_a)}",
                                            R("report.sum.change_hover", period=R.period(r.b),
                                              value=R.num(r.estimate_b), change=change,
                                              p=f"{r.p_value:.3f}" if R.lang == "en" else R.tr.p(r.p_value))],
                                 hoverinfo="text"))
    fig.update_layout(title=R("report.sum.change_title", before=R.period(before.period.iloc[0]),
                              after=R.period(period_label)),
                      xaxis_title="%", yaxis=dict(autorange="reversed"), height=max(320, 60 + 36 * len(sel)))
    if R.lang != "en":
        fig.update_layout(separators=rp.SEPARATORS[R.lang])
    fig.show()
    sig = changes[changes.significant]
    rp.md(R("report.sum.changed", n=R.count(len(sig)), total=R.count(len(changes))) + " " + R.method_note(changes))
    shown = ["indicator", "crime_type", "estimate_a", "estimate_b", "difference", "ci_low", "ci_high", "p_value",
             "significant"]
    display(sel[shown].round(3) if R.lang == "en" else R.frame(sel, shown, 3))
else:
    rp.md(R("report.sum.no_compare"))

# %% [markdown]
# ## Methods
#
# Estimates are design-based: weights, strata and primary sampling units of the survey give
# the standard errors (Taylor linearization, or replicate weights when the survey has them);
# domains are estimated on the full design. Rates with an estimated denominator are ratios of
# estimated totals. Definitions of every indicator, the suppression and cap rules, and the
# source are in the notes sheet of `indicators.xlsx`.

# %% methods
design_note = rp.design_note(rp.design_info(S)["kind"], R.lang)
if design_note:
    rp.md(f"**Design: {design_note}.**" if R.lang == "en" else f"**{design_note}**")
if st.streams(data):  # the engine, and the notebooks a streamed run leaves out (with their reasons)
    rp.md("\n\n".join(x for x in (st.engine_note(data, R), st.skipped_text(data, R)) if x))
cap = R.sep.join(R.data_text(c) for c in sorted(set(table.cap_rule) - {""})) or R("report.word.none")
rp.md(R("report.sum.parameters", cap=cap, spec=P.spec,
        domains=", ".join(R.domain(d, d) for d in P.domains) if P.domains else R("report.word.all"),
        crimes=", ".join(R.crime(c, c) for c in P.crime_types) if P.crime_types else R("report.word.all"),
        language=P.language, seed=P.seed))
