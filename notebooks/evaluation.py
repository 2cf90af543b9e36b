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
# # Did the prevention programme work, and did it pay?
#
# Difference-in-differences on pooled survey waves: the change in victimization in the
# programme (treated) areas minus the change in the comparison areas, from before to after the
# programme started, with design-based standard errors clustered on the areas
# (`survey.evaluation.did`); a check that the two groups moved in parallel before the start;
# then the crimes averted valued with unit costs of crime against the programme's cost
# (`survey.cost`). Methods: docs/evaluation.md.
#
# It runs on its own: fill in the **parameters** cell, or pass them with papermill
# (`-p start 2022 ...`); with `pooled_data = None` it runs on synthetic pooled waves with a known
# effect of −5 points. A batch run whose parameter set has an `evaluation:` section runs it
# after the other notebooks, on the run's survey (`spec`, `data_dir`), and publishes
# `evaluation.csv` and `cost_benefit.csv`.

# %% setup
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

import survey as sv
from survey import report as rp
from survey import params as sp
from survey.cost import cost_benefit_from_did, load_unit_costs
from survey.evaluation import (
    MODELS,
    StaggeredResult,
    cost_benefit_table,
    did,
    evaluation_table,
    prepare_evaluation,
    simulate_pooled_waves,
    yearly_effects,
)

rp.setup_notebook()

# %% parameters tags=["parameters"]
# Notebook parameters: pooled waves, treated areas, programme start, costs
pooled_data = None            # CSV or Parquet of the stacked respondents of all waves; None: synthetic demo
outcome = "victim"            # 0/1 victim (prevalence) or a count of incidents per respondent
treated = "treated"           # 0/1: the respondent lives in a programme area
wave = "wave"                 # the wave (year or number)
start = 3                     # first wave in which the programme runs
model = "linear"              # "linear" (points / rates) or "logistic" (prevalence, odds ratios)
covariates = None             # extra formula terms, e.g. "C(sex) + age"
strata = "stratum"            # design strata column (None: unstratified)
psu = "area"                  # PSU column: the area, the same across waves (clusters on areas)
weights = "weight"            # weight column
event_study = True            # one effect per wave as well
crime_type = "burglary_dwelling"  # key of the unit-cost table for the crimes averted
unit_costs = None             # CSV crime_type, unit_cost, currency, price_year, source; None: Home Office 2018
programme_cost = 5_000_000.0  # cost of the programme, same currency and price year as the unit costs
exposed = 20_000.0            # treated units (e.g. households) x periods the effect runs
level = 0.95
output_dir = "outputs/interactive"
# batch runs (survey.params): the run's survey and its parameter set's `evaluation:` section
spec = None                   # survey spec whose respondent file stacks the periods (instead of pooled_data)
data_dir = None               # its data folder (file names from the spec)
cap_rule = None               # the run's cap rule
evaluation = None             # {outcome:, treated:, period:, start:, ...} (survey.params.EVALUATION_KEYS)
language = "en"               # the report's language (en, fr, es)
seed = 1

# %% check parameters
R = rp.Reader(language)  # the report's language (the survey's labels once the spec is read)
section = None
if evaluation is not None:  # a batch run: the section again through the parameter-set check
    section = sp.check_evaluation(evaluation, "notebook 'evaluation': ", spec_path=spec)
    model, event_study, unit_costs = section["model"], section["event_study"], section["unit_costs"]
    crime_type = section["crime_type"] or crime_type
if model not in MODELS:
    raise ValueError(f"parameter model: one of {', '.join(MODELS)}, not {model!r}")
if not (programme_cost > 0 and exposed > 0 and 0 < level < 1):
    raise ValueError("parameters programme_cost and exposed must be positive and level in (0, 1)")
costs = load_unit_costs(unit_costs)
if (section is None or section["programme_cost"] is not None) and crime_type not in set(costs.crime_type):
    raise ValueError(f"parameter crime_type: {crime_type!r} is not in the unit cost table ({len(costs)} rows)")
Path(output_dir).mkdir(parents=True, exist_ok=True)

# %% load the pooled waves
group, label = None, outcome
if section is not None:
    data = sp.load_survey({"spec": spec, "data_dir": data_dir, "cap_rule": cap_rule, "output_dir": output_dir},
                          write_accounting=False)
    prep = prepare_evaluation(data, section)
    design, outcome, treated, wave, start = prep.design, prep.outcome, prep.treated, prep.wave, prep.start
    group, covariates, label = prep.group, prep.covariates, prep.label
    df = design.data[design._in_domain()]
    R = rp.Reader(language, data.spec)
    if treated is None:
        treated = "eval_treated"
        df = df.assign(eval_treated=df[group].isin(list(start)).astype(int))
    rp.md(R("report.eval.survey", title=R.title(data.spec.title or data.spec.survey), outcome=section["outcome"],
            label=label if R.lang == "en" else R.outcome(section["outcome"]), wave=wave,
            start=start if group is None else R("report.eval.start_per_area")))
elif pooled_data is None:
    df = simulate_pooled_waves(effect=-0.05, seed=1)
    rp.md(R("report.eval.demo"))
else:
    p = Path(pooled_data)
    df = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p)
if section is None:
    design = sv.Design(df, strata=strata, psu=psu, weights=weights)
counts = df.groupby([wave, treated]).size().unstack(fill_value=0)
counts.columns = [f"treated={c}" for c in counts.columns] if R.lang == "en" else \
    [R("report.eval.group_treated") if c == 1 else R("report.eval.group_comparison") for c in counts.columns]
