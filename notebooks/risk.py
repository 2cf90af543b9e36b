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
# # Risk and protective factors
#
# Which characteristics of households and persons go with a higher or lower risk of
# victimization, each adjusted for the others: survey-weighted logistic regressions of being a
# victim (design-based standard errors, as R's `svyglm`), one per crime group. Odds ratios
# above 1 mark risk factors, below 1 protective factors, relative to the reference category of
# each characteristic (named beside each odds ratio: by default the first category that holds
# respondents; categories nobody in the model's rows holds are dropped first and listed).
# The predictors are the run's `risk_predictors` (by default every domain of the spec except
# victim-status items of the victimization section). Other outcomes (feeling unsafe, worry...)
# come from the run's `models`. These are associations in a cross-sectional survey, not causes.

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
risk_crime_types = None
risk_predictors = None
risk_reference = None
reference_rule = "first"
models = None
on_model_failure = "fail"

# %% check parameters
P = sp.check_notebook(globals(), "risk")

# %% load the survey
import warnings

import pandas as pd

from survey import models as sm
from survey.errors import SurveyError, SurveyWarning

data = sp.load_survey(P)
S = data.spec
R = rp.Reader(P.language, S)  # the report's language: catalog strings, numbers, the spec's labels
if S.victimization is None and not P.models:
    raise sp.ParameterError(f"spec {P.spec} has no victimization section: this notebook has nothing to model")
targets = (P.risk_crime_types or data.crime_groups or data.crime_types) if S.victimization is not None else []
specs = sm.risk_models(S, targets, P.risk_predictors, P.risk_reference, P.reference_rule)
specs += [sm.model_spec(S, m, "models", P.reference_rule) for m in P.models or []]

# %% fit the models
# on_model_failure = fail: a model that cannot be fitted stops the run with one line naming it;
# record: it is a "not fitted" row of risk_models.csv and a line of risk_model_failures.csv
run = sm.fit_models(data, specs, on_failure=P.on_model_failure)
fits = run.fits
models_table = run.table
if len(models_table):
    rp.publish_csv(models_table, f"{P.output_dir}/risk_models.csv")
    rp.publish_csv(run.margins, f"{P.output_dir}/risk_margins.csv")
if run.failures:
    rp.publish_csv(pd.DataFrame(run.failures), f"{P.output_dir}/risk_model_failures.csv")
    rp.md(R("report.risk.failures") + "\n\n" + "\n".join(
        R("report.risk.failure", model=R.model(f["model"]), outcome=R.outcome(f["outcome"]), reason=f["reason"])
        for f in run.failures))
    for f in run.failures:
        warnings.warn(f"model '{f['model']}' ({f['outcome']}) could not be fitted: {f['reason']}", SurveyWarning)
rp.md("\n".join(
    R("report.risk.model_line", model=R.model(name), outcome=R.outcome(ms.outcome),
      fit=R("report.risk.fitted", n=R.count(fits[name].n), formula=fits[name].formula) if name in fits
      else R("report.risk.not_fitted"))
    + (R("report.risk.dropped", levels=R.sep.join(f"{R.domain(k, k)}: " + ", ".join(R.value(k, x) for x in v)
                                                  for k, v in fits[name].dropped_levels.items()))
       if name in fits and fits[name].dropped_levels else "")
    + (f" ({'; '.join(run.notes[name])})" if run.notes.get(name) else "")
    for name, ms in run.specs.items()))

# %% [markdown]
# ## How well can the risk be predicted, and for whom?
#
# The same characteristics in a penalized logistic risk model (`survey.risk.RiskModel`),
# fitted with the survey weights and evaluated by cross-validation on whole PSUs: weighted
# out-of-fold AUC, Brier score and log loss, overall and by subgroup, to expose differential
# performance (`risk_performance.csv`, read by the risk dashboard).

# %% model performance
from survey.risk import RiskModel

performance = []
for name in fits:
    ms = run.specs[name]
    if ms.crime_type is None or not name.startswith("risk_"):
        continue  # the victimization risk models only
    c, preds = ms.crime_type, list(ms.predictors)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SurveyWarning)
        try:
            rm = RiskModel("logistic", features=preds, target=f"victim__{c}", subgroups=preds, seed=P.seed).fit(data)
        except SurveyError as e:
            rp.md(R("report.risk.no_performance", crime=R.crime(c), error=e))
            continue
    performance.append(rm.metrics_.assign(crime_type=c, model="logistic", unit=rm.unit_, features=" + ".join(preds),
                                          n_splits=rm.n_splits, warnings="; ".join(sorted({str(w.message) for w in caught}))))
