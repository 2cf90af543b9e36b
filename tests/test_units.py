"""Units and reference periods, and item nonresponse, checked against independent references.

- NCVS 2021: household property victimization over the collection year (the household's
  interviews combined, ``files.household.combine`` in specs/ncvs-2021.yaml) equals R survey on a
  file aggregated independently in R from the raw extracts (tests/reference/make_ncvs_annual.R)
  and a plain pandas computation written here.
- "Don't know" / "refused" answers leave the item's base, whether the reader kept the codes
  (CSV) or turned SPSS user-missing codes into NaN (.sav): against R survey
  (tests/reference/make_user_missing.R).
- Combining rows into units: every weight rule by hand on a generated file with several
  interviews per household, and the errors a user meets.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from survey.indicators import indicator_table
from survey.ingest import IngestError, load
from survey.spec import SpecError, read_spec

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "tests" / "reference"
SCALE = {"prevalence": 100, "incidence": 1000, "repeat_victims": 100, "repeat_incidents": 100,
         "reporting_rate": 100, "reporting_rate_victims": 100}


@pytest.fixture(scope="module")
def ncvs():
    return load(ROOT / "specs" / "ncvs-2021.yaml")


@pytest.fixture(scope="module")
def ncvs_table(ncvs):
    return indicator_table(ncvs, crime_types=["property"], domains=["tenure"])


def test_ncvs_collection_year_equals_r(ncvs_table):
    r = pd.read_csv(REF / "fixtures" / "ncvs_annual_r.csv")
    t = ncvs_table.set_index(["indicator", "domain", "domain_value"])
    assert len(r) == 17
    for row in r.itertuples():
        got = t.loc[(row.indicator, row.domain, row.domain_value)]
        s = SCALE.get(row.indicator, 1)
        assert got.estimate == pytest.approx(row.estimate * s, rel=1e-9), row
        assert got.se == pytest.approx(row.se * s, rel=1e-6), row
    assert r.households.iloc[0] == pytest.approx(129_319_231.5014, rel=1e-12)


def test_ncvs_published_counts_are_rows(ncvs_table):
    t = ncvs_table.set_index(["indicator", "domain", "domain_value"])
    v = t.loc[("victimizations", "overall", "all")]
    assert round(v.estimate) == 11_682_056 and round(v.se) == 263_844
    assert v.measure == "count" and v.unit == "household"
    assert t.loc[("incidence", "overall", "all")].estimate == pytest.approx(90.335, abs=5e-4)
    c = t.loc[("concentration", "overall", "all")]
    assert (c.numerator, c.denominator) == ("victimizations", "victim households")
    r = t.loc[("reporting_rate", "overall", "all")]
    assert (r.numerator, r.denominator) == ("victimizations reported to the police", "victimizations")
    # the period of the rates is the collection year the interviews were combined into
    assert set(ncvs_table["period"]) == {"2021 collection year"}


def test_ncvs_collection_year_by_hand(ncvs):
    """Plain pandas from the raw files: victim households over the year, victimizations per
    victim household, repeat victims (independent of the engine and of R)."""
    hh, _ = pyreadstat.read_sav(str(ROOT / "data/ncvs2021/ncvs_2021_household.zsav"),
                                usecols=["YEARQ", "IDHH", "WGTHHCY"])
    inc, _ = pyreadstat.read_sav(str(ROOT / "data/ncvs2021/ncvs_2021_incident.zsav"),
                                 usecols=["IDHH", "WGTVICCY", "V4016", "V4017", "V4018", "V4019", "V4022", "V4529"])
    inc = inc[(inc.V4022 != 1) & inc.V4529.isin([31, 32, 33, 40, 41, 54, 55, 56, 57, 58, 59])]
    series = (inc.V4017 == 2) & ~inc.V4018.isin([2, 8]) & ~inc.V4019.isin([1, 8])
    count = np.where(series, np.where(inc.V4016.isin([997, 998]), 6, np.minimum(inc.V4016, 10)), 1)
    per = pd.DataFrame({"IDHH": inc.IDHH, "k": count, "nw": count * inc.WGTVICCY}).groupby("IDHH").sum()
    W = hh[hh.WGTHHCY > 0].groupby("IDHH").WGTHHCY.sum()
    k = per.k.reindex(W.index, fill_value=0)
    nw = per.nw.reindex(W.index, fill_value=0)
    prevalence = W[k > 0].sum() / W.sum()
    concentration = nw.sum() / W[k > 0].sum()
    repeat = W[k >= 2].sum() / W[k > 0].sum()
    t = indicator_table(ncvs, crime_types=["property"], domains=[]).set_index("indicator")
    assert t.loc["prevalence", "estimate"] == pytest.approx(100 * prevalence, rel=1e-10)
    assert t.loc["concentration", "estimate"] == pytest.approx(concentration, rel=1e-10)
    assert t.loc["repeat_victims", "estimate"] == pytest.approx(100 * repeat, rel=1e-10)
    assert t.loc["victims", "estimate"] == pytest.approx(W[k > 0].sum(), rel=1e-10)
    assert t.loc["prevalence", "n"] == len(W) == 98_258
    # one interview's share would be a different (smaller) number: it is not what is published
    assert t.loc["prevalence", "estimate"] > 6.0


def test_ncvs_bases_describe_victimizations(ncvs_table):
    t = ncvs_table[ncvs_table.domain == "overall"].set_index("indicator")
    inc = load(ROOT / "specs" / "ncvs-2021.yaml").incidents
    sample_victimizations = int(inc.series_count.sum())
    for fam in ("reporting_rate", "dark_figure", "repeat_incidents"):
        assert t.loc[fam, "n"] == sample_victimizations
        assert t.loc[fam, "weighted_base"] == pytest.approx(t.loc["victimizations", "estimate"], rel=1e-12)
    reported = int(inc.series_count[inc.reported == 1].sum())
    assert t.loc["reporting_rate", "n_cases"] == reported
    assert t.loc["dark_figure", "n_cases"] == sample_victimizations - reported
    assert t.loc["victimizations", "n_cases"] == sample_victimizations


# ---------------------------------------------------------------------------------------------
# item nonresponse ("don't know", "refused") against R
# ---------------------------------------------------------------------------------------------
UM_SPEC = """
schema_version: 1
survey: um
period: "2026"
files:
  resp: {{path: {path}, unit: household, keys: [respid]}}
