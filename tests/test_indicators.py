"""Victimization indicators and the indicator table, against published NCVS figures and
independent hand computations from the raw files (pyreadstat + pandas, not the loader)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from survey.indicators import (
    TABLE_COLUMNS,
    compare_waves,
    domain_difference,
    indicator_table,
    trend_table,
)
from survey.ingest import load
from survey.quality import apply_rule

ROOT = Path(__file__).resolve().parents[1]
NCVS = ROOT / "data" / "ncvs2021"
PROPERTY = [31, 32, 33, 40, 41, 54, 55, 56, 57, 58, 59]


@pytest.fixture(scope="module")
def ncvs():
    return load(ROOT / "specs" / "ncvs-2021.yaml")


@pytest.fixture(scope="module")
def table(ncvs):
    return indicator_table(ncvs)


@pytest.fixture(scope="module")
def raw():
    """Household-level property victimization computed by hand from the raw files."""
    hh, _ = pyreadstat.read_sav(NCVS / "ncvs_2021_household.zsav", usecols=["YEARQ", "IDHH", "WGTHHCY", "V2015"])
    inc, _ = pyreadstat.read_sav(NCVS / "ncvs_2021_incident.zsav")
    inc = inc[(inc.V4022 != 1) & inc.V4529.isin(PROPERTY)].copy()
    series = (inc.V4017 == 2) & ~inc.V4018.isin([2, 8]) & ~inc.V4019.isin([1, 8])
    count = np.where(inc.V4016.isin([997, 998]), 6, np.minimum(inc.V4016, 10))
    inc["k"] = np.where(series, count, 1.0)
    inc["reported"] = (inc.V4399 == 1).astype(float)
    # the household over the 2021 collection year (the spec's combine): its interviews' weights
    # summed, its victimizations summed, reported if any was
    per = inc.groupby("IDHH").agg(k=("k", "sum"), vrep=("reported", "max")).reset_index()
    hh = hh[hh.WGTHHCY > 0].groupby("IDHH", as_index=False).WGTHHCY.sum()
    return hh.merge(per, on="IDHH", how="left").fillna({"k": 0, "vrep": 0})


def _row(t, indicator, crime="property", domain="overall", value="all"):
    r = t[(t.indicator == indicator) & (t.crime_type == crime) & (t.domain == domain) & (t.domain_value == value)]
    assert len(r) == 1, (indicator, crime, domain, value)
    return r.iloc[0]


def test_schema(table):
    assert list(table.columns) == TABLE_COLUMNS
    assert not table.duplicated(["indicator", "crime_type", "domain", "domain_value"]).any()
    assert set(table.measure) <= {"%", "per 1,000", "ratio", "index", "count"}
    assert (table.cap_rule[table.indicator == "incidence"].str.contains("series counted as V4016 capped at 10")).all()


def test_published_ncvs_figures(table, ncvs):
    inc = _row(table, "incidence")
    assert round(inc.estimate, 1) == 90.3 and round(inc.se, 2) == 1.95
    assert round(inc.weighted_base) == 129_319_232
    # published by tenure at each interview: the row-level (household-quarter) table
    rows = indicator_table(ncvs.row_data(), crime_types=["property"], domains=["tenure"], indicators=["incidence"])
    assert round(_row(rows, "incidence", domain="tenure", value="Owned").estimate, 1) == 68.2
    assert round(_row(rows, "incidence", domain="tenure", value="Rented").estimate, 1) == 129.8
    rep = _row(table, "reporting_rate")
    assert round(rep.estimate, 1) == 30.8 and round(rep.se, 3) == 0.798


def test_prevalence_is_bjs_household_definition(table, raw):
    # % of households with one or more property victimizations (BJS), by hand
    w = raw.WGTHHCY
    want = 100 * (w * (raw.k > 0)).sum() / w.sum()
    got = _row(table, "prevalence")
    assert got.estimate == pytest.approx(want, rel=1e-12)
    assert got.n_cases == int((raw.k > 0).sum()) and got.n == len(raw)


def test_repeat_and_reporting_by_hand(table, raw):
    w, k = raw.WGTHHCY, raw.k
    victims = k > 0
    assert _row(table, "repeat_victims").estimate == pytest.approx(
        100 * (w * (k >= 2)).sum() / (w * victims).sum(), rel=1e-12)
    assert _row(table, "reporting_rate_victims").estimate == pytest.approx(
        100 * (w * raw.vrep).sum() / (w * victims).sum(), rel=1e-12)
    assert _row(table, "concentration").n == int(victims.sum())


def test_incidence_is_prevalence_times_concentration(table):
    keys = ["crime_type", "domain", "domain_value"]
    p = table[table.indicator == "prevalence"].set_index(keys).estimate
    c = table[table.indicator == "concentration"].set_index(keys).estimate
    i = table[table.indicator == "incidence"].set_index(keys).estimate
    both = pd.concat([p, c, i], axis=1, keys=["p", "c", "i"]).dropna()
    assert len(both) > 50
    np.testing.assert_allclose(both.i, both.p * 10 * both.c, rtol=1e-12)


def test_dark_figure_complements_reporting(table):
    keys = ["crime_type", "domain", "domain_value"]
    r = table[table.indicator == "reporting_rate"].set_index(keys)
    d = table[table.indicator == "dark_figure"].set_index(keys)
    np.testing.assert_allclose(d.estimate, 100 - r.estimate, rtol=1e-12)
    np.testing.assert_allclose(d.se, r.se, rtol=1e-12)


def test_ons_suppression_cannot_be_recovered(ncvs):
    t = indicator_table(ncvs, crime_types=["property", "motor_vehicle_theft"], domains=["income", "region"],
                        indicators=["prevalence", "concentration", "reporting_rate"], publication="ons",
                        min_base=150)
    sup = t[t.suppressed]
    assert len(sup) > 0
    assert sup[["estimate", "se", "ci_low", "ci_high", "cv"]].isna().all().all()
    assert (sup.suppression_reason != "").all()
    assert (t.loc[~t.suppressed, "n"] >= 150).all() | t.suppression_reason.str.startswith("secondary").any()
    # within each partition (with its overall row published), never exactly one cell withheld
    part = t[t.domain != "overall"].groupby(["indicator", "crime_type", "domain"]).suppressed.sum()
    assert not (part == 1).any()
    assert (t[t.suppression_reason.str.startswith("secondary")].n >= 150).all()


def test_bjs_flags_few_cases(ncvs):
    t = indicator_table(ncvs, crime_types=["motor_vehicle_theft"], domains=["income"],
                        indicators=["prevalence"], publication="bjs")
    few = t.n_cases <= 10
    noisy = t.cv > 0.5
    assert ((t.reliability == "interpret with caution") == (few | noisy)).all()
    assert not t.suppressed.any()


def test_apply_rule_rejects_unknown_preset(table):
    from survey.quality import PublicationError

    with pytest.raises(PublicationError, match="must be one of"):
        apply_rule(table, "statcan")


def test_domain_difference_uses_full_covariance(ncvs):
    d = domain_difference(ncvs, "incidence", "property", "tenure", "Rented", "Owned").iloc[0]
    assert d.difference == pytest.approx(d.estimate_a - d.estimate_b, rel=1e-12)
    # the two domains share PSUs: the covariance term is not zero, so the SE is not the naive one
    t = indicator_table(ncvs, crime_types=["property"], domains=["tenure"], indicators=["incidence"])
    naive = np.hypot(_row(t, "incidence", domain="tenure", value="Rented").se,
                     _row(t, "incidence", domain="tenure", value="Owned").se)
    assert d.se != pytest.approx(naive, rel=1e-3)
    assert d.significant and d.df == ncvs.design("household").df


def test_compare_waves_and_trend(table):
    later = table.copy()
    later["period"] = "2022"
    later["estimate"] = later["estimate"] * 1.1
    c = compare_waves(table, later)
    r = c[(c.indicator == "incidence") & (c.crime_type == "property") & (c.domain == "overall")].iloc[0]
    base = _row(table, "incidence")
    assert r.difference == pytest.approx(0.1 * base.estimate)
    assert r.se == pytest.approx(np.sqrt(2) * base.se)
    assert r.significant
    tr = trend_table([table, later])
    p = "2021 collection year"
    assert {p, "2022", f"change {p}-2022", f"significant {p}-2022"} <= set(tr.columns)


def test_interval_shapes(table):
    """% indicators: logit; incidence: symmetric on the log scale; concentration: on the log of
    (concentration - 1); all with t on the design df, from the table's own estimate and SE."""
    from scipy import stats

    ok = table["se"] > 0
    q = stats.t.ppf(0.975, table["df"])
    inc = ok & (table["indicator"] == "incidence") & (table["estimate"] > 0)
    t = table[inc]
    assert len(t) > 0
    assert np.allclose(t["ci_low"] * t["ci_high"], t["estimate"] ** 2, rtol=1e-9)
    assert np.allclose(np.log(t["ci_high"] / t["estimate"]), q[inc] * t["se"] / t["estimate"], rtol=1e-9)
    assert ((t["ci_high"] - t["estimate"]) > (t["estimate"] - t["ci_low"])).all()
    con = ok & (table["indicator"] == "concentration") & (table["estimate"] > 1)
    c = table[con]
    assert len(c) > 0
    assert np.allclose((c["ci_low"] - 1) * (c["ci_high"] - 1), (c["estimate"] - 1) ** 2, rtol=1e-9)
    assert (c["ci_low"] > 1).all()
    pct = ok & (table["measure"] == "%") & table["estimate"].between(0.1, 99.9)
    p = table[pct]
    logit = np.log(p["estimate"] / (100 - p["estimate"]))
    half = q[pct] * (p["se"] / 100) / (p["estimate"] / 100 * (1 - p["estimate"] / 100))
    assert np.allclose(p["ci_high"], 100 / (1 + np.exp(-(logit + half))), rtol=1e-9)