if R.lang != "en":
    counts = counts.map(R.count)
    counts.index.name = R("report.eval.col.wave")
counts

# %% estimate the effect
res = did(design, outcome, treated if group is None else None, wave, start=start, model=model,
          covariates=covariates, event_study=event_study, level=level, group=group)
rp.publish_csv(evaluation_table(res, label), Path(output_dir) / "evaluation.csv")
if section is None:
    rp.publish_csv(res.effects, Path(output_dir) / "evaluation_effects.csv")
res.effects if R.lang == "en" else R.frame(res.effects.assign(estimand=[R(f"report.eval.estimand.{e}")
                                                                        for e in res.effects.estimand]),
                                           ["estimand", "effect", "se", "ci_low", "ci_high", "df", "p_value"], 3)

# %% [markdown]
# ## Parallel trends before the start?
#
# With two or more waves before the programme: the treated-minus-comparison differences of the
# earlier pre waves, relative to the last one, should be about zero. A small p-value of the
# joint test means the groups were already drifting apart, and the difference-in-differences
# would mix that drift into the effect.

# %% pre-trend test
if isinstance(res, StaggeredResult):
    rp.md(R("report.eval.staggered"))
    out = res.group_time if R.lang == "en" else R.frame(
        res.group_time, ["cohort", "wave", "base_wave", "estimate", "se", "ci_low", "ci_high", "p_value"], 3)
elif res.pretrend is None:
    rp.md(R("report.eval.one_pre_wave"))
    out = None
else:
    out = res.pretrend_terms if R.lang == "en" else R.frame(
        res.pretrend_terms, ["wave", "estimate", "se", "t", "df", "p_value", "ci_low", "ci_high"], 3)
    w = res.pretrend.iloc[0]
    rp.md(R("report.eval.pretrend", F=R.num(w.F, 2), df1=R.count(w.df1), df2=R.count(w.df2), p=R.num(w.p_value, 3)))
out

# %% event study
if res.event_study is not None:
    es = res.event_study
    fig = go.Figure(go.Scatter(x=es.wave.astype(str), y=es.estimate, mode="markers",
                               error_y=dict(type="data", symmetric=False, array=es.ci_high - es.estimate,
                                            arrayminus=es.estimate - es.ci_low)))
    fig.add_hline(y=0, line_dash="dot")
    scale = es.scale.iloc[0]
    fig.update_layout(title=R("report.eval.event_title", wave=es.wave[es.reference].iloc[0],
                              scale=scale if R.lang == "en" else R(f"report.eval.scale.{scale.replace(' ', '_')}")),
                      xaxis_title=wave if R.lang == "en" else R("report.eval.col.wave"),
                      yaxis_title=R("report.eval.axis_effect"))
    if R.lang != "en":
        fig.update_layout(separators=rp.SEPARATORS[R.lang])
    if section is None:
        rp.publish_csv(es, Path(output_dir) / "evaluation_event_study.csv")
    fig.show()

# %% [markdown]
# ## Did it pay?
#
# Crimes averted = −effect × exposed units; benefit = crimes averted × unit cost; compared
# with the programme's cost. Intervals by the delta method from the effect's standard error
# (unit costs and the programme cost taken as known). With a 0/1 outcome the "crimes" averted
# are victims averted (a lower bound of crimes when victims suffer several); use a count of
# incidents as the outcome to value crimes. A batch run's `effects: event_study` (or a list of
# periods) values each programme year with its own event-study effect instead of one effect
# for every year, with the effects' joint covariance in the interval.

# %% cost-benefit
if section is None:  # stand-alone: one year
    cb = cost_benefit_from_did(res, crime_type, programme_cost=programme_cost, exposed=exposed,
                               unit_costs=unit_costs, level=level)
    rp.publish_csv(cb, Path(output_dir) / "evaluation_cost_benefit.csv")
    cb = cost_benefit_table(res, {"outcome": outcome, "programme_cost": programme_cost, "exposed": exposed,
                                  "crime_type": crime_type, "unit_costs": unit_costs, "discount_rate": 0.0},
                            level=level)
else:  # batch: the section's costs per year, discounted
    cb = cost_benefit_table(res, section, level=level)
if cb is None:
    rp.md(R("report.eval.no_cost"))
else:
    rp.publish_csv(cb, Path(output_dir) / "cost_benefit.csv")
    r = cb.set_index("quantity")
    rp.md(R("report.eval.ratio", ratio=R.num(r.loc["benefit_cost_ratio", "estimate"], 2), level=R.sig(100 * level),
            low=R.num(r.loc["benefit_cost_ratio", "ci_low"], 2), high=R.num(r.loc["benefit_cost_ratio", "ci_high"], 2),
            crime=crime_type, cost=R.count(costs.set_index("crime_type").loc[crime_type, "unit_cost"]),
            currency=cb.currency.iloc[0], year=cb.price_year.iloc[0], years=cb.years.iloc[0],
            rate=R.sig(100 * cb.discount_rate.iloc[0])))
    if section is not None and section["effects"] != "pooled":  # each year valued with its own effect
        periods, est, _, _ = yearly_effects(res, section["effects"])
        rp.md(R("report.eval.per_year", effects=", ".join(f"{p} ({R.num(e, 3)})" for p, e in zip(periods, est))))
cb if cb is None or R.lang == "en" else R.frame(
    cb.assign(quantity=[R(f"report.eval.quantity.{q}") for q in cb.quantity]),
    ["quantity", "estimate", "se", "ci_low", "ci_high"], 2)