design: {{file: resp, weights: wt, strata: stratum, psu: psu, nest: true}}
victimization:
  source: respondent
  types:
    - {{name: burglary_5y, unit: household, period: 5 years,
        victim: {{variable: burg5, yes: [1]{m5}}}}}
    - {{name: burglary, unit: household,
        victim: {{variable: burg12, yes: [1], skip: {{variable: burg5, codes: [2]}}{m12}}}}}
perception:
  - {{name: safe, variable: safe, indicator: feeling_safe, positive: [1, 2]{ms}}}
domains:
  region: {{variable: region, labels: {{1: A, 2: B, 3: C, 4: D}}}}
"""


@pytest.fixture(scope="module", params=["sav", "csv"])
def user_missing(request, tmp_path_factory):
    df = pd.read_csv(REF / "data" / "user_missing.csv")
    d = tmp_path_factory.mktemp(f"um_{request.param}")
    if request.param == "sav":  # codes declared user-missing in the file; the spec lists none
        pyreadstat.write_sav(df, str(d / "um.sav"), missing_ranges={
            c: [{"lo": 7, "hi": 9}] for c in ("burg5", "burg12", "safe")})
        text = UM_SPEC.format(path="um.sav", m5="", m12="", ms="")
    else:  # a CSV keeps the codes: the spec declares them
        df.to_csv(d / "um.csv", index=False)
        text = UM_SPEC.format(path="um.csv", m5=", missing: [7, 8, 9]", m12=", missing: [8]",
                              ms=", missing: [7, 8, 9]")
    (d / "um.yaml").write_text(text)
    return load(d / "um.yaml")


def test_dont_know_leaves_the_base_as_in_r(user_missing):
    r = pd.read_csv(REF / "fixtures" / "r_user_missing.csv", dtype={"value": str})
    t = indicator_table(user_missing, indicators=["prevalence", "feeling_safe"], publication="none")
    t = t.set_index(["crime_type", "domain", "domain_value"])
    names = {"v5": "burglary_5y", "v12": "burglary", "safe01": "safe"}
    labels = {"all": "all", "1": "A", "2": "B", "3": "C", "4": "D"}
    for row in r.itertuples():
        got = t.loc[(names[row.variable], row.domain, labels[row.value])]
        assert got.estimate == pytest.approx(100 * row.estimate, rel=1e-9), row
        assert got.se == pytest.approx(100 * row.se, rel=1e-6), row
        assert got.n == row.n, row


def test_dont_know_is_counted_not_not_asked(user_missing):
    acc = user_missing.accounting
    raw = pd.read_csv(REF / "data" / "user_missing.csv")
    skip = acc[(acc.step == "skip pattern") & acc.detail.str.startswith("burg12")]
    assert skip.rows.sum() == int((raw.burg5 == 2).sum())
    nonresp = acc[(acc.step == "item nonresponse") & acc.detail.str.startswith("burg5")]
    assert nonresp.rows.sum() == int(raw.burg5.isin([7, 8, 9]).sum())
    # 12-month item: unknown where it was "don't know" or where the 5-year screener was unknown
    unknown12 = raw.burg12.eq(8) | raw.burg5.isin([7, 8, 9])
    assert int(user_missing.respondents["victim__burglary"].isna().sum()) == int(unknown12.sum())


def test_blank_without_skip_rule_is_missing(tmp_path):
    df = pd.DataFrame({"id": range(6), "w": 1.0, "scr": [1, 2, np.nan, 1, 2, np.nan]})
    df.to_csv(tmp_path / "f.csv", index=False)
    base = ("schema_version: 1\nsurvey: b\nfiles:\n  r: {path: f.csv, unit: person, keys: [id]}\n"
            "design: {file: r, weights: w}\nvictimization:\n  source: respondent\n  types:\n"
            "    - {name: x, unit: person, victim: {variable: scr%s}}\n")
    (tmp_path / "a.yaml").write_text(base % "")
    (tmp_path / "b.yaml").write_text(base % ", blank: 'no'")
    a, b = load(tmp_path / "a.yaml"), load(tmp_path / "b.yaml")
    assert a.respondents["victim__x"].isna().sum() == 2  # out of the base
    assert b.respondents["victim__x"].tolist() == [1, 0, 0, 1, 0, 0]
    assert "blank with no declared skip pattern" in " ".join(a.accounting.detail)
    # no strata, no PSU: the table says its SEs assume simple random sampling
    from survey.indicators import SRS_NOTE

    assert indicator_table(b, publication="none").attrs["notes"][0] == SRS_NOTE
    assert SRS_NOTE not in indicator_table(load(ROOT / "specs" / "ncvs-2021.yaml"), crime_types=["burglary"],
                                           domains=[], indicators=["prevalence"]).attrs["notes"]


# ---------------------------------------------------------------------------------------------
# combining several interviews of a unit in the reference period
# ---------------------------------------------------------------------------------------------
def _interviews(tmp_path, rule, order="[wave]", change_psu=False):
    rng = np.random.default_rng(7)
    H = 400
    hh = pd.DataFrame({"hid": np.arange(H), "stratum": np.repeat(np.arange(20), 20),
                       "psu": np.tile(np.repeat([1, 2], 10), 20)})
    waves = []
    for wave in (1, 2):
        part = hh.sample(frac=0.8, random_state=wave).copy()
        part["wave"] = wave
        waves.append(part)
    rows = pd.concat(waves, ignore_index=True).sample(frac=1, random_state=3).reset_index(drop=True)
    rows["rowid"] = np.arange(len(rows))
    rows["w"] = rng.uniform(100, 300, len(rows)).round(3)
    rows.loc[rng.uniform(size=len(rows)) < 0.1, "w"] = 0.0  # non-interviews
    rows["n"] = rng.poisson(0.3, len(rows))
    rows["owner"] = rng.integers(1, 3, len(rows))
    rows["safe"] = rng.integers(1, 5, len(rows))
    if change_psu:
        rows.loc[0, "psu"] = 3 - rows.loc[0, "psu"]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    (tmp_path / "s.yaml").write_text(f"""
