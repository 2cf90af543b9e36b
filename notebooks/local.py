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
# # Crime at the local level: model-based small-area estimates
#
# Direct survey estimates are reliable for large areas only. This notebook takes the run's
# indicator table (direct estimates and their standard errors by area) and an auxiliary file of
# area covariates known for every area, fits a Fay–Herriot area-level model and publishes
# **model-based** estimates (EBLUPs) with their estimated root mean squared error in
# `small_areas.csv`, rated and withheld by the same publication rule as the indicator table.
# A batch run executes it after the other notebooks when its parameter set has a
# `small_areas` section. Methods: docs/small-areas.md.

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
small_areas = {"indicator": "prevalence", "crime_type": "household", "area": "region",
               "auxiliary": "parameters/areas/synthetic-regions.csv",
               "covariates": ["recorded_household_per_1000"], "method": "REML"}

# %% check parameters
P = sp.check_notebook(globals(), "local")

# %% direct estimates and auxiliary file
from pathlib import Path

import pandas as pd

from survey import sae

SA = P.small_areas
if SA is None:
    raise sp.ParameterError("notebook 'local': small_areas is required (see survey.params.SMALL_AREA_KEYS)")
table = rp.read_indicator_table(P.output_dir)
if table is None:  # run on its own: the indicator table of these parameters
    from survey.tables import indicator_table  # in memory, or streamed (survey.tables)

    data = sp.load_survey(P)
    spec_ = data.spec
    table = indicator_table(data, crime_types=[SA["crime_type"]], domains=[SA["area"]],
                            publication=P.publication_preset, **P.publication_params)
    table_source = "report.local.source_spec"
else:
    from survey.spec import read_spec

    spec_ = read_spec(P.spec)
    table_source = "report.local.source_table"
R = rp.Reader(P.language, spec_)  # the report's language: catalog strings, numbers, the spec's labels
rule = table.attrs.get("publication_rule") or {}
aux = sae.read_auxiliary(SA["auxiliary"], area=SA["area_column"])
rp.md(R("report.local.sources", source=R(table_source), file=Path(SA["auxiliary"]).name, areas=R.count(len(aux)),
        covariates=", ".join(f"`{c}`" for c in SA["covariates"]), rule=rp.rule_text(rule, R.lang)))

# %% model-based estimates
import warnings

from survey.errors import SurveyWarning

with warnings.catch_warnings(record=True) as caught:  # in English the warnings are shown as they are
    warnings.simplefilter("always" if R.lang != "en" else "default", SurveyWarning)
    result = sae.publish(table, aux, SA["indicator"], SA["crime_type"], SA["area"], SA["covariates"], rule=rule,
                         area=SA["area_column"], area_label=SA["area_label"], method=SA["method"],
                         smooth_variances=SA["smooth_variances"], benchmark=SA["benchmark"], shares=SA["shares"])
for w in caught:
    if R.lang != "en" and issubclass(w.category, SurveyWarning) and "estimated as 0" in str(w.message):
        continue  # said below in the language (report.local.at_zero)
    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
path = rp.publish_csv(result, Path(P.output_dir) / "small_areas.csv")
fit = result.attrs
what = R("report.local.what", indicator=R.indicator(SA["indicator"], SA["indicator"]),
         crime=R.crime(SA["crime_type"], SA["crime_type"]), area=R.domain(SA["area"], SA["area"]))
rp.md(R("report.local.result", what=what, method=fit["method"], sigma2=R.sig(fit["sigma2_u"]),
        in_sample=R.count(int(result["in_sample"].sum())), areas=R.count(len(result)),
        withheld=R.count(int(result["suppressed"].sum())), file=path.name)
      + (" " + R("report.local.at_zero", method=fit["method"]) if fit.get("at_zero") and R.lang != "en" else ""))


def area_name(area, label):
    """The area's name in the language (the spec's translations), else the auxiliary file's label."""
    name = R.value(SA["area"], area)
    return name if name != str(area) else label


shown = ["area_label", "direct", "direct_se", "eblup", "rmse", "cv", "gamma", "n", "reliability", "note"]
if R.lang == "en":
    view = rp.show_table(result[shown], digits=2)
else:  # the area names, the reliability and the notes in the language (small_areas.csv keeps its English)
    view = result.assign(
        area_label=[area_name(a, lab) for a, lab in zip(result["area"], result["area_label"])],
        note=[R.sep.join(x for x in (
            R("report.local.note_synthetic") if not ins else "",
            R("report.local.note_withheld", reason=R.reason(sr)) if sup else R.reason(fr),
            R("report.local.note_benchmarked") if SA["benchmark"] else "",
            R("report.local.note_model", method=fit["method"], sigma2=R.sig(fit["sigma2_u"]))) if x)
              for ins, sup, sr, fr in zip(result["in_sample"], result["suppressed"], result["suppression_reason"],
                                          result["flag_reason"])])
    view = R.frame(view, shown, 2)
view

# %% direct and model-based estimates
import plotly.graph_objects as go

labels = result["area_label"] if R.lang == "en" else [area_name(a, lab) for a, lab in zip(result["area"],
                                                                                        result["area_label"])]
fig = go.Figure()
fig.add_trace(go.Scatter(x=labels, y=result["direct"], error_y=dict(array=1.96 * result["direct_se"]),
                         mode="markers", name=R("report.local.trace_direct")))
fig.add_trace(go.Scatter(x=labels, y=result["eblup"], error_y=dict(array=1.96 * result["rmse"]),
                         mode="markers", name=R("report.local.trace_eblup")))
measure = table.loc[table["indicator"] == SA["indicator"], "measure"]
fig.update_layout(title=R("report.local.title", what=what),
                  yaxis_title=R.measure(str(measure.iloc[0])) if len(measure) else "")
if R.lang != "en":
    fig.update_layout(separators=rp.SEPARATORS[R.lang])
fig.show()

# %% [markdown]
# The model-based estimate of an area leans on its direct estimate in proportion to `gamma`
# (the share of the between-area variance in the direct estimate's total error) and on the
# regression on the covariates otherwise. Areas without a usable direct estimate get the
# regression (synthetic) estimate. Model-based estimates depend on the model: they are labelled
# "model-based (Fay–Herriot)" in `small_areas.csv` and must be published as such.
