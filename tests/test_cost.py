"""Cost of crime and cost-benefit (survey.cost): totals x unit costs, the SE of the total cost
as sqrt(c' V c) from the covariance of the totals, both against R (svytotal, svyby(covmat=TRUE),
svycontrast; tests/reference/make_cost.R), the shipped unit-cost table, user tables, and the
cost-benefit arithmetic by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import survey as sv
from survey.cost import (
    HOME_OFFICE_2018,
    UNIT_COST_COLUMNS,
    CostError,
    cost_benefit,
    cost_benefit_from_did,
    cost_of_crime,
    load_unit_costs,
)

REF = Path(__file__).resolve().parent / "reference"
FIX = REF / "fixtures" / "cost"
COUNTS = {"burglary_dwelling": "n_burglary", "theft_from_vehicle": "n_theft_from_vehicle",
          "criminal_damage": "n_criminal_damage"}
UC = {"n_burglary": 5930.0, "n_theft_from_vehicle": 870.0, "n_criminal_damage": 1350.0}
REL = 1e-9


def _read(name, text):
    return pd.read_csv(FIX / name, keep_default_na=False, na_values=["NA"], dtype={c: str for c in text})


R_COST = _read("r_cost.csv", ["case"]).set_index("case")
R_TOT = _read("r_cost_totals.csv", ["case", "variable"])
R_V = _read("r_cost_vcov.csv", ["case", "row", "col"])


def design():
    df = pd.read_csv(REF / "data" / "cost_counts.csv")
    return sv.Design(df, strata="stratum", psu="psu", weights="w")


def r_vcov(case, names):
    v = R_V[R_V.case == case].pivot(index="row", columns="col", values="value")
    return v.loc[names, names].to_numpy(float)


def test_shipped_table():
    tab = load_unit_costs()
    assert list(tab.columns[:5]) == UNIT_COST_COLUMNS
    costs = tab.set_index("crime_type").unit_cost
    # the figures of Table 1 of the report as transcribed (2015/16 prices, GBP)
    assert costs.loc["burglary_dwelling"] == 5930 and costs.loc["theft_of_vehicle"] == 10290
    assert costs.loc["theft_from_vehicle"] == 870 and costs.loc["robbery"] == 11320
    assert costs.loc["violence_with_injury"] == 14050 and costs.loc["violence_without_injury"] == 5930
    assert costs.loc["criminal_damage"] == 1350
    assert set(tab.currency) == {"GBP"} and set(tab.price_year) == {"2015/16"}
    assert tab["checked"].str.contains("not yet checked").sum() == 2  # said in the data README
    assert "not yet checked" not in tab.set_index("crime_type").loc["robbery", "checked"]
    assert HOME_OFFICE_2018.name == "unit_costs_home_office_2018.csv"


def test_total_cost_and_se_match_r():
    out = cost_of_crime(design(), COUNTS)
    tot = out.set_index("crime_type")
    want = R_TOT[R_TOT.case == "all"].set_index("variable")
    for ct, col in COUNTS.items():
        # per crime type: cost = estimated crimes x unit cost
        assert np.isclose(tot.loc[ct, "crimes"], want.loc[col, "estimate"], rtol=REL)
        assert np.isclose(tot.loc[ct, "cost"], want.loc[col, "estimate"] * UC[col], rtol=REL)
        assert np.isclose(tot.loc[ct, "se"], want.loc[col, "se"] * UC[col], rtol=1e-8)
    # the total: R's svycontrast, and sqrt(c' V c) by hand from R's covariance of the totals
    names = list(COUNTS.values())
    c = np.array([UC[n] for n in names])
    v = r_vcov("all", names)
    assert np.isclose(tot.loc["total", "cost"], R_COST.loc["all", "estimate"], rtol=REL)
    assert np.isclose(tot.loc["total", "se"], R_COST.loc["all", "se"], rtol=1e-8)
    assert np.isclose(tot.loc["total", "se"], np.sqrt(c @ v @ c), rtol=1e-8)
    # ignoring the covariances would be wrong here (the counts share a household frailty)
    assert np.sqrt(np.sum((c * np.sqrt(np.diag(v))) ** 2)) < 0.9 * tot.loc["total", "se"]
    assert np.allclose(out.attrs["vcov_totals"], v, rtol=1e-8)
    q = stats.t.ppf(0.975, design().df)
    assert np.isclose(tot.loc["total", "ci_high"] - tot.loc["total", "cost"], q * tot.loc["total", "se"])
    assert (out.currency == "GBP").all() and (out.price_year == "2015/16").all()


def test_cost_by_domain_matches_r():
    out = cost_of_crime(design(), COUNTS, by="region").set_index(["region", "crime_type"])
    for reg in ("A", "B"):
        assert np.isclose(out.loc[(reg, "total"), "cost"], R_COST.loc[f"region_{reg}", "estimate"], rtol=REL)
        assert np.isclose(out.loc[(reg, "total"), "se"], R_COST.loc[f"region_{reg}", "se"], rtol=1e-8)


def test_user_table_and_refusals(tmp_path):
    p = tmp_path / "costs.csv"
    pd.DataFrame({"crime_type": ["burglary_dwelling", "theft_from_vehicle", "criminal_damage"],
                  "unit_cost": [100.0, 10.0, 1.0], "currency": "EUR", "price_year": "2024",
                  "source": "national office"}).to_csv(p, index=False)
    out = cost_of_crime(design(), COUNTS, unit_costs=p).set_index("crime_type")
    want = R_TOT[R_TOT.case == "all"].set_index("variable").estimate
    assert np.isclose(out.loc["total", "cost"], 100 * want["n_burglary"] + 10 * want["n_theft_from_vehicle"]
                      + want["n_criminal_damage"], rtol=REL)
    assert (out.currency == "EUR").all()
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"crime_type": ["a", "b"], "unit_cost": [1, -2], "currency": "EUR", "price_year": "2024",
                  "source": "x"}).to_csv(bad, index=False)
    with pytest.raises(CostError, match="negative in 1 of 2 rows"):
        load_unit_costs(bad)
    mixed = tmp_path / "mixed.csv"
    pd.DataFrame({"crime_type": ["a", "b"], "unit_cost": [1, 2], "currency": ["EUR", "GBP"], "price_year": "2024",
                  "source": "x"}).to_csv(mixed, index=False)
    with pytest.raises(CostError, match="one currency per table"):
        load_unit_costs(mixed)
    with pytest.raises(CostError, match="missing column"):
        load_unit_costs(pd.DataFrame({"crime_type": ["a"], "unit_cost": [1]}))
    with pytest.raises(CostError, match="'shoplifting'|shoplifting"):
        cost_of_crime(design(), {"shoplifting": "n_burglary"})


def test_cost_benefit_arithmetic():
    # 2,000 households treated for 2 years, 0.03 fewer burglaries per household-year (SE 0.01)
    cb = cost_benefit(-0.03, programme_cost=250_000, exposed=4_000, unit_cost=5930, se=0.01, df=40)
    r = cb.set_index("quantity")
    assert np.isclose(r.loc["crimes_averted", "estimate"], 120)
    assert np.isclose(r.loc["crimes_averted", "se"], 40)
    assert np.isclose(r.loc["benefit", "estimate"], 120 * 5930)
    assert np.isclose(r.loc["benefit", "se"], 40 * 5930)
    assert np.isclose(r.loc["net_benefit", "estimate"], 120 * 5930 - 250_000)
    assert np.isclose(r.loc["benefit_cost_ratio", "estimate"], 120 * 5930 / 250_000)
    assert np.isclose(r.loc["benefit_cost_ratio", "se"], 40 * 5930 / 250_000)
    q = stats.t.ppf(0.975, 40)
    assert np.isclose(r.loc["net_benefit", "ci_low"], 120 * 5930 - 250_000 - q * 40 * 5930)
    # two crime types with correlated effects: sqrt(g' V g)
    v = np.array([[0.01 ** 2, 0.3 * 0.01 * 0.02], [0.3 * 0.01 * 0.02, 0.02 ** 2]])
    cb2 = cost_benefit([-0.03, -0.05], 100_000, 1_000, [5930, 870], vcov=v).set_index("quantity")
    g = -1_000 * np.array([5930, 870])
    assert np.isclose(cb2.loc["benefit", "estimate"], 1_000 * (0.03 * 5930 + 0.05 * 870))
    assert np.isclose(cb2.loc["benefit", "se"], np.sqrt(g @ v @ g))
    with pytest.raises(CostError, match="programme_cost must be positive"):
        cost_benefit(-0.03, 0, 10, 5930, se=0.01)


def test_cost_benefit_from_did():
    from survey.evaluation import did, simulate_pooled_waves

    df = simulate_pooled_waves(seed=2)
    d = sv.Design(df, strata="stratum", psu="area", weights="weight")
    res = did(d, "incidents", "treated", "wave", start=3)
    e = res.effects.iloc[0]
    cb = cost_benefit_from_did(res, "burglary_dwelling", programme_cost=1e6, exposed=50_000).set_index("quantity")
    assert np.isclose(cb.loc["benefit", "estimate"], -e.effect * 50_000 * 5930)
    assert np.isclose(cb.loc["benefit", "se"], e.se * 50_000 * 5930)
    assert cb.loc["benefit", "df"] == e.df
    assert (cb.currency == "GBP").all()


def test_discounted_cost_benefit_by_hand():
    """Three years, 3.5%: costs 400k, 300k, 300k; 10,000, 12,000 and 12,000 households exposed;
    0.02 fewer burglaries per household and year (SE 0.008) -- every number by hand."""
    from survey.cost import GREEN_BOOK_RATE, discount_factors, discounted_cost_benefit

    assert GREEN_BOOK_RATE == 0.035
    d = np.array([1.0, 1 / 1.035, 1 / 1.035 ** 2])
    assert np.allclose(discount_factors(3), d, rtol=1e-15)
    cb = discounted_cost_benefit(-0.02, [400_000, 300_000, 300_000], [10_000, 12_000, 12_000], 5930, se=0.008,
                                 df=30).set_index("quantity")
    pvb = 0.02 * 5930 * (10_000 + 12_000 / 1.035 + 12_000 / 1.035 ** 2)  # = 118.6 x 33,189.94...
    pvc = 400_000 + 300_000 / 1.035 + 300_000 / 1.035 ** 2
    assert np.isclose(cb.loc["crimes_averted", "estimate"], 0.02 * 34_000)
    assert np.isclose(cb.loc["crimes_averted", "se"], 0.008 * 34_000)
    assert np.isclose(cb.loc["benefit", "estimate"], pvb, rtol=1e-12)
    assert np.isclose(cb.loc["benefit", "se"], pvb / 0.02 * 0.008, rtol=1e-12)
    assert np.isclose(cb.loc["programme_cost", "estimate"], pvc, rtol=1e-12)
    assert cb.loc["programme_cost", "se"] == 0
    assert np.isclose(cb.loc["net_benefit", "estimate"], pvb - pvc, rtol=1e-12)
    assert np.isclose(cb.loc["benefit_cost_ratio", "estimate"], pvb / pvc, rtol=1e-12)
    assert np.isclose(cb.loc["benefit_cost_ratio", "se"], pvb / 0.02 * 0.008 / pvc, rtol=1e-12)
    q = stats.t.ppf(0.975, 30)
    assert np.isclose(cb.loc["net_benefit", "ci_high"], pvb - pvc + q * pvb / 0.02 * 0.008, rtol=1e-12)
    # one effect per year (an event study) with their covariance: SE = sqrt(g'Vg), g_t = -d_t N_t c
    eff = np.array([-0.01, -0.02, -0.03])
    v = np.array([[4e-5, 1e-5, 0], [1e-5, 5e-5, 2e-5], [0, 2e-5, 9e-5]])
    cb2 = discounted_cost_benefit(eff, [400_000, 300_000, 300_000], [10_000, 12_000, 12_000], 5930, vcov=v,
                                  rate=0.05).set_index("quantity")
    g = -5930 * np.array([10_000, 12_000 / 1.05, 12_000 / 1.05 ** 2])
    assert np.isclose(cb2.loc["benefit", "estimate"], g @ eff, rtol=1e-12)
    assert np.isclose(cb2.loc["benefit", "se"], np.sqrt(g @ v @ g), rtol=1e-12)
    # no discounting over one year: the one-year cost_benefit
    one = discounted_cost_benefit(-0.03, 250_000, 4_000, 5930, se=0.01, df=40, rate=0.0).set_index("quantity")
    ref = cost_benefit(-0.03, 250_000, 4_000, 5930, se=0.01, df=40).set_index("quantity")
    for qn in ("crimes_averted", "benefit", "net_benefit", "benefit_cost_ratio"):
        assert np.isclose(one.loc[qn, "estimate"], ref.loc[qn, "estimate"])
        assert np.isclose(one.loc[qn, "se"], ref.loc[qn, "se"])
    with pytest.raises(CostError, match="rate must be a number in"):
        discounted_cost_benefit(-0.03, 1, 1, 1, se=0.1, rate=-0.01)
    with pytest.raises(CostError, match="programme_cost has 2 years and exposed 3"):
        discounted_cost_benefit(-0.03, [1, 1], [1, 1, 1], 1, se=0.1)
