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
# # Crime at the local level: small-area estimates
#
# Direct survey estimates are reliable for large areas only. This notebook combines a run's
# indicator table (direct estimates and SEs by area) with an auxiliary file of area covariates
# known for every area, fits a Fay-Herriot area-level model and publishes **model-based**
# estimates (EBLUPs) with their estimated root mean squared error, in `small_areas.csv`.
# Methods: docs/small-areas.md.
#
# Not part of the batch run (`survey run`): run it on its own, e.g.
# `papermill notebooks/local.ipynb out.ipynb -p output_dir outputs/local`.

# %% setup
from survey import report as rp

rp.setup_notebook()

# %% parameters tags=["parameters"]
# Notebook parameters (standalone notebook: not checked by survey.params)
spec = "specs/synthetic.yaml"
indicator_table = None  # a run's indicators.csv / .parquet; None: computed from spec
auxiliary = None  # CSV, one row per area; None: survey.sae.synthetic_auxiliary (synthetic survey)
area_column = "area"
domain = "region"
indicator = "prevalence"
crime_types = ["household", "burglary", "vehicle_theft"]
covariates = ["prior_rate"]
method = "REML"
cv_bands = [15.0, 30.0]
max_cv = 30.0
benchmark = False
shares = "share"
smooth_variances = False  # True: GVF-smoothed sampling variances (proportion GVF on the table's cells)
output_dir = "outputs/local"
seed = 1

# %% check parameters
from pathlib import Path

import pandas as pd

from survey import sae
from survey.params import project_root

ROOT = project_root()
out = Path(output_dir) if Path(output_dir).is_absolute() else ROOT / output_dir
out.mkdir(parents=True, exist_ok=True)
if method not in ("REML", "ML"):
    raise sae.SmallAreaError(f"method must be REML or ML, not {method!r}")
if isinstance(crime_types, str):
    crime_types = [crime_types]

# %% direct estimates and auxiliary file
if indicator_table is None:
    from survey.indicators import indicator_table as make_table
    from survey.ingest import load

    table = make_table(load(ROOT / spec), crime_types=crime_types, domains=[domain], indicators=[indicator],
                       by_victimization=False)
    table_source = f"computed from {spec}"
else:
    p = Path(indicator_table) if Path(indicator_table).is_absolute() else ROOT / indicator_table
    table = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    table_source = str(p)
if auxiliary is None:
    aux = sae.synthetic_auxiliary(seed=seed)
    aux_path = sae.write_csv(aux, out / "auxiliary_regions.csv")
    aux_source = aux.attrs["source"]
else:
    aux_path = Path(auxiliary) if Path(auxiliary).is_absolute() else ROOT / auxiliary
    aux = sae.read_auxiliary(aux_path, area=area_column)
    aux_source = str(aux_path)
rp.md(f"Direct estimates: {table_source}. Auxiliary file: {aux_source} ({len(aux)} areas; "
      f"covariates {', '.join(covariates)}).")

# %% model-based estimates
result = sae.small_area_table(table, aux, indicator, crime_types, domain, covariates, area=area_column,
                              method=method, cv_bands=tuple(cv_bands), max_cv=max_cv, benchmark=benchmark,
                              shares=shares, smooth_variances=smooth_variances)
path = sae.write_csv(result, out / "small_areas.csv")
lines = [f"- **{c}**: {g['model'].iloc[0]}; sampling SEs: {g['se_source'].iloc[0]}; {int(g['suppressed'].sum())} of {len(g)} areas withheld "
         f"(model CV above {max_cv:g}%)" for c, g in result.groupby("crime_type", sort=False)]
rp.md("Model-based estimates (labelled so in `estimate_type`), written to "
      f"`{path.name}`:\n\n" + "\n".join(lines))
rp.show_table(result[["crime_type", "area", "direct", "direct_se", "estimate", "rmse", "cv", "gamma",
                      "estimate_type", "reliability", "suppressed"]], digits=2)

# %% direct and model-based estimates
import plotly.graph_objects as go

for c, g in result.groupby("crime_type", sort=False):
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=g["area"], y=g["direct"], error_y=dict(array=1.96 * g["direct_se"]),
                             mode="markers", name="direct (95% CI)"))
    fig.add_trace(go.Scatter(x=g["area"], y=g["estimate"], error_y=dict(array=1.96 * g["rmse"]),
                             mode="markers", name="model-based EBLUP (± 1.96 RMSE)"))
    fig.update_layout(title=f"{indicator} of {c} by {domain}", yaxis_title=str(g["measure"].iloc[0] or ""))
    fig.show()
