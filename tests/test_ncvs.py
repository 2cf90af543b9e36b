"""The NCVS 2021 extract through specs/ncvs-2021.yaml reproduces the published figures
(Zimmer, Powell, Velasquez, *Exploring Complex Survey Data Analysis Using R*, ch. 13;
docs/methods.md#reference-figures) to the printed precision, through the generic spec machinery only."""

from pathlib import Path

import numpy as np
import pytest

from survey.ingest import load

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ncvs():
    return load(ROOT / "specs" / "ncvs-2021.yaml")


def test_row_accounting(ncvs):
    acc = ncvs.accounting.set_index("step")["rows"]
    assert acc["read"].tolist() == [256460, 8982]
    assert acc["respondents"] == 150138  # 106,322 non-interviews kept for design information
    assert acc["exclude: outside_us"] == 34
    assert acc["ignore codes"] == 1813  # person-level crimes: no person file in this extract
    # every incident is accounted for exactly once
    assert 8982 == acc["exclude: outside_us"] + acc["ignore codes"] + acc["incidents counted"]
    assert len(ncvs.incidents) == acc["incidents counted"]


def test_property_victimizations_published(ncvs):
    d = ncvs.design("household")
    tot = d.total("n__property").iloc[0]
    assert round(tot.estimate) == 11_682_056
    assert round(tot.se) == 263_844


def test_property_rate_and_households_published(ncvs):
    d = ncvs.design("household")
    rate = d.mean("n__property").iloc[0]
    assert round(rate.estimate * 1000, 1) == 90.3
    assert round(rate.se * 1000, 2) == 1.95
    assert round(rate.weighted_n) == 129_319_232
    # the published rates by tenure class each interview by its tenure at that interview: the
    # row-level (household-quarter) design; the collection-year household takes its latest tenure
    by = ncvs.row_data().design("household").mean("n__property", by="tenure").set_index("tenure")
    assert round(by.loc["Owned", "estimate"] * 1000, 1) == 68.2
    assert round(by.loc["Rented", "estimate"] * 1000, 1) == 129.8


def test_reported_to_police_published(ncvs):
    d = ncvs.design("household")
    r = d.ratio("rep__property", "n__property").iloc[0]
    assert round(r.estimate * 100, 1) == 30.8
    assert round(r.se * 100, 3) == 0.798


def test_series_rule_and_adjustment(ncvs):
    inc = ncvs.incidents
    assert int((inc.series_count > 1).sum()) == 47
    assert inc.series_count.max() == 10
    # n__ is the series-weighted incident weight over the household weight (BJS ADJINC_WT)
    resp = ncvs.respondents
    total_direct = float((inc.WGTVICCY * inc.series_count)[inc.crime_type.isin(["burglary", "motor_vehicle_theft", "theft"])].sum())
    total_resp = float((resp.n__property * resp.WGTHHCY).sum())
    assert np.isclose(total_direct, total_resp, rtol=1e-12)
