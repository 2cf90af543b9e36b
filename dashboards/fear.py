# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: title
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   title: Fear of crime
# ---

# %% setup
# Fear of crime: feeling safe after dark and worry items by domain (Voilà dashboard, issue 7).
# Reads only the published aggregate outputs of batch runs; all logic is in survey.dashboard.
import os

from survey.dashboard import show

# %% parameters tags=["parameters"]
# Dashboard parameters: the publication root (default <project>/outputs) and the language.
OUTPUTS = os.environ.get("SURVEY_DASHBOARD_OUTPUTS") or None
LANGUAGE = os.environ.get("SURVEY_DASHBOARD_LANGUAGE") or "en"

# %% dashboard
app = show("fear", root=OUTPUTS, language=LANGUAGE)