schema_version: 1
survey: panel
period: year
files:
  hh:
    path: rows.csv
    unit: household
    keys: [rowid]
    respondents: "w > 0"
    combine: {{key: [hid], weights: {rule}, order: {order}, period: the year}}
design: {{file: hh, weights: w, strata: stratum, psu: psu, nest: true}}
victimization:
  source: respondent
  types: [{{name: theft, unit: household, count: {{variable: n}}}}]
perception:
  - {{name: safe, variable: safe, indicator: feeling_safe, positive: [1, 2]}}
domains:
  owner: {{variable: owner, labels: {{1: Owner, 2: Renter}}}}
""")
    return rows


@pytest.mark.parametrize("rule", ["sum", "mean", "first", "last"])
def test_combine_rules_by_hand(tmp_path, rule):
    rows = _interviews(tmp_path, rule)
    data = load(tmp_path / "s.yaml")
    r = rows[rows.w > 0].sort_values(["hid", "wave"])
    g = r.groupby("hid")
    W = {"sum": g.w.sum(), "mean": g.w.mean(), "first": g.w.first(), "last": g.w.last()}[rule]
    nw = (r.n * r.w).groupby(r.hid).sum()  # weighted victimizations
    k = g.n.sum()
    safe = g.safe.last().isin([1, 2]).astype(float)
    owner = g.owner.last()
    t = indicator_table(data, indicators=["prevalence", "incidence", "concentration", "repeat_victims",
                                          "victimizations", "feeling_safe"], publication="none")
    t = t.set_index(["indicator", "domain", "domain_value"])
    assert t.loc[("prevalence", "overall", "all")].estimate == pytest.approx(100 * W[k > 0].sum() / W.sum())
    assert t.loc[("victimizations", "overall", "all")].estimate == pytest.approx(nw.sum())
    assert t.loc[("incidence", "overall", "all")].estimate == pytest.approx(1000 * nw.sum() / W.sum())
    assert t.loc[("concentration", "overall", "all")].estimate == pytest.approx(nw.sum() / W[k > 0].sum())
    assert t.loc[("repeat_victims", "overall", "all")].estimate == pytest.approx(100 * W[k >= 2].sum() / W[k > 0].sum())
    assert t.loc[("feeling_safe", "overall", "all")].estimate == pytest.approx(100 * (W * safe).sum() / W.sum())
    own = owner == 1
    assert t.loc[("prevalence", "owner", "Owner")].estimate == pytest.approx(
        100 * W[own & (k > 0)].sum() / W[own].sum())
    assert t.loc[("prevalence", "overall", "all")].n == len(W)
    assert set(t["period"]) == {"the year"}
    acc = data.accounting.set_index("step")
    assert acc.loc["combine", "rows"] == rows.hid.nunique()
    # the row-level survey is still there (per-interview figures)
    assert len(data.row_data().respondents) == len(rows)


def test_combine_errors(tmp_path):
    _interviews(tmp_path, "sum", change_psu=True)
    with pytest.raises(IngestError, match=r"rows.csv: 'psu' differs between the rows of 1 units"):
        load(tmp_path / "s.yaml")
    _interviews(tmp_path, "sum", order="[nope]")
    with pytest.raises(Exception, match="nope"):
        load(tmp_path / "s.yaml")
    text = (tmp_path / "s.yaml").read_text().replace("weights: sum", "weights: average")
    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(SpecError, match="combine.weights"):
        read_spec(tmp_path / "s.yaml")


def test_combine_screener_type_stays_prevalence_only(tmp_path):
    """A screener-only type (victim or not, no count) in a combined file where some units have no
    respondent row: the units' counts are unknown, not 0, so the type keeps prevalence only (no
    incidence or count rows), as on the row-level file."""
    rows = _interviews(tmp_path, "sum")
    rng = np.random.default_rng(5)
    rows["scr"] = rng.integers(1, 3, len(rows))
    rows.to_csv(tmp_path / "rows.csv", index=False)
    text = (tmp_path / "s.yaml").read_text().replace(
        "types: [{name: theft, unit: household, count: {variable: n}}]",
        "types: [{name: theft, unit: household, count: {variable: n}},\n"
        "          {name: scr, unit: household, victim: {variable: scr, yes: [1]}}]")
    (tmp_path / "s.yaml").write_text(text)
    data = load(tmp_path / "s.yaml")
    no_resp = ~data.respondents["_respondent"].to_numpy()
    assert no_resp.sum() > 0  # the case: units whose every row is a non-interview
    assert data.respondents["n__scr"].isna().all()
    assert data.respondents.loc[no_resp, "n__theft"].isna().all()
    t = indicator_table(data, crime_types=["scr"], publication="none")
    assert set(t.indicator) & {"incidence", "victimizations", "concentration"} == set()
    r = rows[rows.w > 0]
    g = r.groupby("hid")
    W, vic = g.w.sum(), g.scr.apply(lambda x: (x == 1).any())
    prev = t.set_index(["indicator", "domain"]).loc[("prevalence", "overall"), "estimate"]
    assert prev == pytest.approx(100 * W[vic].sum() / W.sum(), rel=1e-12)


def test_stata_extended_missing_codes(tmp_path):
    """A Stata file whose "don't know" is an extended missing value (.a) and "refused" .b: out of
    the base, the numeric answers still compared as codes (1 yes, 2 no)."""
    df = pd.DataFrame({"id": [1.0, 2, 3, 4, 5, 6], "w": [1.0, 2, 1, 1, 3, 1],
                       "scr": pd.Series([1, 2, "a", "b", 1, 2], dtype=object),
                       "safe": pd.Series([1, 3, 4, "a", 2, 1], dtype=object)})
    pyreadstat.write_dta(df, str(tmp_path / "f.dta"), missing_user_values={"scr": ["a", "b"], "safe": ["a"]})
    (tmp_path / "s.yaml").write_text(
        "schema_version: 1\nsurvey: st\nfiles:\n  r: {path: f.dta, unit: person, keys: [id]}\n"
        "design: {file: r, weights: w}\nvictimization:\n  source: respondent\n  types:\n"
        "    - {name: x, unit: person, victim: {variable: scr, yes: [1]}}\n"
        "perception:\n  - {name: safe, variable: safe, indicator: feeling_safe, positive: [1, 2]}\n")
    data = load(tmp_path / "s.yaml")
    np.testing.assert_array_equal(data.respondents["victim__x"], [1, 0, np.nan, np.nan, 1, 0])
    np.testing.assert_array_equal(data.respondents["perc__safe"], [1, 0, 0, np.nan, 1, 1])
    t = indicator_table(data, publication="none").set_index(["indicator", "domain"])
    assert t.loc[("prevalence", "overall"), "estimate"] == pytest.approx(100 * (1 + 3) / (1 + 2 + 3 + 1))
    acc = data.accounting
    assert acc[(acc.step == "item nonresponse")].rows.sum() == 2


def test_multiple_victimization_from_screeners_only():
    """Groups of prevalence-only types (5-year screeners, no count) still give multiple
    victimization: victims of two or more of the group's types among its victims, by hand."""
    data = load(ROOT / "specs" / "synthetic-screener.yaml")
    t = indicator_table(data, indicators=["multiple_victimization"], domains=[], publication="none")
    t = t.set_index("crime_type")
    r = data.respondents
    dunit = data.spec.files[data.spec.design.file].unit
    for g in ("household_5y", "personal_5y"):
        members = data.spec.victimization.groups[g]
        vic = r[[f"victim__{m}" for m in members]]
        known = vic.notna().all(axis=1)
        victim = known & (vic.sum(axis=1) > 0)
        w = r[data.spec.design.weight_for(data.unit_of(g), dunit)]
        want = 100 * w[victim & (vic.sum(axis=1) >= 2)].sum() / w[victim].sum()
        assert t.loc[g, "estimate"] == pytest.approx(want, rel=1e-12)
        assert t.loc[g, "n"] == int(victim.sum())
