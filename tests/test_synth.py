"""The synthetic survey generator (survey.synth): determinism, files and labels, links, weights,
truth consistency, and design-based estimates that cover the known population truth."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest
import yaml

import survey as sv
from survey import synth as S
from survey.errors import SurveyError

SPEC = Path(__file__).resolve().parents[1] / "specs" / "synthetic.yaml"
POP_HH, SAMPLE_HH, SEED = 40_000, 2_000, 7


@pytest.fixture(scope="module")
def pop() -> S.Population:
    return S.make_population(SEED, POP_HH)


@pytest.fixture(scope="module")
def sample(pop) -> S.Sample:
    return S.draw_sample(pop, SAMPLE_HH, SEED)


@pytest.fixture(scope="module")
def truth(pop) -> pd.DataFrame:
    return S.truth_table(pop)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data" / "synthetic"
    return S.synth(out, households=800, seed=3, population_households=16_000)


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _in_period_counts(sample: S.Sample, crimes) -> np.ndarray:
    """Victimizations of the crime types in the reference period, per respondent row."""
    codes = [c for t in S.CRIME_TYPES if t.name in crimes for c, _, _, _ in t.codes]
    inc = sample.incidents
    inc = inc[inc["month"].between(1, 12) & inc["crimecode"].isin(codes)]
    k = inc.groupby(["hhid", "pid"]).size()
    key = pd.MultiIndex.from_arrays([sample.persons["hhid"], sample.persons["pid"].astype(np.int64)])
    return k.reindex(key).fillna(0).to_numpy()


def _truth(truth, indicator, crime, domain="overall", value="all") -> float:
    row = truth[(truth["indicator"] == indicator) & (truth["crime_type"] == crime) & (truth["domain"] == domain)
                & (truth["domain_value"] == value)]
    assert len(row) == 1, (indicator, crime, domain, value)
    return float(row["value"].iloc[0])


# ---------------------------------------------------------------------------------------------
# determinism and files
# ---------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_files(written, tmp_path):
    again = S.synth(tmp_path / "again", households=800, seed=3, population_households=16_000)
    assert _digest(written) == _digest(again)
    assert set(_digest(written)) == {"households.sav", "persons.sav", "incidents.sav", "truth.csv", "truth.json"}
    other = S.synth(tmp_path / "other", households=800, seed=4, population_households=16_000)
    assert _digest(other)["truth.csv"] != _digest(written)["truth.csv"]
    assert _digest(other)["persons.sav"] != _digest(written)["persons.sav"]


def test_population_and_sample_are_deterministic(pop, sample):
    pop2 = S.make_population(SEED, POP_HH)
    pd.testing.assert_frame_equal(pop.incidents, pop2.incidents)
    pd.testing.assert_frame_equal(pop.persons, pop2.persons)
    s2 = S.draw_sample(pop2, SAMPLE_HH, SEED)
    for a, b in ((sample.households, s2.households), (sample.persons, s2.persons), (sample.incidents, s2.incidents)):
        pd.testing.assert_frame_equal(a, b)
    s3 = S.draw_sample(pop2, SAMPLE_HH, SEED + 1)
    assert not s3.households["hhid"].equals(sample.households["hhid"])


def test_files_have_variable_and_value_labels(written):
    coded = {"households": ["stratum", "region", "urban", "depriv_q", "tenure", "resp", "cars"],
             "persons": ["stratum", "region", "urban", "depriv_q", "tenure", "cars", "sex", "prevvict", "safedark",
                         "worryburg", "worryviol"],
             "incidents": ["crimecode", "month", "police"]}
    for name, cols in coded.items():
        df, meta = pyreadstat.read_sav(str(written / f"{name}.sav"))
        assert len(df) > 0
        labels = meta.column_names_to_labels
        assert all(labels[c] for c in df.columns), name
        for c in cols:
            vl = meta.variable_value_labels[c]
            values = set(df[c].dropna().unique())
            assert values <= set(vl), (name, c, values - set(vl))
    _, meta = pyreadstat.read_sav(str(written / "persons.sav"))
    vl = meta.variable_value_labels
    assert vl["sex"] == {1: "Male", 2: "Female"}
    assert vl["safedark"] == {1: "Very safe", 2: "Fairly safe", 3: "A bit unsafe", 4: "Very unsafe",
                              8: "Don't know", 9: "Refused"}
    assert vl["tenure"] == {1: "Owner", 2: "Social renter", 3: "Private renter"}
    assert vl["region"][6] == "Capital"
    _, meta = pyreadstat.read_sav(str(written / "incidents.sav"))
    assert meta.variable_value_labels["police"] == {1: "Yes", 2: "No", 8: "Don't know", 9: "Refused"}
    assert meta.variable_value_labels["crimecode"][11] == "Burglary with entry"


def test_missing_ish_codes_and_outside_period_incidents_are_present(pop, sample):
    p = pop.persons
    for item in ("safedark", "worryburg", "worryviol"):
        assert set(np.unique(p[item])) == {1, 2, 3, 4, 8, 9}
    months = set(np.unique(pop.incidents["month"]))
    assert months == set(range(14))
    assert (pop.incidents["crimecode"] == S.UNCODEABLE).any()
    assert set(np.unique(pop.incidents["police"])) == {1, 2, 8, 9}
    assert not pop.incidents.loc[pop.incidents["month"].isin([0, 13]), "in_period"].any()
    assert not pop.incidents.loc[pop.incidents["crimecode"] == S.UNCODEABLE, "in_period"].any()
    assert sample.incidents["month"].isin([0, 13]).any()


# ---------------------------------------------------------------------------------------------
# links and weights
# ---------------------------------------------------------------------------------------------
def test_every_incident_links_to_a_sampled_respondent(pop, sample):
    hh, per, inc = sample.households, sample.persons, sample.incidents
    assert hh["hhid"].is_unique and per["hhid"].is_unique and inc["incid"].is_unique
    resp = hh.loc[hh["resp"] == 1, "hhid"]
    assert set(per["hhid"]) == set(resp)
    keys = set(zip(per["hhid"], per["pid"]))
    assert all(k in keys for k in zip(inc["hhid"], inc["pid"]))
    # the sample holds every incident of the respondents (personal) and their households
    pi = pop.incidents
    mine = pi[((pi["unit"] == "household") & pi["hhid"].isin(resp))
              | ((pi["unit"] == "person") & pd.MultiIndex.from_arrays([pi["hhid"], pi["pid"]]).isin(list(keys)))]
    assert len(mine) == len(inc)
    assert sorted(mine["crimecode"]) == sorted(inc["crimecode"])
    # the respondent is one of the household's adults, and the persons match the population
    p_first = np.concatenate([[0], np.cumsum(pop.households["nadults"].to_numpy())[:-1]])
    rows = pop.persons.iloc[p_first[per["hhid"].to_numpy() - 1] + per["pid"].to_numpy() - 1]
    assert (rows["hhid"].to_numpy() == per["hhid"].to_numpy()).all()
    assert (rows["age"].to_numpy() == per["age"].to_numpy()).all()
    assert (per["pid"] <= per["nadults"]).all()


def test_weights_sum_to_the_population(pop, sample):
    hh, per = sample.households, sample.persons
    n_hh = len(pop.households)
    # self-weighting PPS: design weights sum exactly to the households of every stratum
    assert hh["wt_design"].sum() == pytest.approx(n_hh, rel=1e-9)
    by_stratum = hh.groupby("stratum")["wt_design"].sum()
    pop_stratum = pop.households.groupby("stratum").size()
    np.testing.assert_allclose(by_stratum.to_numpy(), pop_stratum.loc[by_stratum.index].to_numpy(), rtol=1e-9)
    # the non-response adjustment keeps each class's issued weight on its respondents
    assert hh["wt_household"].sum() == pytest.approx(n_hh, rel=1e-9)
    assert (hh.loc[hh["resp"] == 2, "wt_household"] == 0).all()
    assert (hh.loc[hh["resp"] == 1, "wt_household"] > hh.loc[hh["resp"] == 1, "wt_design"]).all()
    cls = hh.groupby("nr_class").agg(issued=("wt_design", "sum"), adjusted=("wt_household", "sum"))
    np.testing.assert_allclose(cls["issued"], cls["adjusted"], rtol=1e-9)
    np.testing.assert_allclose(per["wt_person"], per["wt_household"] * per["nadults"])
    assert per["wt_person"].sum() == pytest.approx(len(pop.persons), rel=0.05)
    assert 0.55 < sample.info["response_rate"] < 0.85
    assert sample.info["households_issued"] == len(hh) == SAMPLE_HH


def test_design_weights_are_inverse_inclusion_probabilities(pop, sample):
    hh = sample.households
    m = sample.info["households_per_psu"]
    pi = {}
    for h, areas in pop.areas.groupby("stratum"):
        n = sample.info["psus_per_stratum"][int(h)]
        size = areas.set_index("psu")["households"].astype(float)
        cert = pd.Series(False, index=size.index)
        while True:  # PPS with certainty units set aside
            p = (n - cert.sum()) * size / size[~cert].sum()
            new = ~cert & (p >= 1)
            if not new.any():
                break
            cert |= new
        pi.update(p.where(~cert, 1.0).to_dict())
    size = pop.areas.set_index("psu")["households"]
    psu = hh["psu"]
    expected = 1.0 / (psu.map(pi) * m / psu.map(size))
    np.testing.assert_allclose(hh["wt_design"].to_numpy(), expected.to_numpy(), rtol=1e-12)
    assert sample.info["certainty_psus"] == int((psu.drop_duplicates().map(pi) >= 1).sum())
    assert (hh.groupby("psu").size() == m).all()
    assert hh.groupby("stratum")["psu"].nunique().min() >= 2


# ---------------------------------------------------------------------------------------------
# truth
# ---------------------------------------------------------------------------------------------
def test_truth_table_is_self_consistent(pop, truth):
    assert list(truth.columns) == S.TRUTH_COLUMNS
    key = ["crime_type", "unit", "domain", "domain_value"]
    wide = truth[truth["indicator"].isin(["prevalence", "incidence", "concentration"])].pivot_table(
        index=key, columns="indicator", values="value", aggfunc="first")
    ok = wide["prevalence"] > 0
    np.testing.assert_allclose(wide.loc[ok, "incidence"], 10 * wide.loc[ok, "prevalence"] * wide.loc[ok, "concentration"],
                               rtol=1e-12)
    assert (wide.loc[~ok, "incidence"] == 0).all() and wide.loc[~ok, "concentration"].isna().all()
    scale = {"incidence": 1000.0, "concentration": 1.0}
    v = truth.dropna(subset=["value"])
    np.testing.assert_allclose(v["value"], v["indicator"].map(scale).fillna(100.0) * v["numerator"] / v["denominator"],
                               rtol=1e-12)
    # domain levels add up to the overall population
    prev = truth[(truth["indicator"] == "prevalence") & (truth["crime_type"] == "burglary")]
    for dom, part in prev.groupby("domain"):
        assert part["denominator"].sum() == len(pop.households), dom
        assert part["numerator"].sum() == (pop.counts["burglary"] > 0).sum(), dom
    adults = truth[(truth["indicator"] == "prevalence") & (truth["crime_type"] == "violent")
                   & (truth["domain"] == "age_band")]
    assert list(adults["domain_value"]) == list(S.AGE_BAND_LABELS)
    assert adults["denominator"].sum() == len(pop.persons)
    # the truth counts only incidents of a crime type inside the reference period
    inc = pop.incidents
    n_in = int(inc["in_period"].sum())
    total = sum(_truth(truth, "incidence", g) / 1000 * (len(pop.households) if g == "household" else len(pop.persons))
                for g in ("household", "personal"))
    assert round(total) == n_in < len(inc)
    assert n_in == sum(int(c.sum()) for c in pop.counts.values())
    dark = truth[truth["indicator"] == "dark_figure"].dropna(subset=["value"])
    rate = truth[truth["indicator"] == "reporting_rate"].dropna(subset=["value"])
    np.testing.assert_allclose(dark["value"].to_numpy(), 100 - rate["value"].to_numpy(), atol=1e-9)


def test_truth_is_plausible(truth):
    prev = {t: _truth(truth, "prevalence", t) for t in ("burglary", "assault", "household", "personal", "violent")}
    assert 1 <= prev["burglary"] <= 3
    assert 0.8 <= prev["assault"] <= 2.5
    assert prev["household"] > prev["burglary"]
    # repeat victimization: a small share of victims suffer a large share of incidents
    assert _truth(truth, "concentration", "violent") > 1.8
    assert _truth(truth, "repeat_incidents", "personal") > 55
    assert _truth(truth, "multiple_victimization", "personal") > 10
    # risk gradients of the generating model show up in the population
    assert _truth(truth, "prevalence", "violent", "age_band", "16-24") > 2 * _truth(
        truth, "prevalence", "violent", "age_band", "65-74")
    assert _truth(truth, "prevalence", "burglary", "tenure", "Social renter") > _truth(
        truth, "prevalence", "burglary", "tenure", "Owner")
    assert _truth(truth, "prevalence", "sexual_violence", "sex", "Female") > 2 * _truth(
        truth, "prevalence", "sexual_violence", "sex", "Male")
    assert _truth(truth, "feeling_safe", "safe_dark", "sex", "Male") > _truth(truth, "feeling_safe", "safe_dark", "sex",
                                                                                  "Female")
    assert 60 < _truth(truth, "feeling_safe", "safe_dark") < 85
    assert _truth(truth, "reporting_rate", "vehicle_theft") > _truth(truth, "reporting_rate", "vandalism")


def test_truth_json_metadata(written):
    meta = json.loads((written / "truth.json").read_text())
    assert meta["seed"] == 3
    assert meta["population"]["households"] == 16_000
    assert meta["sample"]["households_issued"] == 800
    assert {t["name"] for t in meta["crime_types"]} == {t.name for t in S.CRIME_TYPES}
    assert set(meta["crime_types"][0]["coefficients"]) == set(S.COVARIATES)
    table = pd.read_csv(written / "truth.csv", keep_default_na=False, na_values=[""])
    assert meta["truth"]["rows"] == len(table)
    assert list(table.columns) == S.TRUTH_COLUMNS
    wide = table[table["indicator"].isin(["prevalence", "incidence", "concentration"])].pivot_table(
        index=["crime_type", "unit", "domain", "domain_value"], columns="indicator", values="value", aggfunc="first")
    ok = wide["prevalence"] > 0
    np.testing.assert_allclose(wide.loc[ok, "incidence"], 10 * wide.loc[ok, "prevalence"] * wide.loc[ok, "concentration"],
                               rtol=1e-12)  # the CSV keeps full precision


# ---------------------------------------------------------------------------------------------
# design-based estimates cover the truth
# ---------------------------------------------------------------------------------------------
def test_design_based_estimates_are_close_to_the_truth(sample, truth):
    p = sample.persons.copy()
    p["burglary"] = (_in_period_counts(sample, ["burglary"]) > 0).astype(float)
    p["household"] = (_in_period_counts(sample, S.GROUPS["household"]) > 0).astype(float)
    p["n_household"] = _in_period_counts(sample, S.GROUPS["household"])
    p["violent"] = (_in_period_counts(sample, S.GROUPS["violent"]) > 0).astype(float)
    p["safe"] = np.where(p["safedark"].isin([1, 2]), 1.0, np.where(p["safedark"].isin([3, 4]), 0.0, np.nan))
    dh = sv.Design(p, weights="wt_household", strata="stratum", psu="psu")
    dp = sv.Design(p, weights="wt_person", strata="stratum", psu="psu")
    checks = [(dh, "burglary", 100, "prevalence", "burglary"), (dh, "household", 100, "prevalence", "household"),
              (dh, "n_household", 1000, "incidence", "household"), (dp, "violent", 100, "prevalence", "violent"),
              (dp, "safe", 100, "feeling_safe", "safe_dark")]
    for d, var, scale, ind, crime in checks:
        r = d.mean(var).iloc[0]
        t = _truth(truth, ind, crime)
        assert abs(r["estimate"] * scale - t) < 4 * r["se"] * scale, (var, r["estimate"] * scale, t, r["se"] * scale)
    # a domain estimate on the full design
    r = dh.mean("household", by="tenure")
    for _, row in r.iterrows():
        t = _truth(truth, "prevalence", "household", "tenure", S.TENURE[int(row["tenure"])])
        assert abs(row["estimate"] * 100 - t) < 4 * row["se"] * 100


@pytest.mark.parametrize("method", ["JKn", "bootstrap"])
def test_replicate_weights(pop, method):
    s = S.draw_sample(pop, SAMPLE_HH, SEED, replicate=method, n_replicates=40)
    info = s.info["replicate"]
    assert info["method"] == method
    hcols = [c for c in s.households.columns if c.startswith("rwh")]
    pcols = [c for c in s.persons.columns if c.startswith("rwp")]
    assert len(hcols) == len(pcols) == info["n_replicates"] == len(s.replicates)
    if method == "JKn":
        assert len(info["rscales"]) == info["n_replicates"] and info["grouped"]
    else:
        assert info["n_replicates"] == 40
    # non-respondents have zero replicate weights; person = household x adults
    assert (s.households.loc[s.households["resp"] == 2, hcols] == 0).all().all()
    np.testing.assert_allclose(s.persons[pcols].to_numpy(),
                               s.persons[hcols].to_numpy() * s.persons[["nadults"]].to_numpy())
    p = s.persons.assign(female=(s.persons["sex"] == 2).astype(float))
    rd = sv.ReplicateDesign(p, weights="wt_person", replicate_weights=info["columns_person"], method=method,
                            rscales=info["rscales"], scale=info["scale"])
    td = sv.Design(p, weights="wt_person", strata="stratum", psu="psu")
    a, b = rd.mean(["female", "age"]), td.mean(["female", "age"])
    assert np.allclose(a["estimate"], b["estimate"])
    ratio = a["se"].to_numpy() / b["se"].to_numpy()
    assert ((ratio > 0.6) & (ratio < 1.6)).all(), ratio


def test_jkn_one_replicate_per_psu_when_few(pop):
    s = S.draw_sample(pop, 640, SEED, replicate="JKn", n_replicates=100)
    info = s.info["replicate"]
    assert not info["grouped"] and info["n_replicates"] == s.info["psus"] == 32
    assert info["rscales"] == [0.5] * 32
    # every replicate keeps the household total (self-weighting design, 2 PSUs per stratum)
    h = s.households
    np.testing.assert_allclose(h[[c for c in h.columns if c.startswith("rwh")]].sum(), len(pop.households), rtol=1e-9)


# ---------------------------------------------------------------------------------------------
# CLI and errors
# ---------------------------------------------------------------------------------------------
def test_main_writes_atomically_and_prints_one_line(tmp_path, capsys):
    out = tmp_path / "synthetic"
    args = ["--out", str(out), "--households", "640", "--seed", "2", "--population-households", "12000"]
    assert S.main(args) == 0
    first = capsys.readouterr().out.strip().splitlines()
    assert len(first) == 1 and first[0].startswith(f"wrote {out}")
    (out / "stale.txt").write_text("from an older run")
    assert S.main(args + ["--replicates", "bootstrap", "--n-replicates", "5"]) == 0
    capsys.readouterr()
    assert not (out / "stale.txt").exists()  # the folder was replaced, not merged
    assert (out / "replicates.csv").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic"]  # no temporary folder left
    assert S.main(["--out", str(tmp_path / "bad"), "--households", "10"]) == 2
    assert "survey: error:" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_bad_arguments():
    with pytest.raises(SurveyError, match="at least 2,000"):
        S.make_population(1, 100)
    p = S.make_population(1, 12_000)
    with pytest.raises(SurveyError, match="more than half"):
        S.draw_sample(p, 7_000, 1)
    with pytest.raises(SurveyError, match="JKn or bootstrap"):
        S.draw_sample(p, 640, 1, replicate="BRR")
    with pytest.raises(SurveyError, match="population is too small"):
        S.draw_sample(p, 4_000, 1)


@pytest.mark.parametrize("args, message", [
    (["--households", "0"], "sample households must be at least 640"),
    (["--households", "5000", "--seed", "-1"], "seed must be a whole number"),
    (["--households", "5000", "--replicates", "JKn", "--n-replicates", "1"], "at least 2 replicates"),
    (["--households", "5000", "--households-per-psu", "1"], "households per PSU must be at least 2"),
    (["--households", "5000", "--population-households", "1000"], "population households must be at least 2,000"),
    (["--households", "5000", "--population-households", "9000"], "more than half the population of 9000"),
    # 50,000 PSUs of 2 wanted from about 1,250 areas: found on the area frame alone
    (["--households", "100000", "--population-households", "200000", "--households-per-psu", "2"],
     "population is too small for this sample: stratum 1 has 79 areas"),
    (["--households", "5000", "--seed", "-3", "--variant", "screener"], "seed must be a whole number"),
    (["--households", "0", "--variant", "screener"], "sample households must be at least 640"),
    (["--households", "5000", "--population-households", "9000", "--variant", "screener"],
     "more than half the population of 9000"),
    (["--households", "100000", "--population-households", "200000", "--households-per-psu", "2",
      "--variant", "screener"], "population is too small for this sample: stratum 1 has 79 areas"),
    (["--households", "5000", "--variant", "screener", "--replicates", "JKn"], "national variant only"),
    (["--households", "5000", "--no-design"], "--variant screener only"),
])
def test_arguments_are_checked_before_any_household_is_generated(tmp_path, capsys, monkeypatch, args, message):
    def no_households(*a, **k):
        raise AssertionError("households generated before the arguments were checked")

    monkeypatch.setattr(S, "_make_chunk", no_households)
    assert S.main(["--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("survey: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("variant", ["national", "screener"])
def test_a_folder_that_is_not_a_synthetic_survey_is_refused_before_any_work(tmp_path, capsys, monkeypatch, variant):
    def no_households(*a, **k):
        raise AssertionError("households generated before the output folder was checked")

    monkeypatch.setattr(S, "_make_chunk", no_households)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("not the generator's")
    assert S.main(["--out", str(out), "--households", "5000", "--variant", variant]) == 2
    err = capsys.readouterr().err
    assert err.startswith("survey: error: ") and err.count("\n") == 1, err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_streamed_generator_equals_the_population_built_whole(monkeypatch):
    """survey synth never holds the population: areas first, both selection stages on the frame,
    then households chunk by chunk (only the sampled ones kept, the truth summed per domain cell).
    With chunks of about 5,000 households (9 chunks here), the sample, the truth and the sizes
    are those of the population built whole, and the truth's numerators are the population's own
    counts (victims, adults), so the sums over chunks lose and double nothing."""
    monkeypatch.setattr(S, "CHUNK_HOUSEHOLDS", 5_000)
    whole = S.make_population(4, 40_000)
    assert len(S._area_chunks(whole.areas["households"].to_numpy())) >= 8
    assert (np.diff(whole.households["hhid"].to_numpy()) == 1).all() and whole.households["hhid"].iloc[0] == 1
    assert (np.diff(whole.incidents["incid"].to_numpy()) == 1).all()
    sample = S.draw_sample(whole, 2_000, 4, replicate="JKn", n_replicates=30)
    made, make_chunk = [], S._make_chunk

    def recorded(*a, **k):
        part = make_chunk(*a, **k)
        made.append(len(part.households))
        return part

    monkeypatch.setattr(S, "_make_chunk", recorded)
    monkeypatch.setattr(S, "make_population", None)  # the streamed path never builds it whole
    pop, streamed, truth = S.synth_streamed(2_000, 4, "JKn", 40_000, 30)
    assert sum(made) == 40_000 and max(made) <= 5_000 and len(made) >= 8
    assert pop.info == whole.info and len(pop.households) == 0  # nothing of the population kept
    for part in ("households", "persons", "incidents"):
        pd.testing.assert_frame_equal(getattr(streamed, part), getattr(sample, part))
    pd.testing.assert_frame_equal(streamed.replicates, sample.replicates)
    assert streamed.info == sample.info
    pd.testing.assert_frame_equal(truth, S.truth_table(whole))
    overall = truth[truth["domain"] == "overall"].set_index(["indicator", "crime_type"])
    for t in S.CRIME_TYPES:
        n_units = 40_000 if t.unit == "household" else len(whole.persons)
        assert overall.loc[("prevalence", t.name), "numerator"] == (whole.counts[t.name] > 0).sum()
        assert overall.loc[("incidence", t.name), "numerator"] == whole.counts[t.name].sum()
        assert overall.loc[("prevalence", t.name), "denominator"] == n_units
    by_sex = truth[(truth["indicator"] == "prevalence") & (truth["crime_type"] == "assault")
                   & (truth["domain"] == "sex")]
    want = [((whole.counts["assault"] > 0) & (whole.persons["sex"].to_numpy() == s)).sum() for s in (1, 2)]
    assert by_sex["numerator"].tolist() == want


# ---------------------------------------------------------------------------------------------
# the spec
# ---------------------------------------------------------------------------------------------
def test_spec_matches_the_generator():
    spec = yaml.safe_load(SPEC.read_text())
    v = spec["victimization"]
    declared = {t["name"]: t for t in v["types"]}
    assert set(declared) == {t.name for t in S.CRIME_TYPES}
    for t in S.CRIME_TYPES:
        d = declared[t.name]
        assert d["iccs"] == t.iccs and d["unit"] == t.unit
        assert d["codes"] == [c for c, _, _, _ in t.codes]
        assert d.get("violent", False) == t.violent
    assert {k: list(m) for k, m in S.GROUPS.items()} == v["groups"]
    assert v["ignore_codes"] == [S.UNCODEABLE]
    items = {i["name"]: i for i in spec["perception"]}
    for name, ind, var, positive in S.PERCEPTION_ITEMS:
        assert items[name]["indicator"] == ind and items[name]["variable"] == var
        assert items[name]["positive"] == list(positive)
    assert spec["domains"]["age_band"]["bands"] == list(S.AGE_BANDS)


def test_spec_loads_on_a_generated_sample(written, tmp_path):
    spec_mod = pytest.importorskip("survey.spec")
    ingest = pytest.importorskip("survey.ingest")
    spec_mod.read_spec(SPEC)
    root = tmp_path / "repo"
    (root / "specs").mkdir(parents=True)
    shutil.copy(SPEC, root / "specs" / "synthetic.yaml")
    shutil.copytree(written, root / "data" / "synthetic")
    data = ingest.load(root / "specs" / "synthetic.yaml")
    acc = data.accounting.set_index("step")["rows"]
    inc, _ = pyreadstat.read_sav(str(written / "incidents.sav"))
    assert acc["exclude: outside_period"] == int((~inc["month"].between(1, 12)).sum()) > 0
    assert acc.get("ignore codes", 0) == int(((inc["crimecode"] == S.UNCODEABLE) & inc["month"].between(1, 12)).sum())
    n_counted = int((inc["month"].between(1, 12) & (inc["crimecode"] != S.UNCODEABLE)).sum())
    assert acc["incidents counted"] == n_counted


def test_capped_truth(pop, truth):
    """truth_table(cap=) counts a unit's victimizations of a type above the cap as the cap (and
    scales its reported victimizations alike), as the loader's fixed cap; groups add the capped
    counts of their types; prevalence does not change."""
    capped = S.truth_table(pop, cap=3)
    key = ["indicator", "crime_type", "domain", "domain_value"]
    a = truth.set_index(key)["value"]
    b = capped.set_index(key)["value"]
    assert a.index.equals(b.index)
    assert np.allclose(a.loc["prevalence"], b.loc["prevalence"], equal_nan=True)
    c = pop.counts["assault"].astype(float)
    want = np.minimum(c, 3).sum() / len(pop.persons) * 1000
    assert np.isclose(b.loc[("incidence", "assault", "overall", "all")], want, rtol=1e-12)
    assert b.loc[("incidence", "assault", "overall", "all")] < a.loc[("incidence", "assault", "overall", "all")]
    members = [t for t in S.GROUPS["violent"]]
    want = sum(np.minimum(pop.counts[m].astype(float), 3).sum() for m in members) / len(pop.persons) * 1000
    assert np.isclose(b.loc[("incidence", "violent", "overall", "all")], want, rtol=1e-12)
    assert (b.loc["concentration"].dropna() <= 3 * len(members) + 1e-9).all()