def test_tile_grid_is_published_with_the_table(tmp_path):
    """A domain's tile_grid (spec) is written beside the indicator table for the dashboards'
    maps; a grid value that is not a published value of the domain is a named error."""
    import survey as sv
    from survey.errors import SurveyError
    from survey.report import tile_grid_frame, write_indicator_table

    root = Path(__file__).resolve().parents[1]
    data = sv.load(root / "specs" / "synthetic.yaml")
    table = indicator_table(data, crime_types=["burglary"], domains=["region"], indicators=["prevalence"])
    files = write_indicator_table(table, tmp_path, data)
    assert tmp_path / "tile_grid.csv" in files
    grid = pd.read_csv(tmp_path / "tile_grid.csv")
    assert list(grid.columns) == ["domain", "domain_value", "row", "col"]
    regions = set(table.loc[table["domain"] == "region", "domain_value"])
    assert set(grid["domain_value"]) == regions and len(regions) == 8
    assert not grid.duplicated(["row", "col"]).any()
    data.spec.domains["region"].tile_grid["Atlantis"] = (9, 9)
    with pytest.raises(SurveyError, match="Atlantis"):
        tile_grid_frame(data.spec, table)


def test_perception_by_victimization_by_hand():
    """Victims and non-victims: the weighted share of positive answers among those who answered,
    by hand from the respondent file; the publication rule applies."""
    import survey as sv
    from survey.indicators import perception_by_victimization

    root = Path(__file__).resolve().parents[1]
    data = sv.load(root / "specs" / "synthetic.yaml")
    t = perception_by_victimization(data, crime_types=["household"], publication="ons", min_base=50)
    r = data.respondents
    w = r[data.spec.design.weight_for("person", data.spec.files[data.spec.design.file].unit)].to_numpy(float)
    for who, flag in (("victims", 1.0), ("non-victims", 0.0)):
        row = t[(t["crime_type"] == "safe_dark") & (t["domain_value"] == who)].iloc[0]
        y = r["perc__safe_dark"].to_numpy(float)
        m = (r["victim__household"].to_numpy(float) == flag) & ~np.isnan(y)
        assert row["domain"] == "victim__household"
        assert row["n"] == m.sum()
        assert np.isclose(row["estimate"], 100 * np.sum(w[m] * y[m]) / np.sum(w[m]), rtol=1e-12)
        assert row["ci_low"] < row["estimate"] < row["ci_high"]
    assert set(t["domain_value"]) == {"victims", "non-victims"}
    small = perception_by_victimization(data, crime_types=["violent"], publication="ons", min_base=100)
    assert small.loc[small["domain_value"] == "victims", "suppressed"].all()  # about 70 victims
    with pytest.raises(sv.SurveyError, match="unknown crime"):
        perception_by_victimization(data, crime_types=["arson"])
    # the same rows are in the indicator table (domain victim__<group>), under the same rule
    from survey.indicators import indicator_table as table_of

    full = table_of(data, domains=[], publication="ons", min_base=50)
    keys = ["indicator", "crime_type", "domain", "domain_value"]
    part = full[full["domain"] == "victim__household"].set_index(keys).sort_index()
    pd.testing.assert_frame_equal(part[["estimate", "se", "n", "suppressed"]],
                                  t.set_index(keys).sort_index()[["estimate", "se", "n", "suppressed"]])
    assert {f"victim__{g}" for g in data.crime_groups} <= set(full["domain"])
