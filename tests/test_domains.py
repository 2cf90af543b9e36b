"""Two- and three-way breakdowns declared in the spec (``cross:``), and labels given in several
languages: estimates of a crossed cell equal the same domain estimated on the full design by
hand (a 0/1 domain indicator), and the tables keep one language while the spec's translations
are published beside them."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from survey.indicators import indicator_table
from survey.ingest import CROSS, load
from survey.spec import SpecError, read_spec

SPEC = """
schema_version: 1
survey: cross
title: {en: Crossed survey, fr: Enquête croisée, es: Encuesta cruzada}
files:
  r: {path: r.sav, unit: person, keys: [id]}
design: {file: r, weights: w, strata: h, psu: p, nest: true}
victimization:
  source: respondent
  types:
    - {name: assault, label: {en: Assault, fr: Agression, es: Agresión}, unit: person, violent: true,
       victim: {variable: v, yes: [1]}}
domains:
  sex: {variable: sex, label: {en: Sex, fr: Sexe}, labels: {1: {en: Male, fr: Homme}, 2: {en: Female, fr: Femme}}}
  age_band: {variable: age, bands: [16, 35, 60], translations: {fr: {"60+": 60 ans et plus}}}
  region: {variable: region, labels: {1: North, 2: South}}
  sex_by_age: {cross: [sex, age_band], label: {en: Sex by age, fr: Sexe par âge}}
  sex_age_region: {cross: [sex, age_band, region]}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cross")
    rng = np.random.default_rng(11)
    n = 1200
    df = pd.DataFrame({"id": np.arange(n) + 1.0, "h": np.repeat(np.arange(6.0), n // 6),
                       "p": np.tile(np.repeat(np.arange(4.0), n // 24), 6), "w": rng.uniform(50, 150, n).round(2),
                       "sex": rng.choice([1.0, 2.0], n), "age": rng.integers(16, 90, n).astype(float),
                       "region": rng.choice([1.0, 2.0], n)})
    df.loc[rng.choice(n, 5, replace=False), "age"] = np.nan
    df["v"] = (rng.uniform(size=n) < np.where(df.sex == 1, 0.08, 0.05) * np.where(df.age < 35, 1.6, 1.0)).astype(float)
    pyreadstat.write_sav(df, str(d / "r.sav"))
    (d / "s.yaml").write_text(SPEC)
    return load(d / "s.yaml"), df


def test_crossed_cells_by_hand(data):
    survey, df = data
    t = indicator_table(survey, indicators=["prevalence"], publication="none")
    cells = t[t.domain == "sex_by_age"].set_index("domain_value")
    sex = df.sex.map({1.0: "Male", 2.0: "Female"})
    age = pd.cut(df.age, [16, 35, 60, np.inf], right=False, labels=["16-34", "35-59", "60+"]).astype(str)
    assert len(cells) == 6
    design = survey.design()
    for (s, a), grp in df.groupby([sex, age]):
        if a == "nan":
            continue
        row = cells.loc[f"{s}{CROSS}{a}"]
        assert row.estimate == pytest.approx(100 * np.average(grp.v, weights=grp.w), rel=1e-12)
        mask = ((sex == s) & (age == a)).to_numpy()
        ref = design.subset(mask).mean("victim__assault").iloc[0]  # the domain on the full design
        assert row.se == pytest.approx(100 * ref.se, rel=1e-10)
        assert row.n == len(grp)
    three = t[t.domain == "sex_age_region"]
    assert len(three) == 12 and three.domain_value.str.count(CROSS).eq(2).all()
    acc = survey.accounting
    assert "sex_by_age: respondents with no value in one of sex, age_band" in " ".join(acc.detail)


def test_languages_in_the_spec(data, tmp_path):
    survey, _ = data
    spec = survey.spec
    assert spec.title == "Crossed survey" and spec.title_i18n["fr"] == "Enquête croisée"
    t = indicator_table(survey, indicators=["prevalence"], publication="none")
    assert set(t.crime_label) == {"Assault"}  # the tables keep one language
    tr = pd.DataFrame(spec.translations())
    fr = tr[tr.language == "fr"].set_index(["kind", "name", "value"]).text
    assert fr[("crime", "assault", "")] == "Agression"
    assert fr[("value", "sex", "Female")] == "Femme"
    assert fr[("value", "age_band", "60+")] == "60 ans et plus"
    assert fr[("domain", "sex_by_age", "")] == "Sexe par âge"
    assert fr[("title", "cross", "")] == "Enquête croisée"


@pytest.mark.parametrize("bad,msg", [
    ("sex_by_age: {cross: [sex, nope]}", "'nope' is not a domain"),
    ("sex_by_age: {cross: [sex]}", "two or three"),
    ("sex_by_age: {cross: [sex, age_band], variable: sex}", "not both"),
    ("sex_by_age: {cross: [sex, sex_age_region]}", "itself crossed"),
    ("sex: {variable: sex, label: {english: Sex}}", "not a language code"),
])
def test_bad_crosses_and_languages(tmp_path, bad, msg):
    key = bad.split(":")[0]
    lines = [ln for ln in SPEC.splitlines() if not ln.strip().startswith(f"{key}:")]
    i = lines.index("domains:")
    lines.insert(i + 1, "  " + bad)
    (tmp_path / "s.yaml").write_text("\n".join(lines))
    with pytest.raises(SpecError, match=msg):
        read_spec(tmp_path / "s.yaml")


def test_shipped_specs_still_read():
    root = Path(__file__).resolve().parents[1]
    for p in (root / "specs").rglob("*.yaml"):
        read_spec(p)


def test_crossed_domains_are_not_default_risk_predictors(data):
    from survey.models import ModelSpecError, check_risk_parameters, risk_predictor_default

    survey, _ = data
    assert risk_predictor_default(survey.spec) == ["sex", "age_band", "region"]
    with pytest.raises(ModelSpecError, match="crosses sex, age_band"):
        check_risk_parameters(survey.spec, {"risk_predictors": ["sex_by_age"]})


def test_secondary_suppression_across_both_margins():
    """A crossed table publishes its margins (the parts' own domains): no row or column of it may
    hold exactly one withheld cell, or the margin would give it back."""
    from survey.quality import CROSS, apply_rule

    sexes, ages = ["Male", "Female"], ["16-34", "35-59", "60+"]
    rows = [{"indicator": "prevalence", "crime_type": "x", "domain": "overall", "domain_value": "all", "n": 1000}]
    n = {("Male", "16-34"): 30, ("Male", "35-59"): 200, ("Male", "60+"): 210,
         ("Female", "16-34"): 220, ("Female", "35-59"): 230, ("Female", "60+"): 240}
    for (s, a), k in n.items():
        rows.append({"indicator": "prevalence", "crime_type": "x", "domain": "sex_by_age",
                     "domain_value": f"{s}{CROSS}{a}", "n": k})
    t = pd.DataFrame(rows)
    for c in ("estimate", "se", "ci_low", "ci_high", "cv", "deff"):
        t[c] = 1.0
    t["weighted_base"] = t["n"] * 10.0
    t["n_cases"] = 5
    out = apply_rule(t, "ons", min_base=50).set_index("domain_value")
    sup = out["suppressed"]
    assert sup[f"Male{CROSS}16-34"]  # primary
    grid = pd.DataFrame([[sup[f"{s}{CROSS}{a}"] for a in ages] for s in sexes], index=sexes, columns=ages)
    assert (grid.sum(axis=1) != 1).all() and (grid.sum(axis=0) != 1).all(), grid
    assert out.loc[out.suppressed, ["estimate", "se"]].isna().all().all()