perf = pd.concat(performance, ignore_index=True)[
    ["crime_type", "model", "unit", "features", "n_splits", "subgroup", "group", "n", "weighted_n", "events",
     "observed", "mean_predicted", "auc", "brier", "log_loss", "note", "warnings"]] if performance else pd.DataFrame()
if len(perf):
    rp.publish_csv(perf, f"{P.output_dir}/risk_performance.csv")
shown = ["crime_type", "n", "events", "observed", "auc", "brier", "log_loss"]
(perf.loc[perf["subgroup"] == "overall", shown].round(4) if R.lang == "en"
 else R.frame(perf[perf["subgroup"] == "overall"], shown, 4)) if len(perf) else None

# %% [markdown]
# ## Odds ratios
#
# One panel per model: each point is the odds ratio (rate ratio for poisson and negbin models)
# of a category against the reference category of its characteristic, with its 95% confidence
# interval (log scale). Intervals that cross the dotted line at 1 are compatible with no
# association.

# %% odds ratios
for name in fits:
    ms = run.specs[name]
    t = models_table[(models_table.model == name) & (models_table.term != "Intercept")]
    t = t.assign(term=t.label + " (vs " + t.reference.str.removesuffix(" (reference)") + ")") if R.lang == "en" \
        else t.assign(term=[R.term(term, ref) for term, ref in zip(t.term, t.reference)])
    ratio, low, high = ("odds_ratio", "or_ci_low", "or_ci_high") if ms.family == "logistic" else (
        "rate_ratio", "rr_ci_low", "rr_ci_high")
    if R.lang == "en":
        what = f"victimization ({ms.crime_type})" if name.startswith("risk_") else ms.outcome
        title, label = f"{name}: {ratio.replace('_', ' ')}s of {what}", ratio.replace("_", " ").capitalize()
    else:
        title = R(f"report.risk.{ratio}_title", model=R.model(name), outcome=R.outcome(ms.outcome))
        label = R(f"report.risk.{ratio}")
    rp.ratio_forest(t, ratio, low, high, title=title, label=label, reader=R).show()

# %% [markdown]
# ## Is each characteristic associated with the outcome?
#
# A Wald test per characteristic (all its categories at once, F on the design degrees of
# freedom, as R's `regTermTest`).

# %% wald tests
rows = []
for name, fit in fits.items():
    for term in dict.fromkeys(t.split(")[T.")[0] + ")" for t in fit.terms if t.startswith("C(")):
        w = fit.wald_test(term).iloc[0]
        var = term[2:-1]
        rows.append({"model": R.model(name), "outcome": R.outcome(run.specs[name].outcome),
                     "characteristic": R.domain(var, S.domains[var].label or var), "F": w.F, "df1": w.df1,
                     "df2": w.df2, "p_value": w.p_value})
(pd.DataFrame(rows).round(4) if R.lang == "en" else R.frame(pd.DataFrame(rows), list(rows[0]), 2)) if rows else None

# %% [markdown]
# ## Adjusted prevalence (predictive margins)
#
# The prevalence the model predicts if everyone were in each category of a characteristic,
# the others kept as observed: odds ratios translated back into percentages.

# %% margins
if len(run.margins):
    import plotly.graph_objects as go

    for name, g in run.margins.groupby("model", sort=False):
        y = [f"{R.domain(d, S.domains[d].label or d)}: {R.value(d, lv)}" for d, lv in zip(g["domain"], g["level"])]
        fig = go.Figure(go.Bar(y=y, x=100 * g["estimate"], orientation="h",
                               error_x=dict(type="data", symmetric=False, array=100 * (g["ci_high"] - g["estimate"]),
                                            arrayminus=100 * (g["estimate"] - g["ci_low"]))))
        fig.update_layout(title=R("report.risk.margins_title", model=R.model(name),
                                  outcome=R.outcome(run.specs[name].outcome)),
                          xaxis_title="%", yaxis=dict(autorange="reversed"), height=max(320, 60 + 22 * len(g)))
        if R.lang != "en":
            fig.update_layout(separators=rp.SEPARATORS[R.lang])
        fig.show()
