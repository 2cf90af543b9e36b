# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
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
# above 1 mark risk factors, below 1 protective factors, relative to the first category of
# each characteristic. These are associations in a cross-sectional survey, not causes.

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
risk_crime_types = None

# %% check parameters
P = sp.check_notebook(globals(), "risk")

# %% load the survey
import warnings

import pandas as pd

from survey.errors import SurveyError, SurveyWarning

data = sp.load_survey(P)
S = data.spec
if S.victimization is None:
    raise sp.ParameterError(f"spec {P.spec} has no victimization section: this notebook has nothing to model")
targets = P.risk_crime_types or data.crime_groups or data.crime_types

# %% predictors
def predictors(unit):
    """The selected domains that apply to the unit, one per source variable (two recodes of
    one variable would be collinear)."""
    out, seen = [], set()
    for dom in (P.domains or list(S.domains)):
        d = S.domains[dom]
        if (d.units and unit not in d.units) or d.variable in seen:
            continue
        seen.add(d.variable)
        out.append(dom)
    return out


def crime_label(c):
    return next((x.label for x in S.victimization.types if x.name == c), None) or c.replace("_", " ").capitalize()


def pretty(term):
    if term.startswith("C(") and ")[T." in term:
        var, level = term[2:].split(")[T.", 1)
        return f"{S.domains[var].label or var}: {level.rstrip(']')}"
    return term

# %% fit the models
fits, notes, tables, margins = {}, {}, [], []
for c in targets:
    unit = data.unit_of(c)
    preds = predictors(unit)
    if not preds:
        notes[c] = "no domain applies to this crime's unit"
        continue
    formula = f"victim__{c} ~ " + " + ".join(f"C({d})" for d in preds)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SurveyWarning)
        try:
            fit = data.design(unit).glm(formula, family="binomial")
        except SurveyError as e:
            notes[c] = f"the model could not be fitted: {e}"
            continue
    notes[c] = "; ".join(sorted({str(w.message) for w in caught}))
    fits[c] = fit
    t = fit.table.assign(crime_type=c, unit=unit, formula=formula, n=fit.n)
    t["label"] = t.term.map(pretty)
    tables.append(t)
    for d in preds:
        with warnings.catch_warnings():
            # rows with a missing domain value are outside the fit (counted above); formulaic
            # still warns when it builds their (unused) predictions
            warnings.filterwarnings("ignore", message="Data has categories outside of the nominated levels")
            m = fit.predictive_margins(d).assign(crime_type=c, domain=d)
        m.attrs = {}  # the covariance stays with the fit (pandas compares attrs when concatenating)
        margins.append(m)
models = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
if len(models):
    models.to_csv(f"{P.output_dir}/risk_models.csv", index=False)
    pd.concat(margins, ignore_index=True).to_csv(f"{P.output_dir}/risk_margins.csv", index=False)
rp.md("\n".join(f"- **{crime_label(c)}**: " + (f"{fits[c].n:,} respondents, `{fits[c].formula}`" if c in fits else "")
                + (f" ({notes[c]})" if notes.get(c) else "") for c in targets))

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
for c in fits:
    preds = predictors(data.unit_of(c))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SurveyWarning)
        try:
            rm = RiskModel("logistic", features=preds, target=f"victim__{c}", subgroups=preds, seed=P.seed).fit(data)
        except SurveyError as e:
            rp.md(f"- **{crime_label(c)}**: no performance table ({e})")
            continue
    performance.append(rm.metrics_.assign(crime_type=c, model="logistic", unit=rm.unit_, features=" + ".join(preds),
                                          n_splits=rm.n_splits, warnings="; ".join(sorted({str(w.message) for w in caught}))))
perf = pd.concat(performance, ignore_index=True)[
    ["crime_type", "model", "unit", "features", "n_splits", "subgroup", "group", "n", "weighted_n", "events",
     "observed", "mean_predicted", "auc", "brier", "log_loss", "note", "warnings"]] if performance else pd.DataFrame()
if len(perf):
    perf.to_csv(f"{P.output_dir}/risk_performance.csv", index=False)
perf.loc[perf["subgroup"] == "overall", ["crime_type", "n", "events", "observed", "auc", "brier", "log_loss"]].round(4) \
    if len(perf) else None

# %% [markdown]
# ## Odds ratios
#
# One panel per crime group: each point is the odds ratio of a category against the first
# category of its characteristic, with its 95% confidence interval (log scale). Intervals that
# cross the dotted line at 1 are compatible with no association.

# %% odds ratios
for c, fit in fits.items():
    t = fit.table.assign(term=fit.table.term.map(pretty))
    rp.ratio_forest(t, title=f"{crime_label(c)}: odds ratios of victimization").show()

# %% [markdown]
# ## Is each characteristic associated with the risk?
#
# A Wald test per characteristic (all its categories at once, F on the design degrees of
# freedom, as R's `regTermTest`).

# %% wald tests
rows = []
for c, fit in fits.items():
    for term in dict.fromkeys(t.split(")[T.")[0] + ")" for t in fit.terms if t.startswith("C(")):
        w = fit.wald_test(term).iloc[0]
        var = term[2:-1]
        rows.append({"crime_type": c, "characteristic": S.domains[var].label or var, "F": w.F,
                     "df1": w.df1, "df2": w.df2, "p_value": w.p_value})
pd.DataFrame(rows).round(4) if rows else None

# %% [markdown]
# ## Adjusted prevalence (predictive margins)
#
# The prevalence the model predicts if everyone were in each category of a characteristic,
# the others kept as observed: odds ratios translated back into percentages.

# %% margins
if margins:
    import plotly.graph_objects as go

    mg = pd.concat(margins, ignore_index=True)
    for c, g in mg.groupby("crime_type", sort=False):
        y = [f"{S.domains[d].label or d}: {lv}" for d, lv in zip(g["domain"], g["level"])]
        fig = go.Figure(go.Bar(y=y, x=100 * g["estimate"], orientation="h",
                               error_x=dict(type="data", symmetric=False, array=100 * (g["ci_high"] - g["estimate"]),
                                            arrayminus=100 * (g["estimate"] - g["ci_low"]))))
        fig.update_layout(title=f"{crime_label(c)}: adjusted prevalence by characteristic (%)", xaxis_title="%",
                          yaxis=dict(autorange="reversed"), height=max(320, 60 + 22 * len(g)))
        fig.show()
