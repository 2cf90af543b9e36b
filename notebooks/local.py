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
    from survey.indicators import indicator_table

    data = sp.load_survey(P)
    table = indicator_table(data, crime_types=[SA["crime_type"]], domains=[SA["area"]],
                            publication=P.publication_preset, **P.publication_params)
    table_source = "computed from the spec"
else:
    table_source = "the run's indicator table"
rule = table.attrs.get("publication_rule") or {}
aux = sae.read_auxiliary(SA["auxiliary"], area=SA["area_column"])
rp.md(f"Direct estimates: {table_source}. Auxiliary file: `{Path(SA['auxiliary']).name}` ({len(aux)} areas); "
      f"covariates: {', '.join(SA['covariates'])}. Publication rule: {rp.rule_text(rule)}")

# %% model-based estimates
result = sae.publish(table, aux, SA["indicator"], SA["crime_type"], SA["area"], SA["covariates"], rule=rule,
                     area=SA["area_column"], area_label=SA["area_label"], method=SA["method"],
                     smooth_variances=SA["smooth_variances"], benchmark=SA["benchmark"], shares=SA["shares"])
path = rp.publish_csv(result, Path(P.output_dir) / "small_areas.csv")
fit = result.attrs
rp.md(f"**Model-based estimates** of {SA['indicator']} of {SA['crime_type']} by {SA['area']} "
      f"(Fay–Herriot, {fit['method']}; between-area variance sigma2_u = {fit['sigma2_u']:.4g}; "
      f"{int(result['in_sample'].sum())} of {len(result)} areas with a direct estimate; "
      f"{int(result['suppressed'].sum())} withheld by the publication rule), written to `{path.name}`.")
rp.show_table(result[["area_label", "direct", "direct_se", "eblup", "rmse", "cv", "gamma", "n", "reliability",
                      "note"]], digits=2)

# %% direct and model-based estimates
import plotly.graph_objects as go

fig = go.Figure()
fig.add_trace(go.Scatter(x=result["area_label"], y=result["direct"], error_y=dict(array=1.96 * result["direct_se"]),
                         mode="markers", name="direct (95% CI)"))
fig.add_trace(go.Scatter(x=result["area_label"], y=result["eblup"], error_y=dict(array=1.96 * result["rmse"]),
                         mode="markers", name="model-based EBLUP (± 1.96 RMSE)"))
measure = table.loc[table["indicator"] == SA["indicator"], "measure"]
fig.update_layout(title=f"Model-based estimates: {SA['indicator']} of {SA['crime_type']} by {SA['area']}",
                  yaxis_title=str(measure.iloc[0]) if len(measure) else "")
fig.show()

# %% [markdown]
# The model-based estimate of an area leans on its direct estimate in proportion to `gamma`
# (the share of the between-area variance in the direct estimate's total error) and on the
# regression on the covariates otherwise. Areas without a usable direct estimate get the
# regression (synthetic) estimate. Model-based estimates depend on the model: they are labelled
# "model-based (Fay–Herriot)" in `small_areas.csv` and must be published as such.
