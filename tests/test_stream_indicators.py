"""The indicator table streamed from a Parquet file (survey.stream_indicators) equals the table of
the same survey loaded in memory (survey.indicators, itself checked against R and hand
computations) to 1e-12 in the estimates and 1e-9 in the SEs and intervals, with the same bases,
df and publication flags; the engine choice (spec design.engine, survey validate) follows the
estimated size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from survey import stream_indicators as SI
from survey.indicators import indicator_table
from survey.ingest import IngestError, load

N_REP = 12


def _respondents(n=3000, seed=3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 10, n)
    psu = h * 10 + rng.integers(0, 3, n)
    risk = rng.gamma(1.0, 1.0, n)
    df = pd.DataFrame({"hhid": np.arange(1, n + 1), "stratum": h, "psu": psu,
                       "wt_household": rng.uniform(50, 150, n), "wt_person": rng.uniform(80, 300, n),
                       "resp": (rng.random(n) < 0.93).astype(int),
                       "sex": rng.integers(1, 3, n), "age": rng.integers(16, 90, n),
                       "region": rng.integers(1, 6, n), "tenure": rng.integers(1, 5, n),
                       "zone": np.where(psu < 2, 2, 1)})  # zone 2: two PSUs of one stratum (df 1)
    for c, p in (("burg", 0.15), ("asl", 0.08)):
        vic = rng.random(n) < p * risk
        cnt = np.where(vic, 1 + rng.poisson(0.8 * risk), 0).astype(float)
        scr = np.where(vic, 1, 2).astype(float)
        miss = rng.random(n) < 0.03
        scr[miss] = rng.choice([7, 8, 9], int(miss.sum()))
        cnt[miss] = np.nan
        cnt[vic & (rng.random(n) < 0.05)] = 97  # too many to remember: takes the cap
        cnt[~vic & ~miss] = np.nan  # not asked
        pol = np.where(vic, rng.choice([1, 2, 8], n, p=[0.4, 0.5, 0.1]), np.nan)
        df[f"{c}12"], df[f"{c}n"], df[f"{c}pol"] = scr, cnt, pol
        df[f"{c}5"] = np.where(vic | (rng.random(n) < 0.2), 1, np.where(rng.random(n) < 0.02, 9, 2)).astype(float)
    df["safedark"] = rng.choice([1, 2, 3, 4, 5, 8], n, p=[0.3, 0.3, 0.2, 0.1, 0.05, 0.05]).astype(float)
    df["safewould"] = np.where(df["safedark"] == 5, rng.choice([1, 2, 3, 4], n), np.nan)
    df["worryburg"] = rng.choice([1, 2, 3, 9], n, p=[0.2, 0.4, 0.35, 0.05]).astype(float)
    df.loc[df["resp"] == 0, ["burg12", "burgn", "asl12", "asln", "safedark"]] = np.nan
    fac = rng.choice([0.5, 1.5], (N_REP, 200))
    for r in range(N_REP):
        df[f"rwh{r + 1}"] = df["wt_household"] * fac[r][psu]
        df[f"rwp{r + 1}"] = df["wt_person"] * fac[r][psu]
    return df


def _spec(path, replicate, engine=None) -> dict:
    types = []
    for name, c, unit, label in (("burglary", "burg", "household", "Burglary"), ("assault", "asl", "person",
                                                                                  "Assault")):
        types.append({"name": name, "label": label, "unit": unit,
                      "victim": {"variable": f"{c}12", "yes": [1], "missing": [7, 8, 9]},
                      "count": {"variable": f"{c}n", "dont_know": [97], "dont_know_value": "cap"},
                      "reported": {"variable": f"{c}pol", "yes": [1], "no": [2], "unknown": [8]}})
        types.append({"name": f"{name}_5y", "unit": unit, "period": "5 years",
                      "victim": {"variable": f"{c}5", "yes": [1], "missing": [9]}})
    design = {"file": "respondents", "weights": {"household": "wt_household", "person": "wt_person"}}
    if replicate == "nopsu":  # each row its own PSU
        design.update(strata="stratum")
    elif replicate:
        design["replicate"] = {"columns": {"household": "^rwh[0-9]+$", "person": "^rwp[0-9]+$"}, "method": "Fay",
                               "rho": 0.5}
    else:
        design.update(strata="stratum", psu="psu")
    if engine:
        design["engine"] = engine
    return {
        "survey": "streamed", "period": "2025",
        "files": {"respondents": {"path": str(path), "unit": "person", "keys": ["hhid"], "respondents": "resp == 1",
                                  "link": {"to": "households", "on": ["hhid"]}},
                  "households": {"path": str(path), "unit": "household", "keys": ["hhid"]}},
        "design": design,
        "victimization": {"source": "respondent", "types": types,
                          "groups": {"any_5y": ["burglary_5y"], "personal": ["assault"]},
                          "cap": {"rule": "fixed", "value": 6}},
        "perception": [
            {"name": "safe_dark", "variable": "safedark", "indicator": "feeling_safe", "positive": [1, 2],
             "missing": [8, 9], "follow_up": {"codes": [5], "variable": "safewould"}},
            {"name": "worry_burglary", "variable": "worryburg", "indicator": "worry", "positive": [1],
             "missing": [9]}],
        "domains": {"sex": {"variable": "sex", "labels": {1: "Male", 2: "Female"}, "units": ["person"]},
                    "age_band": {"variable": "age", "bands": [16, 35, 55, 75], "units": ["person"]},
                    "region": {"variable": "region"},
                    "tenure": {"variable": "tenure", "recode": {"renter": [3, 4], "owner": [1, 2]}},
                    "sex_by_region": {"cross": ["sex", "region"]},
                    "zone": {"variable": "zone", "labels": {2: "Island", 1: "Mainland"}}},
        "publication": {"preset": "ons", "min_base": 50},
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream_ind")
    path = d / "respondents.parquet"
    _respondents().to_parquet(path, row_group_size=400)  # many row groups
    out = {}
    for kind in ("taylor", "replicate", "nopsu"):
        sp = d / f"{kind}.yaml"
        sp.write_text(yaml.safe_dump(_spec(path, kind if kind == "nopsu" else kind == "replicate")))
        out[kind] = sp
    return out


KEYS = ["indicator", "crime_type", "unit", "domain", "domain_value"]
EXACT = ["estimate", "weighted_base"]
CLOSE = ["se", "ci_low", "ci_high", "cv", "deff"]
SAME = ["df", "n", "n_cases", "reliability", "flag_reason", "suppressed", "suppression_reason", "measure",
        "numerator", "denominator", "period", "sdg_indicator"]


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("kind", ["taylor", "replicate", "nopsu"])
def test_streamed_table_equals_in_memory(files, kind):
    spec = files[kind]
    want = indicator_table(load(spec), indicators=list(SI.STREAM_FAMILIES))
    got = SI.indicator_table(spec, chunk_rows=350)  # batches cut across row groups
    assert len(got) == len(want) > 300
    assert list(got.columns) == list(want.columns)
    # the same rows in the same order
    assert got[KEYS].astype(str).values.tolist() == want[KEYS].astype(str).values.tolist()
    assert set(want["indicator"]) >= {"prevalence", "incidence", "concentration", "repeat_victims",
                                      "repeat_incidents", "multiple_victimization", "reporting_rate_victims",
                                      "victimizations", "victims", "feeling_safe", "worry", "gini", "gini_victims"}
    assert set(want["domain"]) >= {"overall", "sex", "age_band", "region", "tenure", "sex_by_region",
                                   "victim__personal"}
    for c in EXACT:
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=c)
    for c in CLOSE:
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=c)
    for c in SAME:
        a, b = got[c], want[c]
        if pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b):
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9, equal_nan=True, err_msg=c)
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), c
    # the domains' own df (not the design's) are in play, and some cells are flagged
    assert got["df"].nunique() > 2 if kind != "replicate" else got["df"].nunique() >= 2
    island = got[(got["domain"] == "zone") & (got["domain_value"] == "Island") & (got["measure"] == "%")]
    if kind != "nopsu":  # two PSUs of one stratum
        assert len(island) and (island["df"] == 1).all()
    else:  # its respondent rows minus 1 (one stratum)
        assert len(island) and (island["df"] > 20).all()
    assert got["reliability"].astype(str).nunique() > 1


def _validate(capsys, path, tmp_path, engine) -> list[str]:
    from survey.cli import main

    sp = tmp_path / f"v{abs(hash(str(engine)))}.yaml"
    sp.write_text(yaml.safe_dump(_spec(path, False, engine)))
    assert main(["validate", str(sp)]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_validate_reports_the_size_and_chooses(files, tmp_path, capsys):
    path = yaml.safe_load(files["taylor"].read_text())["files"]["respondents"]["path"]
    # what the spec reads: hhid, stratum, psu, 2 weights, resp, 5 domain variables, 4 + 4 crime items,
    # 3 perception items (with the follow-up); not the 24 replicate columns of the file
    n_cols = 22
    size = 3000 * n_cols * 8
    small = _validate(capsys, path, tmp_path, {"memory_limit": "100kB", "chunk_rows": 500})
    line = [x for x in small if x.startswith("engine:")]
    assert len(line) == 1, small
    assert line[0].startswith(f"engine: stream (auto: {size / 1e3:.3g} kB exceeds the memory_limit)")
    assert f"rows 3000, used columns {n_cols}," in line[0] and "available memory" in line[0]
    assert "limit 100 kB" in line[0]
    big = _validate(capsys, path, tmp_path, {"memory_limit": "1GB"})
    line2 = [x for x in big if x.startswith("engine:")]
    assert line2[0].startswith(f"engine: memory (auto: {size / 1e3:.3g} kB fits in the memory_limit)")
    # the streamed accounting counts what the in-memory load counts (batch by batch, summed)
    streamed = SI.stream_accounting(files["taylor"], chunk_rows=500)
    loaded = load(files["taylor"]).accounting
    for step in ("respondents", "item nonresponse", "skip pattern", "dont know", "perception missing",
                 "perception follow-up", "missing count"):
        a = int(streamed.loc[streamed["step"] == step, "rows"].sum())
        b = int(loaded.loc[loaded["step"] == step, "rows"].sum())
        assert a == b and (b > 0 or step == "missing count"), (step, a, b)
    # the mode can be forced either way; an impossible stream is one line
    forced = _validate(capsys, path, tmp_path, {"mode": "memory", "memory_limit": "1kB"})
    assert any(x.startswith("engine: memory (mode: memory)") for x in forced)


def test_engine_spec_is_validated(files):
    from survey.spec import SpecError, parse_spec

    base = yaml.safe_load(files["taylor"].read_text())
    for bad, msg in (({"mode": "fast"}, "mode"), ({"memory_limit": "4 parsecs"}, "memory_limit"),
                     ({"chunk_rows": 0}, "chunk_rows"), ({"chnk_rows": 10}, "chnk_rows")):
        spec = dict(base, design=dict(base["design"], engine=bad))
        with pytest.raises(SpecError, match=msg):
            parse_spec(spec, "s.yaml")
    ok = parse_spec(dict(base, design=dict(base["design"], engine={"memory_limit": "1.5GiB"})), "s.yaml")
    from survey.stream import parse_size

    assert parse_size(ok.design.engine.memory_limit) == int(1.5 * 2 ** 30)
    assert parse_size("4GB") == 4 * 10 ** 9 and parse_size(512) == 512


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_two_stages_without_first_stage_fpc_stream(files, tmp_path):
    """PSUs then households: without a first-stage fpc the second stage adds no variance (R's
    svydesign(ids = ~psu + hhid) = ids = ~psu), so the stream uses the first stage; the
    in-memory table on the two-stage design is the reference."""
    base = yaml.safe_load(files["taylor"].read_text())
    spec = dict(base, design=dict(base["design"], psu=["psu", "hhid"]))
    sp = tmp_path / "two_stages.yaml"
    sp.write_text(yaml.safe_dump(spec))
    data = load(sp)
    assert len(data.design().stages) == 2
    fams = ["prevalence", "incidence", "gini", "feeling_safe"]
    want = indicator_table(data, indicators=fams, domains=["region", "zone"])
    got = SI.indicator_table(sp, indicators=fams, domains=["region", "zone"], chunk_rows=400)
    assert got[KEYS].astype(str).values.tolist() == want[KEYS].astype(str).values.tolist()
    np.testing.assert_allclose(got["estimate"].to_numpy(float), want["estimate"].to_numpy(float), rtol=1e-12,
                               equal_nan=True)
    for c in ("se", "df", "n", "ci_low"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, equal_nan=True,
                                   err_msg=c)


def test_what_cannot_stream_says_so(files, tmp_path):
    base = yaml.safe_load(files["taylor"].read_text())
    spec = dict(base, design=dict(base["design"], psu=["psu", "region", "hhid"], fpc=["n_psu", "n_r"]))
    sp = tmp_path / "stages.yaml"  # three stages, with a first-stage fpc
    sp.write_text(yaml.safe_dump(spec))
    with pytest.raises(SI.StreamIndicatorError, match="design.psu has several stages with a first-stage fpc and "
                                                      "more than two stages"):
        SI.indicator_table(sp)
    cert = dict(base, design=dict(base["design"], psu=["psu", "hhid"], lonely_psu="certainty"))
    sp3 = tmp_path / "certainty.yaml"
    sp3.write_text(yaml.safe_dump(cert))
    with pytest.raises(SI.StreamIndicatorError, match="several stages with lonely_psu: certainty"):
        SI.check_streamable(sp3)
    crossed = dict(base, design=dict(base["design"], strata=["stratum", "zone"]))  # crossed, not per stage
    sp4 = tmp_path / "crossed.yaml"
    sp4.write_text(yaml.safe_dump(crossed))
    with pytest.raises(SI.StreamIndicatorError, match="design.strata has several columns"):
        SI.check_streamable(sp4)
    sp2 = tmp_path / "forced.yaml"
    spec = dict(spec, design=dict(spec["design"], engine={"mode": "stream"}))
    sp2.write_text(yaml.safe_dump(spec))
    with pytest.raises(SI.StreamIndicatorError, match="engine mode 'stream' is not possible: design.psu has several"):
        SI.engine_plan(sp2)


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("by", ["type", "all"])
def test_percentile_cap_streams_in_two_passes(files, tmp_path, by):
    base = yaml.safe_load(files["taylor"].read_text())
    spec = dict(base, victimization=dict(base["victimization"], cap={"rule": "percentile", "value": 90, "by": by}))
    sp = tmp_path / f"pct_{by}.yaml"
    sp.write_text(yaml.safe_dump(spec))
    data = load(sp)
    caps = [r for r in data.accounting.to_dict(orient="records") if r["step"] == "cap"]
    # the percentile bites: per type 4 and 5, pooled 5 and 5 on these data
    assert caps and "(0 respondents capped)" not in caps[0]["detail"]
    want = indicator_table(data, indicators=["incidence", "victimizations", "repeat_incidents", "concentration"])
    got = SI.indicator_table(sp, chunk_rows=300,
                             indicators=["incidence", "victimizations", "repeat_incidents", "concentration"])
    assert got[KEYS].astype(str).values.tolist() == want[KEYS].astype(str).values.tolist()
    for c in ("estimate", "se", "n", "n_cases", "weighted_base"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=c)
    assert set(got["cap_rule"]) == set(want["cap_rule"])
    other = SI.indicator_table(files["taylor"], chunk_rows=300, indicators=["victimizations"])  # fixed cap 6
    assert not np.allclose(other["estimate"].to_numpy(float)[:2], got.loc[got["indicator"] == "victimizations",
                                                                             "estimate"].to_numpy(float)[:2])


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_batch_run_streams_the_indicator_table(files, tmp_path):
    """A parameter set with ``engine: {mode: auto, memory_limit: ...}`` below the file's size:
    the batch streams the indicator table once (no notebook loads the survey) and publishes it."""
    import json

    from survey.batch import execute_run
    from survey.params import ParameterError, read_parameter_set

    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    ps = tmp_path / "big.yaml"
    ps.write_text(yaml.safe_dump({"spec": str(files["replicate"]), "domains": ["sex", "zone"],
                                  "engine": {"memory_limit": "50kB", "chunk_rows": 700},
                                  "notebooks": ["victimization"]}))
    res = execute_run(str(ps), notebook_dir=str(Path(__file__).resolve().parents[1] / "notebooks"),
                      root=str(tmp_path), redirect_stderr=False)
    assert res["status"] == "succeeded", res.get("error")
    # the notebooks run on the streamed survey (survey.tables; tests/test_stream_notebooks.py)
    assert res["engine"].startswith("engine: stream (auto: ") and [n["name"] for n in res["notebooks"]] == [
        "victimization"]
    out = tmp_path / "outputs" / "big"
    got = pd.read_parquet(out / "indicators.parquet")
    want = SI.indicator_table(files["replicate"], domains=["sex", "zone"], chunk_rows=700)
    np.testing.assert_allclose(got["estimate"], want["estimate"], rtol=1e-12)
    assert set(got["domain"]) == {"overall", "sex", "zone", "victim__any_5y", "victim__personal"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["indicator_table"]["rows"] == len(want)
    assert any(r["step"] == "read" and "streamed" in r["detail"] for r in manifest["row_accounting"])
    for bad, msg in (({"mode": "quick"}, "engine.mode"), ({"chunk": 5}, "did you mean 'chunk_rows'"),
                     ({"memory_limit": "lots"}, "engine.memory_limit")):
        ps.write_text(yaml.safe_dump({"spec": str(files["replicate"]), "engine": bad}))
        with pytest.raises(ParameterError, match=msg):
            read_parameter_set(ps, tmp_path)


def _combined_spec(path) -> dict:
    """Two interviews per household over the period (NCVS-like), combined into one unit."""
    spec = _spec(path, False)
    # no respondents rule: in memory a combined unit without a respondent row gets n__ = 0 (not
    # missing), which makes a prevalence-only type look counted there (survey.ingest._combine_units)
    spec["files"] = {"interviews": {"path": str(path), "unit": "household", "keys": ["hhid", "quarter"],
                                    "combine": {"key": ["hhid"], "weights": "sum", "order": ["quarter"],
                                                "period": "2025 (two interviews)"}}}
    spec["design"] = {"file": "interviews", "weights": "wt_household", "strata": "stratum", "psu": "psu"}
    v = spec["victimization"]
    v["types"] = [t for t in v["types"] if t["unit"] == "household"]
    v["groups"] = {"any_5y": ["burglary_5y"]}
    spec["domains"] = {k: d for k, d in spec["domains"].items() if k in ("region", "tenure", "zone")}
    return spec


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_combine_streams_a_file_sorted_by_the_unit(tmp_path):
    one = _respondents(1500, seed=5)
    two = _respondents(1500, seed=6)
    for c in ("hhid", "stratum", "psu", "region", "tenure", "zone"):
        two[c] = one[c]
    second = np.random.default_rng(9).random(1500) < 0.7  # 70% have a second interview
    df = pd.concat([one.assign(quarter=1), two[second].assign(quarter=2)], ignore_index=True)
    df = df.sort_values(["hhid", "quarter"], kind="stable").reset_index(drop=True)
    path = tmp_path / "interviews.parquet"
    df.to_parquet(path, row_group_size=333)  # units cut across row groups and batches
    sp = tmp_path / "comb.yaml"
    sp.write_text(yaml.safe_dump(_combined_spec(path)))
    want = indicator_table(load(sp), indicators=list(SI.STREAM_FAMILIES))
    got = SI.indicator_table(sp, chunk_rows=250)
    assert len(got) == len(want) > 50
    assert got[KEYS].astype(str).values.tolist() == want[KEYS].astype(str).values.tolist()
    assert set(got["period"]) == {"2025 (two interviews)"}
    np.testing.assert_allclose(got["estimate"].to_numpy(float), want["estimate"].to_numpy(float), rtol=1e-12,
                               atol=1e-12, equal_nan=True)
    for c in ("se", "ci_low", "ci_high", "df", "n", "n_cases", "weighted_base"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=c)
    assert got["reliability"].astype(str).tolist() == want["reliability"].astype(str).tolist()
    comb = [r for r in got.attrs["accounting"] if r["step"] == "combine"]
    mem = load(sp).accounting
    assert [(r["rows"], r["detail"]) for r in comb] == mem.loc[mem["step"] == "combine", ["rows", "detail"]].apply(
        tuple, axis=1).tolist()
    assert comb[0]["rows"] == 1500


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("replicate", [False, True, "percentile"])
def test_combine_streams_an_unsorted_file_through_temporary_buckets(tmp_path, monkeypatch, replicate):
    """A unit's rows anywhere in the file: the rows are partitioned by a hash of the unit key
    into temporary Parquet files (deleted afterwards), each sorted and streamed; the table and
    the combine accounting equal the in-memory ones."""
    import tempfile

    one = _respondents(1500, seed=5)
    two = _respondents(1500, seed=6)
    for c in ("hhid", "stratum", "psu", "region", "tenure", "zone") + tuple(f"rwh{r + 1}" for r in range(N_REP)):
        two[c] = one[c]
    second = np.random.default_rng(9).random(1500) < 0.7
    df = pd.concat([one.assign(quarter=1), two[second].assign(quarter=2)], ignore_index=True)
    df = df.sample(frac=1.0, random_state=1).reset_index(drop=True)  # a unit's two rows far apart
    path = tmp_path / "interviews.parquet"
    df.to_parquet(path, row_group_size=333)
    spec = _combined_spec(path)
    if replicate == "percentile":  # the caps from the rows before combining them, as in memory
        spec["victimization"]["cap"] = {"rule": "percentile", "value": 75}  # 3 (rows), not 4 (units)
    elif replicate:
        spec["design"] = {"file": "interviews", "weights": "wt_household",
                          "replicate": {"columns": "^rwh[0-9]+$", "method": "Fay", "rho": 0.5}}
    sp = tmp_path / "comb.yaml"
    sp.write_text(yaml.safe_dump(spec))
    data = load(sp)
    want = indicator_table(data)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    got = SI.indicator_table(sp, chunk_rows=200)  # 4 buckets of about 640 rows (2550 rows)
    assert list(scratch.iterdir()) == []  # the temporary files are gone
    assert len(got) == len(want) > 50
    assert got[KEYS].astype(str).values.tolist() == want[KEYS].astype(str).values.tolist()
    np.testing.assert_allclose(got["estimate"].to_numpy(float), want["estimate"].to_numpy(float), rtol=1e-12,
                               atol=1e-12, equal_nan=True)
    for c in ("se", "ci_low", "ci_high", "df", "n", "n_cases", "weighted_base"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=c)
    acc = got.attrs["accounting"]
    assert "partitioned by the unit key into 4 temporary files" in acc[0]["detail"]
    comb = [(r["rows"], r["detail"]) for r in acc if r["step"] == "combine"]
    mem = data.accounting
    assert comb == mem.loc[mem["step"] == "combine", ["rows", "detail"]].apply(tuple, axis=1).tolist()


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("kind", ["taylor", "replicate", "nopsu"])
def test_gini_streams_from_the_weighted_histogram(files, kind):
    """The Gini families stream: per cell the weighted distribution of the (capped, integer)
    counts, per replicate too; Taylor SEs from the proportions' covariance.  Equal to the
    in-memory table, and the overall Gini to the mean-difference formula by hand:
    G = sum_ij w_i w_j |y_i - y_j| / (2 N Y)."""
    fams = ["gini", "gini_victims"]
    data = load(files[kind])
    want = indicator_table(data, indicators=fams)
    got = SI.indicator_table(files[kind], chunk_rows=270, indicators=fams)
    assert len(got) == len(want) > 60
    assert got[KEYS].astype(str).values.tolist() == want[KEYS].astype(str).values.tolist()
    np.testing.assert_allclose(got["estimate"].to_numpy(float), want["estimate"].to_numpy(float), rtol=1e-12,
                               atol=1e-12, equal_nan=True)
    for c in ("se", "ci_low", "ci_high", "cv", "df", "n", "n_cases", "weighted_base"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=c)
    assert got["se"].notna().sum() > 40 and (got["se"].dropna() > 0).all()
    # by hand: burglary over households (respondents with a known count) and over victims
    r = data.respondents
    ok = (r["_respondent"] == 1).to_numpy() & r["k__burglary"].notna().to_numpy() & (r["wt_household"] > 0).to_numpy()
    for over, keep in (("gini", ok), ("gini_victims", ok & (r["victim__burglary"] > 0).to_numpy())):
        y, w = r["k__burglary"].to_numpy(float)[keep], r["wt_household"].to_numpy(float)[keep]
        vals = np.unique(y)
        W = np.array([w[y == v].sum() for v in vals])
        hand = (W[:, None] * W[None, :] * np.abs(vals[:, None] - vals[None, :])).sum() / (2 * W.sum() * (W * vals).sum())
        row = got[(got["indicator"] == over) & (got["crime_type"] == "burglary") & (got["domain"] == "overall")]
        assert len(row) == 1 and row["estimate"].iloc[0] == pytest.approx(hand, rel=1e-12)
        assert 0.2 < hand < 0.95


def _incident_survey(tmp_path, n=2500, seed=11, cap=None, replicate=False):
    """An NCVS-shaped survey: a household file and an incident file linked on the household id,
    with an exclusion rule, ignored codes, series incidents (unknown counts), an incident
    weight, reporting, incidents of non-respondents and of households not in the file."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 8, n)
    psu = h * 10 + rng.integers(0, 3, n)
    hh = pd.DataFrame({"hhid": rng.permutation(np.arange(1, n + 1)) * 7, "stratum": h, "psu": psu,
                       "wt": rng.uniform(50, 150, n), "resp": (rng.random(n) < 0.9).astype(int),
                       "region": rng.integers(1, 5, n), "tenure": rng.integers(1, 4, n)})
    fac = rng.choice([0.5, 1.5], (10, 100))
    for r in range(10):
        hh[f"rw{r + 1}"] = hh["wt"] * fac[r][psu]
    risk = rng.gamma(0.7, 1.0, n)
    k = rng.poisson(0.25 * risk)
    ids = np.repeat(hh["hhid"].to_numpy(), k)
    m = len(ids)
    inc = pd.DataFrame({"hhid": ids, "code": rng.choice([31, 32, 40, 54, 55, 5], m, p=[.2, .1, .1, .3, .2, .1]),
                        "abroad": (rng.random(m) < 0.03).astype(int),
                        "series": (rng.random(m) < 0.05).astype(int),
                        "times": rng.choice([6, 8, 12, 997], m),
                        "police": rng.choice([1, 2, 8], m, p=[.4, .5, .1])})
    inc["iwt"] = np.repeat(hh["wt"].to_numpy(), k) * rng.uniform(0.8, 1.25, m)
    stray = pd.DataFrame({"hhid": [3, 5, 5], "code": [31, 54, 40], "abroad": 0, "series": 0, "times": 6,
                          "police": 1, "iwt": 100.0})  # no such household
    inc = pd.concat([inc, stray], ignore_index=True)
    inc["incid"] = np.arange(1, len(inc) + 1)
    hpath, ipath = tmp_path / "households.parquet", tmp_path / "incidents.parquet"
    hh.to_parquet(hpath, row_group_size=300)
    inc.sample(frac=1.0, random_state=seed).to_parquet(ipath, row_group_size=500)
    design = {"file": "households", "weights": "wt"}
    if replicate:
        design["replicate"] = {"columns": "^rw[0-9]+$", "method": "Fay", "rho": 0.5}
    else:
        design.update(strata="stratum", psu="psu")
    spec = {
        "survey": "incidents", "period": "2025",
        "files": {"households": {"path": str(hpath), "unit": "household", "keys": ["hhid"], "respondents": "resp == 1"},
                  "incidents": {"path": str(ipath), "unit": "incident", "keys": ["incid"],
                                "link": {"to": "households", "on": ["hhid"], "unmatched": "exclude"}}},
        "design": design,
        "victimization": {"source": "incidents", "file": "incidents", "crime_code": "code", "weight": "iwt",
                          "types": [{"name": "burglary", "unit": "household", "codes": [31, 32]},
                                    {"name": "vehicle", "unit": "household", "codes": [40]},
                                    {"name": "theft", "unit": "household", "codes": [54, 55]}],
                          "groups": {"property": ["burglary", "vehicle", "theft"]},
                          "ignore_codes": [5],
                          "exclude": [{"name": "abroad", "where": "abroad == 1"}],
                          "series": {"when": "series == 1", "count": "times", "unknown_codes": [997],
                                     "unknown_value": 6, "cap": 10},
                          "cap": cap or {"rule": "none"},
                          "reported": {"variable": "police", "yes": [1], "no": [2], "unknown": [8]}},
        "domains": {"region": {"variable": "region"},
                    "tenure": {"variable": "tenure", "labels": {1: "Owned", 2: "Rented", 3: "Other"}}},
        "publication": {"preset": "bjs"},
    }
    sp = tmp_path / f"incidents_{seed}_{bool(replicate)}.yaml"
    sp.write_text(yaml.safe_dump(spec))
    return sp


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("variant", ["taylor", "replicate", "percentile"])
def test_incident_file_survey_streams(tmp_path, variant):
    """victimization.source: incidents.  The incident file is held (aggregated per respondent
    batch by batch); the table, with reporting rate and dark figure over victimizations, and
    the row accounting equal the in-memory load's."""
    cap = {"rule": "percentile", "value": 95, "by": "all"} if variant == "percentile" else None
    sp = _incident_survey(tmp_path, cap=cap, replicate=variant == "replicate")
    data = load(sp)
    want = indicator_table(data)
    got = SI.indicator_table(sp, chunk_rows=350)
    assert len(got) == len(want) > 150
    assert got[KEYS].astype(str).values.tolist() == want[KEYS].astype(str).values.tolist()
    assert {"reporting_rate", "dark_figure", "gini", "repeat_incidents"} <= set(got["indicator"])
    np.testing.assert_allclose(got["estimate"].to_numpy(float), want["estimate"].to_numpy(float), rtol=1e-12,
                               atol=1e-12, equal_nan=True)
    for c in ("se", "ci_low", "ci_high", "cv", "deff", "df", "n", "n_cases", "weighted_base"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=c)
    assert got["reliability"].astype(str).tolist() == want["reliability"].astype(str).tolist()
    # accounting: every line of the in-memory load, with its rows (and its detail but for the read)
    mem = data.accounting
    streamed = pd.DataFrame(got.attrs["accounting"])
    for step in mem["step"].unique():
        a, b = streamed[streamed["step"] == step], mem[mem["step"] == step]
        assert a["rows"].tolist() == b["rows"].tolist(), step
        if step not in ("read", "respondents"):
            assert a["detail"].tolist() == b["detail"].tolist(), step
    assert set(streamed["step"]) == set(mem["step"])
    steps = dict(zip(mem["step"], mem["rows"]))
    assert steps["exclude: unmatched"] == 3 and steps["exclude: non-respondent"] > 0 and steps["series"] > 0
    if variant == "percentile":
        assert "(0 respondents capped)" not in mem.loc[mem["step"] == "cap", "detail"].iloc[0]


