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
# # Victimization: prevalence, incidence, concentration and reporting to the police
#
# How many households and persons were victimized in the reference period, how often, and how
# many of those crimes the police heard about. Every estimate comes with its 95% confidence
# interval from the survey design (strata, clusters, weights); cells the publication rule
# withholds are left blank and the reason is given.

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

# %% check parameters
P = sp.check_notebook(globals(), "victimization")

# %% load the survey
import pandas as pd

from survey.indicators import INDICATORS, domain_difference, indicator_table

data = sp.load_survey(P)
S = data.spec
if S.victimization is None:
    raise sp.ParameterError(f"spec {P.spec} has no victimization section: this notebook has nothing to estimate")

# %% indicator table
table = indicator_table(data, crime_types=P.crime_types, domains=P.domains,
                        publication=P.publication_preset, **P.publication_params)
rp.write_indicator_table(table, P.output_dir, data, P.as_dict())
rule = table.attrs.get("publication_rule") or {}
rp.md(f"The indicator table has **{len(table):,} rows** (every indicator, crime type and domain "
      f"category; written to `indicators.csv` and `indicators.parquet`). Publication rule: "
      f"{rp.rule_text(rule)}  \nCap rule on repeat counts: **{'; '.join(sorted(set(table.cap_rule) - {''})) or 'none'}**.")

# %% crime selection
crimes = P.crime_types or (data.crime_types + data.crime_groups)
groups = [c for c in crimes if c in data.crime_groups]
types = [c for c in crimes if c in data.crime_types]
focus = groups or types[:4]
overall = table[table.domain == "overall"]
units = {c: data.unit_of(c) for c in crimes}
noun = {"household": "households", "person": "persons"}

# %% [markdown]
# ## Prevalence
#
# Prevalence is the share of households (for household crimes) or persons (for personal
# crimes) victimized at least once in the reference period. The bars are estimates; the
# whiskers their 95% confidence intervals: two bars whose intervals overlap may still differ
# significantly, so differences are tested further below, never read off the chart.

# %% prevalence
for unit in ("household", "person"):
    rows = overall[(overall.indicator == "prevalence") & overall.crime_type.isin([c for c in crimes if units[c] == unit])]
    if len(rows):
        rp.estimate_bars(rows, title=f"Prevalence: {noun[unit]} victimized at least once (%)").show()

# %% prevalence prose
rows = overall[(overall.indicator == "prevalence") & overall.crime_type.isin(focus)]
rp.md("\n".join(f"- **{r.crime_label}**: {rp.ci_text(r)} of {noun[r.unit]}" for r in rows.itertuples()))

# %% [markdown]
# ## Incidence and concentration
#
# Incidence counts every victimization, not only victims: crimes per 1,000 households or
# persons. Concentration is the number of victimizations per victim (incidence divided by
# prevalence): a value well above 1 means that victims are often victimized again.

# %% incidence
rows = overall[(overall.indicator == "incidence")]
if len(rows):
    rp.estimate_bars(rows, series="unit", title="Incidence: victimizations per 1,000 households or persons").show()
    rows = overall[(overall.indicator == "concentration")]
    rp.estimate_bars(rows, series="unit", title="Concentration: victimizations per victim").show()
else:
    rp.md(rp.no_counts_sentence("Incidence and concentration"))

# %% [markdown]
# ## Reporting to the police
#
# Two reporting rates: among victimizations (how many crimes the police heard about) and among
# victims (how many victims reported at least one of their crimes; the basis of SDG 16.3.1
# for violent crime). The dark figure is the share of victimizations never reported.

# %% reporting
rows = overall[overall.indicator.isin(["reporting_rate", "reporting_rate_victims"])].copy()
if len(rows):
    rows["series"] = rows.indicator.map(lambda f: INDICATORS[f].label)
    rp.estimate_bars(rows, series="series", title="Reported to the police (%)").show()
    dark = overall[(overall.indicator == "dark_figure") & overall.crime_type.isin(focus)]
    rp.md("Dark figure: " + "; ".join(f"**{r.crime_label}** {rp.ci_text(r)}" for r in dark.itertuples()) + ".")
else:
    rp.md("This survey does not record whether crimes were reported to the police.")

# %% [markdown]
# ## By domain
#
# Prevalence by the categories of each domain, for the headline crime groups. A domain that
# applies to persons only (such as sex or age) is shown for personal crimes only. Cells with a
# base too small for the publication rule have no bar (hover for the reason).

# %% domains
doms = [d for d in (P.domains or list(S.domains))]
for dom in doms:
    rows = table[(table.indicator == "prevalence") & table.crime_type.isin(focus) & (table.domain == dom)]
    if len(rows):
        label = S.domains[dom].label or dom
        rp.estimate_bars(rows, category="domain_value", series="crime_label",
                         title=f"Prevalence by {label.lower()} (%)").show()

# %% [markdown]
# ## Differences between the two categories of a domain
#
# For domains with exactly two categories, the difference in prevalence with its standard
# error from the full covariance of the two domain estimates (a t test on the design degrees
# of freedom). "Significant" means that the 95% confidence interval of the difference
# excludes zero.

# %% differences
diffs = []
for dom in doms:
    cats = [v for v in table.loc[table.domain == dom, "domain_value"].unique()]
    if len(cats) != 2:
        continue
    for c in focus:
        if S.domains[dom].units and units[c] not in S.domains[dom].units:
            continue
        diffs.append(domain_difference(data, "prevalence", c, dom, cats[0], cats[1]))
if diffs:
    diffs = pd.concat(diffs, ignore_index=True)
    display(diffs[["crime_type", "domain", "a", "b", "estimate_a", "estimate_b", "difference", "ci_low", "ci_high",
                   "p_value", "significant"]].round(3))
else:
    rp.md("No selected domain has exactly two categories.")

# %% [markdown]
# ## Quality of the estimates
#
# How many cells the publication rule flags or withholds, by indicator: a quick check of how
# far the sample supports the breakdowns requested.

# %% quality
quality = (table.assign(flagged=table.flag_reason.ne("") & ~table.suppressed)
           .groupby("indicator", sort=False)
           .agg(cells=("estimate", "size"), suppressed=("suppressed", "sum"), flagged=("flagged", "sum")))
quality