def test_incident_file_beyond_the_memory_limit(tmp_path):
    sp = _incident_survey(tmp_path, n=300)
    with pytest.raises(SI.StreamIndicatorError, match=r"incidents.parquet: the incident file \(\d+ rows x \d+ "
                                                      r"columns, about .*\) exceeds the memory limit \(1 kB\)"):
        SI.indicator_table(sp, memory_limit="1kB")
    spec = yaml.safe_load(sp.read_text())
    spec["files"]["incidents"]["link"]["unmatched"] = "error"
    spec["files"]["households"]["respondents"] = "resp >= 0"  # (non-respondents' incidents: an error first)
    sp.write_text(yaml.safe_dump(spec))
    msg = "incidents.parquet: 3 incidents match no respondent of file 'households' on hhid"
    with pytest.raises(IngestError, match=msg):
        load(sp)
    with pytest.raises(IngestError, match=msg):  # known after the pass (no batch held them)
        SI.indicator_table(sp, chunk_rows=100, indicators=["prevalence"])
    # a household twice in one batch: its incidents cannot tell which row they belong to
    hpath = tmp_path / "households.parquet"
    hh = pd.read_parquet(hpath)
    inc = pd.read_parquet(tmp_path / "incidents.parquet")
    twice = hh[hh["hhid"].isin(inc["hhid"])].iloc[[0]]
    pd.concat([twice, hh], ignore_index=True).to_parquet(hpath)
    with pytest.raises(SI.StreamIndicatorError, match=r"incidents.parquet: 2 respondent rows share a link key \(hhid\)"
                                                      r".* \(rows 1-100 of households.parquet, read in batches\)"):
        SI.indicator_table(sp, chunk_rows=100, indicators=["prevalence"])


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_ncvs_extract_streams(tmp_path):
    """The NCVS 2021 extract (specs/ncvs-2021.yaml on its Parquet copies): an incident file, the
    household-quarter rows combined into households on a file not sorted by household, series
    rules and the incident weight.  Streamed = in memory, accounting included; the property
    victimization rate is the published 90.3 per 1,000 (docs/methods.md)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    text = (root / "specs" / "ncvs-2021.yaml").read_text()
    for name in ("household", "incident"):
        text = text.replace(f"../data/ncvs2021/ncvs_2021_{name}.zsav",
                            str(root / "data" / "ncvs2021" / f"ncvs_2021_{name}.parquet"))
    sp = tmp_path / "ncvs.yaml"
    sp.write_text(text)
    fams = ["incidence", "reporting_rate", "gini"]
    data = load(sp)
    want = indicator_table(data, indicators=fams, domains=["tenure"])
    got = SI.indicator_table(sp, indicators=fams, domains=["tenure"])
    assert got[KEYS].astype(str).values.tolist() == want[KEYS].astype(str).values.tolist()
    np.testing.assert_allclose(got["estimate"].to_numpy(float), want["estimate"].to_numpy(float), rtol=1e-12)
    for c in ("se", "df", "n", "n_cases", "weighted_base"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, err_msg=c)
    rate = got[(got["indicator"] == "incidence") & (got["crime_type"] == "property") & (got["domain"] == "overall")]
    assert round(rate["estimate"].iloc[0], 1) == 90.3
    acc = got.attrs["accounting"]
    assert "temporary files" in acc[0]["detail"]
    mem = data.accounting
    for r in acc[1:]:
        same = mem[(mem["step"] == r["step"]) & (mem["file"] == r["file"])]
        assert len(same) == 1 and int(same["rows"].iloc[0]) == r["rows"], r["step"]
        if r["step"] != "respondents":
            assert same["detail"].iloc[0] == r["detail"], r["step"]


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_validate_streams_an_incident_file_survey(tmp_path, capsys):
    from survey.cli import main

    sp = _incident_survey(tmp_path, n=300)
    spec = yaml.safe_load(sp.read_text())
    spec["design"]["engine"] = {"memory_limit": "12kB", "chunk_rows": 100}  # the file 16.8 kB, incidents 6 kB
    sp.write_text(yaml.safe_dump(spec))
    assert main(["validate", str(sp)]) == 0
    out = capsys.readouterr().out
    assert "engine: stream (auto: " in out and "exceeds the memory_limit" in out
    n_inc = len(pd.read_parquet(tmp_path / "incidents.parquet"))
    assert f"; incident file incidents.parquet held in memory: {n_inc} rows x 8 columns, about" in out
    for step in ("exclude: abroad", "ignore codes", "exclude: unmatched", "exclude: non-respondent", "series",
                 "incidents counted"):
        assert step in out, step
    mem = load(sp).accounting
    line = next(x for x in out.splitlines() if x.split()[:2] == ["incidents", "counted"])
    assert line.split()[3] == str(int(mem.loc[mem["step"] == "incidents counted", "rows"].iloc[0]))


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_two_stages_with_first_stage_fpc_stream(tmp_path, order):
    """PSUs sampled without replacement (a first-stage fpc), then blocks of households within
    them (their fpc per PSU): the second stage's variance counts.  Each block's weighted totals
    come from its rows in one batch (the file sorted by PSU and block, or partitioned by them
    into temporary files), their products summed per PSU.  The in-memory two-stage design is
    the reference (estimates 1e-12, SEs 1e-9), and the second stage changes the SEs."""
    df = _respondents(2400, seed=8)
    df["block"] = df["psu"] * 100 + (df["hhid"] % 6)  # 6 blocks per PSU, several rows each
    df["n_psu"] = 7.0  # PSUs per stratum in the population (3 sampled)
    df["n_block"] = 15.0  # blocks per PSU in the population (6 sampled)
    df = df.sort_values(["psu", "block"], kind="stable") if order == "sorted" else df.sample(frac=1.0, random_state=2)
    path = tmp_path / "two.parquet"
    df.to_parquet(path, row_group_size=300)
    spec = _spec(path, False)
    spec["design"].update(psu=["psu", "block"], fpc=["n_psu", "n_block"], lonely_psu="adjust")
    sp = tmp_path / "two.yaml"
    sp.write_text(yaml.safe_dump(spec))
    data = load(sp)
    assert len(data.design().stages) == 2
    fams = ["prevalence", "incidence", "concentration", "gini", "feeling_safe", "victims"]
    want = indicator_table(data, indicators=fams, domains=["region", "sex"])
    got = SI.indicator_table(sp, indicators=fams, domains=["region", "sex"], chunk_rows=250)
    assert got[KEYS].astype(str).values.tolist() == want[KEYS].astype(str).values.tolist()
    np.testing.assert_allclose(got["estimate"].to_numpy(float), want["estimate"].to_numpy(float), rtol=1e-12,
                               equal_nan=True)
    for c in ("se", "df", "n", "ci_low", "ci_high"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, equal_nan=True,
                                   err_msg=c)
    one = dict(spec, design=dict(spec["design"], psu="psu", fpc="n_psu"))  # stage 1 only
    sp1 = tmp_path / "one.yaml"
    sp1.write_text(yaml.safe_dump(one))
    first = SI.indicator_table(sp1, indicators=fams, domains=["region", "sex"], chunk_rows=250)
    assert (got["se"] > first["se"] * 1.05).mean() > 0.5  # the blocks' variance is there
    assert ("temporary files" in got.attrs["accounting"][0]["detail"]) == (order == "shuffled")


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_lorenz_curves_stream_from_the_weighted_histogram(files, tmp_path):
    """The streamed Lorenz curves (one pass, the weighted histogram of the counts per crime and
    over whom) equal survey.lorenz.lorenz on the survey in memory at every point, to 1e-12: a
    respondent file (household and person crimes, a group) and an incident-file survey with a
    percentile cap (two passes).  A hand check: the curve's point at a population share equal
    to the weight share of the zero counts is 0, and it ends at 1."""
    from survey.lorenz import lorenz

    cases = [(files["taylor"], ["burglary", "assault", "assault_5y"]),
             (_incident_survey(tmp_path, cap={"rule": "percentile", "value": 95, "by": "all"}),
              ["burglary", "property"])]
    for sp, crimes in cases:
        data = load(sp)
        crimes = [c for c in crimes if c in data.crime_types + data.crime_groups and
                  data.respondents[f"n__{c}"].notna().any()]
        assert crimes
        got = SI.lorenz_curves(sp, crimes=crimes, chunk_rows=270)
        want = pd.concat([lorenz(data, c, over=o) for o in ("population", "victims") for c in crimes],
                         ignore_index=True)
        assert len(got) == len(want) == 101 * 2 * len(crimes)
        assert got[["crime_type", "over", "domain", "domain_value"]].values.tolist() == \
            want[["crime_type", "over", "domain", "domain_value"]].values.tolist()
        np.testing.assert_allclose(got["population_share"], want["population_share"], rtol=0, atol=1e-15)
        np.testing.assert_allclose(got["victimization_share"], want["victimization_share"], rtol=0, atol=1e-12)
        pop = got[got["over"] == "population"]
        assert (pop.groupby("crime_type")["victimization_share"].last() == 1).all()
        # by hand (population, first crime): below the weight share of the zero counts the curve is 0
        c = crimes[0]
        d = data.design(data.unit_of(c))
        y = d.data[f"k__{c}"].to_numpy(float)
        ok = ~np.isnan(y) & (d.w > 0)
        zero = d.w[ok & (y == 0)].sum() / d.w[ok].sum()
        curve = pop[pop["crime_type"] == c]
        below = curve["population_share"] <= zero - 1e-9
        assert below.sum() > 30 and (curve.loc[below, "victimization_share"].abs() < 1e-15).all()
        assert (curve.loc[~below, "victimization_share"].iloc[1:] > 0).all()


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("kind", ["taylor", "replicate", "nopsu", "incidents"])
def test_design_summary_and_domain_distributions_stream(files, tmp_path, kind):
    """The ingest report's design summary (rows, strata, PSUs, df, replicates, rows with a
    positive weight and their sum, per unit) and each domain's weighted distribution among
    respondents, from one streamed pass, equal those of the in-memory designs (Design /
    ReplicateDesign of survey.ingest.load: counts exactly, proportions and SEs to 1e-12)."""
    from survey import tables as st

    sp = _incident_survey(tmp_path) if kind == "incidents" else files[kind]
    data = load(sp)
    units = sorted({t.unit for t in data.spec.victimization.types})
    pairs = [(d, (data.spec.domains[d].units or units)[0]) for d in data.spec.domains]
    want, want_d = st.design_summary(data, units, pairs)
    got, got_d = SI.design_summary(sp, units=units, domains=pairs, chunk_rows=270)
    assert list(got.columns) == list(want.columns) == SI.DESIGN_SUMMARY_COLUMNS
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)
    d = data.design(units[0])
    assert got["rows"].iloc[0] == len(data.respondents) and got["respondents"].iloc[0] == int((d.w > 0).sum())
    if kind == "replicate":
        assert got["replicates"].iloc[0] == d.n_replicates > 1 and got["method"].iloc[0] == "Fay"
    else:  # df: PSUs minus strata among the respondents (a domain of the design's rows)
        assert got["df"].iloc[0] == d.df and got["psus"].iloc[0] == d.n_psu > got["strata"].iloc[0] > 1
    assert len(got_d) == len(want_d) == len(pairs) >= 2
    for g, w in zip(got_d, want_d):
        assert g["level"].astype(str).tolist() == w["level"].astype(str).tolist() and len(g) >= 2
        assert (g["domain"] == w["domain"]).all()
        for c in ("estimate", "se", "n"):
            np.testing.assert_allclose(g[c].to_numpy(float), w[c].to_numpy(float), rtol=1e-12, atol=1e-14)
        assert g["estimate"].sum() == pytest.approx(1.0, abs=1e-12) and (g["se"] > 0).all()


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("kind", ["taylor", "replicate", "nopsu", "incidents"])
def test_domain_differences_stream_with_the_cells_covariance(files, tmp_path, kind):
    """Differences between two categories of a domain (prevalence, a mean; concentration, a
    ratio), streamed in one pass: the streamed estimate by the domain keeps the covariance of
    its cells (PSU totals of both cells' linearized variables; both cells' replicate
    estimates), so difference, SE, df, p-value and interval equal
    survey.indicators.domain_difference in memory to 1e-9.  The covariance counts: with PSUs
    or replicate weights the SE is not sqrt(se_a^2 + se_b^2)."""
    from survey.indicators import domain_difference

    sp = _incident_survey(tmp_path) if kind == "incidents" else files[kind]
    data = load(sp)
    table = indicator_table(data, indicators=["prevalence"])
    crimes = (data.crime_groups or data.crime_types)[:1] + data.crime_types[:1]
    comps = []
    for dom in data.spec.domains:
        cats = list(table.loc[table.domain == dom, "domain_value"].unique())
        for c in crimes:  # (concentration: of the crimes with a count)
            comps.append(("prevalence", c, dom, cats[0], cats[-1]))
            if data.respondents[f"n__{c}"].notna().any():
                comps.append(("concentration", c, dom, cats[-1], cats[0]))
    want = pd.concat([domain_difference(data, *c) for c in comps], ignore_index=True)
    got = SI.domain_differences(sp, comparisons=comps, chunk_rows=270)
    assert len(got) == len(want) == len(comps) >= 8 and list(got.columns) == list(want.columns)
    for c in ("indicator", "crime_type", "domain", "a", "b", "significant", "method"):
        assert got[c].tolist() == want[c].tolist(), c
    for c in ("estimate_a", "estimate_b", "difference", "se", "statistic", "df", "p_value", "ci_low", "ci_high"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   err_msg=c)
    assert (got["se"] > 0).all() and got["difference"].abs().gt(0).all()
    se = {(r.crime_type, r.domain, str(r.domain_value)): r.se for r in table.itertuples()}
    gap = [abs(r.se - np.hypot(se[(r.crime_type, r.domain, r.a)], se[(r.crime_type, r.domain, r.b)])) / r.se
           for r in got[got["indicator"] == "prevalence"].itertuples()
           if (r.crime_type, r.domain, r.a) in se and (r.crime_type, r.domain, r.b) in se]
    assert len(gap) >= 4 and max(gap) > (1e-3 if kind != "nopsu" else 0)  # (without PSUs: cells barely covary)


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("shuffled", [False, True])
def test_report_passes_stream_combined_units(tmp_path, shuffled):
    """With ``combine`` (two interviews of a household combined into one unit; the file sorted
    by the unit, or not: temporary buckets), the report's passes see the combined units as the
    in-memory load does: Lorenz curves, design summary and domain distributions, two-category
    differences equal the in-memory ones."""
    from survey import tables as st
    from survey.lorenz import lorenz

    one = _respondents(1200, seed=5)
    two = _respondents(1200, seed=6)
    for c in ("hhid", "stratum", "psu", "region", "tenure", "zone"):
        two[c] = one[c]
    second = np.random.default_rng(9).random(1200) < 0.7
    df = pd.concat([one.assign(quarter=1), two[second].assign(quarter=2)], ignore_index=True)
    df = (df.sample(frac=1.0, random_state=3) if shuffled else df.sort_values(["hhid", "quarter"], kind="stable"))
    path = tmp_path / "interviews.parquet"
    df.reset_index(drop=True).to_parquet(path, row_group_size=333)
    sp = tmp_path / "comb.yaml"
    sp.write_text(yaml.safe_dump(_combined_spec(path)))
    data = load(sp)
    got = SI.lorenz_curves(sp, crimes=["burglary"], chunk_rows=250)
    want = pd.concat([lorenz(data, "burglary", over=o) for o in ("population", "victims")], ignore_index=True)
    np.testing.assert_allclose(got["victimization_share"], want["victimization_share"], rtol=0, atol=1e-12)
    pairs = [("region", "household"), ("zone", "household")]
    s_got, d_got = SI.design_summary(sp, units=["household"], domains=pairs, chunk_rows=250)
    s_want, d_want = st.design_summary(data, ["household"], pairs)
    pd.testing.assert_frame_equal(s_got, s_want, check_dtype=False, rtol=1e-12)
    assert s_got["rows"].iloc[0] == 1200  # the combined units, not the interviews
    for g, w in zip(d_got, d_want, strict=True):
        np.testing.assert_allclose(g[["estimate", "se"]].to_numpy(float), w[["estimate", "se"]].to_numpy(float),
                                   rtol=1e-9)
    comps = [("prevalence", "burglary", "zone", "Island", "Mainland"), ("concentration", "burglary", "zone",
                                                                         "Mainland", "Island")]
    g = SI.domain_differences(sp, comparisons=comps, chunk_rows=250)
    w = st.domain_differences(data, comps)
    for c in ("difference", "se", "df", "p_value"):
        np.testing.assert_allclose(g[c].to_numpy(float), w[c].to_numpy(float), rtol=1e-9, err_msg=c)
