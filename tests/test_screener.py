"""Surveys other than the NCVS, end to end: the synthetic screener survey (`survey synth
--variant screener`: one respondent per household, 12-month and 5-year screeners on the
respondent record, no incident file, SPSS user-missing refused / don't know / no answer, region
labels wider than the file, with or without strata and PSU) against its known truth; the
codebook; the six notebooks and the batch on it; the static capability check of parameter sets;
the design note of a file without strata or PSU (manifest, reports, dashboards).

Hand computations use plain numpy / pandas on the population arrays and on the codes as
written (``pyreadstat.read_sav(user_missing=True)``), never the package's estimators.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pyreadstat
import pytest
import yaml

from survey import synth as S
from survey.batch import batch_main
from survey.cli import main as cli_main
from survey.codebook import codebook
from survey.dashboard import APPS, build
from survey.i18n import Translator
from survey.indicators import indicator_table
from survey.ingest import load
from survey.params import ParameterError, check_capabilities, counted_crimes, read_parameter_set
from survey.spec import load_yaml, read_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "specs" / "synthetic-screener.yaml"
PARAMS = ROOT / "parameters" / "synthetic-screener.yaml"
MISSING = [S.SCR_REFUSED, S.SCR_DONT_KNOW, S.SCR_NO_ANSWER]
GROUPS = ("household", "personal", "household_5y", "personal_5y")


# =============================================================================================
# the generator
# =============================================================================================
@pytest.fixture(scope="module")
def pop() -> S.Population:
    return S.make_population(5, 40_000)


@pytest.fixture(scope="module")
def sample(pop) -> S.ScreenerSample:
    return S.draw_screener_sample(pop, 4_000, 5)


def _unit_index(pop, sample, name):
    r = sample.respondents
    unit = next(t.unit for t in S.CRIME_TYPES if t.name == name)
    if unit == "household":
        return r["hhid"].to_numpy(dtype=np.int64) - 1
    first = np.concatenate([[0], np.cumsum(pop.households["nadults"].to_numpy())[:-1]])
    return first[r["hhid"].to_numpy(dtype=np.int64) - 1] + r["pid"].to_numpy(dtype=np.int64) - 1


def test_one_respondent_per_household_and_the_skip_patterns(sample):
    r = sample.respondents
    assert r["hhid"].is_unique
    assert {"stratum", "psu", "wt_household", "wt_person"} <= set(r.columns)
    for pre in S.SCREENER_TYPES.values():
        for item in (f"{pre}5", f"{pre}12"):
            assert set(r[item].unique()) <= {1, 2, *MISSING}, item
            assert r[item].notna().all()  # asked of every respondent
        yes = (r[f"{pre}12"] == 1).to_numpy()
        # "how many times" and "reported" are asked of 12-month victims only
        assert r.loc[yes, f"{pre}n"].notna().all() and r.loc[~yes, f"{pre}n"].isna().all()
        assert r.loc[yes, f"{pre}pol"].notna().all() and r.loc[~yes, f"{pre}pol"].isna().all()
        assert (r.loc[yes, f"{pre}n"] >= 1).all()
    never = (r["safedark"] == S.NEVER_OUT).to_numpy()
    assert never.sum() > 50
    assert r.loc[never, "safewould"].notna().all() and r.loc[~never, "safewould"].isna().all()
    assert r["region"].nunique() == 8


def test_answers_are_the_true_status_or_a_missing_code(pop, sample):
    r = sample.respondents
    for name, pre in S.SCREENER_TYPES.items():
        ix = _unit_index(pop, sample, name)
        count = pop.counts[name][ix]
        v5 = sample.victims_5y[name][ix]
        assert (v5 >= (count > 0)).all()  # a 12-month victim is a 5-year victim
        a12, a5, n = (r[f"{pre}{s}"].to_numpy() for s in ("12", "5", "n"))
        ok12, ok5 = np.isin(a12, [1, 2]), np.isin(a5, [1, 2])
        np.testing.assert_array_equal(a12[ok12] == 1, count[ok12] > 0)
        np.testing.assert_array_equal(a5[ok5] == 1, v5[ok5])
        given = (a12 == 1) & (n != S.TOO_MANY)
        np.testing.assert_array_equal(n[given], count[given])
        too_many = (a12 == 1) & (n == S.TOO_MANY)
        assert (count[too_many] >= S.TOO_MANY_FROM).all()
    # the person answers perceptions: safewould holds the true answer of those who never go out
    ix = _unit_index(pop, sample, "assault")
    true_safe = pop.persons["safedark"].to_numpy()[ix]
    never = (r["safedark"] == S.NEVER_OUT).to_numpy()
    shown = np.where(never, r["safewould"], r["safedark"])
    ok = np.isin(true_safe, [1, 2, 3, 4])
    np.testing.assert_array_equal(shown[ok], true_safe[ok])


def test_dont_know_is_drawn_at_random_whatever_the_true_answer(pop, sample):
    r = sample.respondents
    miss_v, miss_n = [], []
    for name, pre in S.SCREENER_TYPES.items():
        ix = _unit_index(pop, sample, name)
        for item, truth in ((f"{pre}12", pop.counts[name][ix] > 0), (f"{pre}5", sample.victims_5y[name][ix])):
            m = np.isin(r[item].to_numpy(), MISSING)
            miss_v.append(m[truth])
            miss_n.append(m[~truth])
    mv, mn = np.concatenate(miss_v), np.concatenate(miss_n)
    expected = sum(S.SCREENER_MISSING_RATES.values())
    for m in (mv, mn):
        se = np.sqrt(expected * (1 - expected) / m.size)
        assert abs(m.mean() - expected) < 4 * se, (m.mean(), expected, m.size)
    assert mv.size > 1_000


def test_truth_by_hand(pop, sample):
    t = S.screener_truth(pop, sample.victims_5y)

    def get(ind, crime, domain="overall", value="all"):
        hit = t[(t.indicator == ind) & (t.crime_type == crime) & (t.domain == domain)
                & (t.domain_value.astype(str) == value)]
        assert len(hit) == 1, (ind, crime, domain, value)
        return float(hit.value.iloc[0])

    c = pop.counts
    v5 = sample.victims_5y
    assert get("prevalence", "burglary") == pytest.approx(100 * np.mean(c["burglary"] > 0))
    assert get("incidence", "burglary") == pytest.approx(1000 * np.mean(np.minimum(c["burglary"], S.SCREENER_CAP)))
    assert get("prevalence", "household") == pytest.approx(
        100 * np.mean((c["burglary"] > 0) | (c["vehicle_theft"] > 0)))
    assert get("prevalence", "household_5y") == pytest.approx(100 * np.mean(v5["burglary"] | v5["vehicle_theft"]))
    female = pop.persons["sex"].to_numpy() == 2
    assert get("prevalence", "assault_5y", "sex", "Female") == pytest.approx(100 * np.mean(v5["assault"][female]))
    assert get("prevalence", "robbery", "sex", "Male") == pytest.approx(100 * np.mean(c["robbery"][~female] > 0))
    safe = pop.persons["safedark"].to_numpy()
    answered = np.isin(safe, [1, 2, 3, 4])
    assert get("feeling_safe", "safe_dark") == pytest.approx(100 * np.isin(safe[answered], [1, 2]).mean())
    worry = pop.persons["worryviol"].to_numpy()
    assert get("worry", "worry_violence") == pytest.approx(100 * (worry[np.isin(worry, [1, 2, 3, 4])] == 1).mean())
    # 5-year prevalence is at least the 12-month one in every cell
    for name in [*S.SCREENER_TYPES, *S.SCREENER_GROUPS]:
        a = t[(t.indicator == "prevalence") & (t.crime_type == name)].set_index(["domain", "domain_value"]).value
        b = t[(t.indicator == "prevalence") & (t.crime_type == f"{name}_5y")].set_index(["domain", "domain_value"]).value
        assert (b.loc[a.index] >= a).all() and (b > a).sum() > 10, name
    assert set(t.loc[t.domain == "region", "domain_value"]) == set(S.REGIONS.values())


def test_files_labels_missing_ranges_and_determinism(tmp_path):
    a = S.synth_screener(tmp_path / "a", households=1_500, seed=2, population_households=30_000)
    b = S.synth_screener(tmp_path / "b", households=1_500, seed=2, population_households=30_000)
    nd = S.synth_screener(tmp_path / "nd", households=1_500, seed=2, population_households=30_000, design=False)
    assert sorted(p.name for p in a.iterdir()) == ["respondents.sav", "truth.csv", "truth.json"]
    for f in ("respondents.sav", "truth.csv"):
        assert hashlib.sha256((a / f).read_bytes()).hexdigest() == hashlib.sha256((b / f).read_bytes()).hexdigest()
    df, meta = pyreadstat.read_sav(str(a / "respondents.sav"), user_missing=True)
    assert len(meta.variable_value_labels["region"]) == 30 and df["region"].nunique() == 8
    for item in ("burg12", "veh5", "aslpol", "safedark", "safewould", "worryburg"):
        codes = sorted(r["lo"] for r in meta.missing_ranges[item])
        assert codes == MISSING, item
    assert "burgn" not in meta.missing_ranges  # 97 "too many to remember" is an answer, not missing
    assert meta.variable_value_labels["burgn"][S.TOO_MANY] == "Too many to remember"
    assert meta.variable_value_labels["safedark"][S.NEVER_OUT].startswith("Never goes out")
    df_nd, _ = pyreadstat.read_sav(str(nd / "respondents.sav"))
    assert "stratum" not in df_nd and "psu" not in df_nd
    assert df_nd[["wt_household", "wt_person"]].notna().all().all()
    info = json.loads((nd / "truth.json").read_text())
    assert "no strata or PSU" in info["sample"]["design"]


def test_streamed_screener_equals_the_population_built_whole(monkeypatch):
    """`survey synth --variant screener` never holds the population: with chunks of about 5,000
    households (9 chunks here) the respondent file, the design summary and the truth are those
    of the population built whole, and the truth's numerators are the population's own counts
    (12-month and 5-year victims, adults), so the sums over chunks lose and double nothing."""
    monkeypatch.setattr(S, "CHUNK_HOUSEHOLDS", 5_000)
    whole = S.make_population(4, 40_000)
    assert len(S._area_chunks(whole.areas["households"].to_numpy())) >= 8
    sample = S.draw_screener_sample(whole, 2_000, 4)
    v5 = sample.victims_5y
    made, make_chunk = [], S._make_chunk

    def recorded(*a, **k):
        part = make_chunk(*a, **k)
        made.append(len(part.households))
        return part

    monkeypatch.setattr(S, "_make_chunk", recorded)
    monkeypatch.setattr(S, "make_population", None)  # the streamed path never builds it whole
    pop, streamed, truth = S.synth_screener_streamed(2_000, 4, 40_000)
    assert sum(made) == 40_000 and max(made) <= 5_000 and len(made) >= 8
    assert pop.info == whole.info and len(pop.households) == 0 and streamed.victims_5y == {}
    pd.testing.assert_frame_equal(streamed.respondents, sample.respondents)
    assert streamed.info == sample.info
    pd.testing.assert_frame_equal(truth, S.screener_truth(whole, v5), check_exact=False, rtol=1e-12)
    overall = truth[(truth.domain == "overall") & (truth.indicator == "prevalence")].set_index("crime_type")
    persons = len(whole.persons)
    for name in S.SCREENER_TYPES:
        n_units = 40_000 if next(t.unit for t in S.CRIME_TYPES if t.name == name) == "household" else persons
        assert overall.loc[name, "numerator"] == (whole.counts[name] > 0).sum()
        assert overall.loc[f"{name}_5y", "numerator"] == v5[name].sum()
        assert overall.loc[f"{name}_5y", "denominator"] == n_units
        assert (v5[name] >= (whole.counts[name] > 0)).all()
    assert overall.loc["household_5y", "numerator"] == (v5["burglary"] | v5["vehicle_theft"]).sum()
    # the respondents' answers are their own units' values (hand lookup in the whole population)
    r = streamed.respondents
    first = np.concatenate([[0], np.cumsum(whole.households["nadults"].to_numpy())[:-1]])
    p_ix = first[r["hhid"].to_numpy() - 1] + r["pid"].to_numpy().astype(np.int64) - 1
    ok = np.isin(r["asl12"].to_numpy(), [1, 2])
    np.testing.assert_array_equal(r["asl12"].to_numpy()[ok] == 1, whole.counts["assault"][p_ix][ok] > 0)
    ok = np.isin(r["burg5"].to_numpy(), [1, 2])
    np.testing.assert_array_equal(r["burg5"].to_numpy()[ok] == 1, v5["burglary"][r["hhid"].to_numpy() - 1][ok])


def test_streamed_screener_files_are_deterministic(tmp_path, monkeypatch):
    """Chunks from their own random streams: the same seed gives the same bytes, another seed
    another sample and truth."""
    monkeypatch.setattr(S, "CHUNK_HOUSEHOLDS", 8_000)
    a = S.synth_screener(tmp_path / "a", households=1_500, seed=9, population_households=40_000)
    b = S.synth_screener(tmp_path / "b", households=1_500, seed=9, population_households=40_000)
    c = S.synth_screener(tmp_path / "c", households=1_500, seed=10, population_households=40_000)
    assert json.loads((a / "truth.json").read_text())["population"]["chunk_households"] == 8_000

    def digest(folder):
        return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in ("respondents.sav", "truth.csv")}

    assert digest(a) == digest(b)
    assert all(digest(a)[f] != digest(c)[f] for f in digest(a))


def test_cli_synth_screener(tmp_path, capsys):
    out = tmp_path / "scr"
    assert cli_main(["synth", "--variant", "screener", "--no-design", "--out", str(out), "--households", "1000",
                     "--population-households", "20000", "--seed", "4"]) == 0
    assert "screener survey" in capsys.readouterr().out
    assert (out / "respondents.sav").exists()
    assert cli_main(["synth", "--no-design", "--out", str(tmp_path / "x"), "--households", "1000"]) == 2
    assert "--variant screener" in capsys.readouterr().err


# =============================================================================================
# the codebook
# =============================================================================================
def test_codebook_of_the_screener_spec(tmp_path):
    data = load(SPEC)
    cb = codebook(data)
    raw, _ = pyreadstat.read_sav(str(ROOT / "data" / "synthetic-screener" / "respondents.sav"), user_missing=True)
    b12 = cb[cb.variable == "burg12"]
    assert set(b12.role) == {"screener:burglary"}
    assert dict(zip(b12.value, b12.n)) == {f"{k:g}": int(v) for k, v in raw["burg12"].value_counts().items()}
    assert b12.set_index("value").loc["8", "value_label"] == "Don't know (user-missing)"
    assert set(cb.loc[cb.variable == "burgn", "role"]) == {"count:burglary"}
    assert set(cb.loc[cb.variable == "burgpol", "role"]) == {"reported to police:burglary"}
    assert set(cb.loc[cb.variable == "safewould", "role"]) == {"follow-up:safe_dark"}
    region = cb[(cb.variable == "region") & (cb.role == "domain:region")]
    assert len(region) == 8 and region.n.sum() == len(raw)  # the 8 regions present, not the 30 labels
    assert cli_main(["codebook", str(SPEC), "--out", str(tmp_path)]) == 0
    assert "Don&#x27;t know (user-missing)" in (tmp_path / "codebook.html").read_text()


# =============================================================================================
# estimates against the known truth (a larger sample: 16,000 issued households)
# =============================================================================================
@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """16,000 issued households from a population of 200,000 (one chunk: the files are those of
    the generator before it streamed; benchmarks/coverage_screener.py compares populations
    streamed in several chunks over many seeds)."""
    folder = tmp_path_factory.mktemp("screener-big")
    data_dir = S.synth_screener(folder / "data", households=16_000, seed=11, population_households=200_000)
    raw = load_yaml(SPEC.read_text())
    for f in raw["files"].values():
        f["path"] = str(data_dir / "respondents.sav")
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    data = load(spec)
    table = indicator_table(data, publication="none",
                            indicators=["prevalence", "incidence", "feeling_safe", "worry"])
    truth = pd.read_csv(data_dir / "truth.csv")
    answers, _ = pyreadstat.read_sav(str(data_dir / "respondents.sav"), user_missing=True)
    return data, table, truth, answers


def _merged(table, truth):
    t = table.assign(domain_value=table.domain_value.astype(str))
    tr = truth.assign(domain_value=truth.domain_value.astype(str))
    m = t.merge(tr, on=["indicator", "crime_type", "domain", "domain_value"], validate="one_to_one")
    m["z"] = (m.estimate - m.value) / m.se
    m["covered"] = (m.ci_low <= m.value) & (m.value <= m.ci_high)
    return m[m.n_cases >= 20]


def test_perceptions_cover_the_truth(big):
    _, table, truth, answers = big
    m = _merged(table[table.indicator.isin(["feeling_safe", "worry"])], truth)
    assert len(m) > 40
    assert m.z.abs().max() < 3.5, m.sort_values("z")[["crime_type", "domain", "domain_value", "z"]]
    assert m.covered.mean() >= 0.9
    # "never goes out" answered by the follow-up; 7/8/9 out of the base: the base by hand
    shown = answers["safedark"].where(answers["safedark"] != S.NEVER_OUT, answers["safewould"])
    base = int(shown.isin([1, 2, 3, 4]).sum())
    row = table[(table.indicator == "feeling_safe") & (table.domain == "overall")].iloc[0]
    assert int(row.n) == base


def test_prevalence_leaves_dont_know_out_of_the_base(big):
    """Each screener's base is the respondents who answered yes or no (refused, don't know and
    no answer are user-missing in the file); the estimate is the weighted share of yes."""
    data, table, _, answers = big
    v = data.spec.victimization
    for t in v.types:
        x = answers[t.victim.variable]
        w = answers["wt_household" if t.unit == "household" else "wt_person"]
        known = x.isin([1, 2])
        row = table[(table.indicator == "prevalence") & (table.crime_type == t.name) & (table.domain == "overall")]
        assert int(row.n.iloc[0]) == int(known.sum()), t.name
        expected = 100 * float((w * (x == 1))[known].sum() / w[known].sum())
        assert float(row.estimate.iloc[0]) == pytest.approx(expected, rel=1e-9), t.name


def test_group_prevalence_base_is_respondents_who_answered_every_member(big):
    data, table, _, answers = big
    v = data.spec.victimization
    for g, members in v.groups.items():
        items = [next(t.victim.variable for t in v.types if t.name == m) for m in members]
        known = answers[items].isin([1, 2]).all(axis=1)
        row = table[(table.indicator == "prevalence") & (table.crime_type == g) & (table.domain == "overall")]
        assert int(row.n.iloc[0]) == int(known.sum()), g


def test_victimization_estimates_cover_the_truth(big):
    _, table, truth, _ = big
    m = _merged(table[table.indicator.isin(["prevalence", "incidence"])], truth)
    m = m[~m.crime_type.isin(GROUPS)]
    assert set(m.crime_type) >= {"burglary", "assault", "burglary_5y", "assault_5y", "robbery_5y"}
    assert len(m) > 150
    assert m.z.abs().max() < 3.5, m.sort_values("z")[["indicator", "crime_type", "domain", "domain_value", "z"]]
    assert m.covered.mean() >= 0.9
    # no systematic bias: the mean standardized error of the types' overall prevalence
    o = m[(m.domain == "overall") & (m.indicator == "prevalence")]
    # counting "don't know" as "no" shifts every type down: mean z -0.9 on this sample (+0.4 without)
    assert abs(o.z.mean()) < 0.75, o[["crime_type", "estimate", "value", "z"]]


def test_group_estimates_cover_the_truth(big):
    _, table, truth, _ = big
    m = _merged(table[table.indicator.isin(["prevalence", "incidence"])], truth)
    m = m[m.crime_type.isin(GROUPS)]
    assert len(m) > 60
    assert m.z.abs().max() < 3.5, m.sort_values("z")[["indicator", "crime_type", "domain", "domain_value", "z"]]
    assert m.covered.mean() >= 0.9


# =============================================================================================
# the static capability check (before any kernel starts)
# =============================================================================================
def _write_set(tmp_path, name, **values) -> Path:
    values.setdefault("spec", str(SPEC))
    values.setdefault("output_dir", str(tmp_path / "out" / name))
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump({"name": name, **values}, sort_keys=False))
    return p


def test_counted_crimes_of_the_screener_spec():
    spec = read_spec(SPEC)
    assert counted_crimes(spec) == ["burglary", "vehicle_theft", "assault", "robbery", "household", "personal"]
    assert counted_crimes(read_spec(ROOT / "specs" / "synthetic.yaml"))[-1] == "violent"


def test_check_passes_for_the_committed_screener_set(capsys):
    assert batch_main(["--check", str(PARAMS)]) == 0
    assert "run 'synthetic-screener'" in capsys.readouterr().out


def test_check_fails_in_one_line_when_the_notebooks_cannot_run(tmp_path, capsys, monkeypatch):
    import survey.batch as B

    def no_kernel(*a, **k):  # pragma: no cover - the check must not get here
        raise AssertionError("a kernel was started")

    monkeypatch.setattr(B, "_execute_notebook", no_kernel)
    repeat_5y = _write_set(tmp_path, "repeat-5y", crime_types=["burglary_5y", "household_5y"],
                           notebooks=["ingest", "repeat"])
    raw = load_yaml(SPEC.read_text())
    raw.pop("victimization")
    raw["perception"] = [p for p in raw["perception"] if "crime_type" not in p]
    no_vict = tmp_path / "no-victimization.yaml"
    raw["files"] = {k: {**f, "path": str(ROOT / "data" / "synthetic-screener" / "respondents.sav")}
                    for k, f in raw["files"].items()}
    no_vict.write_text(yaml.safe_dump(raw, sort_keys=False))
    no_vict_set = _write_set(tmp_path, "no-vict", spec=str(no_vict))
    raw2 = dict(raw, perception=[])
    no_perc = tmp_path / "no-perception.yaml"
    no_perc.write_text(yaml.safe_dump(raw2, sort_keys=False))
    fear_set = _write_set(tmp_path, "fear", spec=str(no_perc), notebooks=["ingest", "fear"])
    cases = [
        (repeat_5y, "'repeat' needs crime types with a count item", "burglary_5y, household_5y"),
        (no_vict_set, "'victimization' estimates victimization", "no victimization section"),
        (fear_set, "'fear' needs perception items", "declares none"),
    ]
    for path, what, detail in cases:
        code = batch_main(["--check", str(path)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1
        assert len(err) == 1 and what in err[0] and detail in err[0] and str(path.name) in err[0], err
        assert not (tmp_path / "out").exists()
    # the same sets fail `survey run` before any kernel (exit 1, nothing written)
    assert batch_main([str(repeat_5y)]) == 1
    assert not (tmp_path / "out").exists()
    # --notebooks on the command line is checked too; without an explicit list the run is fine
    ok = _write_set(tmp_path, "five-years", crime_types=["burglary_5y"])
    assert read_parameter_set(ok).notebooks[3] == "repeat"
    assert batch_main(["--check", str(ok), "--notebooks", "repeat"]) == 1
    assert "'repeat' needs crime types with a count item" in capsys.readouterr().err
    with pytest.raises(ParameterError, match="needs crime types with a count item"):
        check_capabilities({"spec": str(SPEC), "crime_types": ["assault_5y"]}, ["repeat"])
    check_capabilities({"spec": str(SPEC), "crime_types": ["assault_5y", "assault"]}, ["repeat"])


def test_check_fails_on_a_cap_rule_the_spec_cannot_take(tmp_path, capsys):
    # "too many to remember" takes the cap in the screener spec: no cap rule leaves it without a value
    no_cap = _write_set(tmp_path, "no-cap", cap_rule="none")
    assert batch_main(["--check", str(no_cap)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cap_rule: none, but in spec synthetic-screener.yaml 'too many to remember' takes the cap" \
        in err[0] and "'burgn'" in err[0]
    # a spec with screeners only has no repeat counts to cap
    raw = load_yaml(SPEC.read_text())
    v = raw["victimization"]
    v["types"] = [t for t in v["types"] if "count" not in t]
    v["groups"] = {g: m for g, m in v["groups"].items() if g.endswith("_5y")}
    v.pop("cap")
    raw["perception"] = [p for p in raw["perception"] if "crime_type" not in p]
    raw["files"] = {k: {**f, "path": str(ROOT / "data" / "synthetic-screener" / "respondents.sav")}
                    for k, f in raw["files"].items()}
    only = tmp_path / "screeners-only.yaml"
    only.write_text(yaml.safe_dump(raw, sort_keys=False))
    capped = _write_set(tmp_path, "capped", spec=str(only), cap_rule="percentile 98")
    assert batch_main(["--check", str(capped)]) == 1
    assert "has no count item (screeners only): there are no repeat counts to cap" in capsys.readouterr().err
    assert batch_main(["--check", str(_write_set(tmp_path, "uncapped", spec=str(only)))]) == 0
    assert batch_main(["--check", str(_write_set(tmp_path, "fixed", cap_rule="fixed 5"))]) == 0


# =============================================================================================
# the notebooks and the batch on the screener survey (session fixture: real papermill runs)
# =============================================================================================
def _outputs(nb_path: Path) -> str:
    nb = nbformat.read(nb_path, as_version=4)
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            if o.get("output_type") == "error":
                parts.append(f"ERROR {o.get('ename')}")
            data = o.get("data", {})
            parts.append(str(data.get("text/markdown", "")) + str(data.get("text/plain", "")) + str(o.get("text", "")))
    return "\n".join(parts)


def test_every_notebook_runs_on_the_screener_survey(screener_publication):
    run = screener_publication / "synthetic-screener"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "succeeded"
    assert [n["name"] for n in manifest["notebooks"]] == ["ingest", "victimization", "fear", "repeat", "risk",
                                                          "summary"]
    assert manifest["design"]["kind"] == "full" and manifest["design"]["note"] == ""
    table = pd.read_parquet(run / "indicators.parquet")
    fams = set(table.indicator)
    assert {"prevalence", "incidence", "concentration", "repeat_victims", "feeling_safe", "worry",
            "reporting_rate_victims"} <= fams
    five = set(table.loc[table.crime_type == "burglary_5y", "indicator"])
    assert "prevalence" in five  # prevalence-only: no count, no reporting item
    assert not five & {"incidence", "concentration", "repeat_victims", "reporting_rate_victims", "gini"}
    assert (run / "lorenz.csv").exists() and (run / "codebook.csv").exists()
    regions = table[(table.indicator == "prevalence") & (table.crime_type == "household") & (table.domain == "region")]
    assert len(regions) == 8  # labels for 30 regions, 8 in the file: no empty cells published
    for nb in manifest["notebooks"]:
        assert "ERROR" not in _outputs(run / f"{nb['name']}.ipynb")


def test_screener_only_selection_says_why_in_one_sentence(screener_publication):
    run = screener_publication / "screener-5y"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and len(manifest["notebooks"]) == 6
    text = _outputs(run / "repeat.ipynb")
    sentences = re.findall(r"[^\n]*no count of how many times[^\n]*", text)
    # repeat victimization, Lorenz curves, Gini, concentration by domain, multiple victimization
    assert len(sentences) == 5, sentences
    assert all(s.count(". ") == 0 for s in sentences)  # one sentence each
    assert not (run / "lorenz.csv").exists()
    vict = _outputs(run / "victimization.ipynb")
    assert "Incidence and concentration: not available for this survey" in vict
    table = pd.read_parquet(run / "indicators.parquet")
    assert set(table.crime_type) >= {"burglary_5y", "household_5y"}
    assert "incidence" not in set(table.indicator)
    assert "Repeat victimization: not available" in (run / "repeat.html").read_text()


def test_no_design_is_stated_in_manifest_reports_and_workbook(screener_publication):
    run = screener_publication / "screener-nodesign"
    manifest = json.loads((run / "manifest.json").read_text())
    d = manifest["design"]
    assert d["kind"] == "srswr" and d["strata"] == [] and d["psu"] == []
    assert d["note"].startswith("simple random sampling with replacement assumed: the file has no strata or PSU")
    for nb in manifest["notebooks"]:
        html_text = (run / nb["html"]).read_text()
        assert html_text.count('class="survey-design-note"') == 1
        assert "Simple random sampling with replacement assumed" in html_text
    for nb in ("ingest", "summary"):
        assert "simple random sampling with replacement assumed" in _outputs(run / f"{nb}.ipynb"), nb
    meta = json.loads((run / "indicators.meta.json").read_text())
    assert meta["design"]["kind"] == "srswr"
    notes = pd.read_excel(run / "indicators.xlsx", sheet_name="notes", nrows=20)
    assert notes.loc[notes.item == "Design", "value"].iloc[0] == d["note"]
    # with strata and PSU, nothing is added
    full = screener_publication / "synthetic-screener"
    assert 'class="survey-design-note"' not in (full / "victimization.html").read_text()
    # standard errors without the clusters: the same estimates, smaller design effects
    t_nd = pd.read_parquet(run / "indicators.parquet").set_index(["indicator", "crime_type", "domain", "domain_value"])
    t_full = pd.read_parquet(full / "indicators.parquet").set_index(["indicator", "crime_type", "domain", "domain_value"])
    key = ("prevalence", "household_5y", "overall", "all")
    assert t_nd.loc[key, "estimate"] == pytest.approx(t_full.loc[key, "estimate"], rel=1e-12)
    assert t_nd.loc[key, "se"] != pytest.approx(t_full.loc[key, "se"], rel=1e-6)


# =============================================================================================
# the dashboards on those runs
# =============================================================================================
@pytest.mark.parametrize("name", list(APPS))
def test_every_dashboard_renders_on_the_screener_runs(screener_publication, name):
    for run in ("synthetic-screener", "screener-5y", "screener-nodesign"):
        if name in ("repeat", "risk") and run == "screener-nodesign":
            continue  # that run has no repeat or risk notebook
        app = build(name, root=screener_publication, run=run)
        v = app.view
        assert "None" not in v.title, (run, name, v.title)
        if name == "repeat" and run == "screener-5y":
            # no count of how many times: no repeat victims or Lorenz curves, but multiple
            # victimization (victims of 2+ types of a group) comes from the screeners alone
            assert app.figure_specs and v.rows
            assert app.state["indicator"] == "multiple_victimization", app.state
        else:
            assert app.figure_specs and v.rows, (run, name, v.message)


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_dashboards_show_the_design_note(screener_publication, lang):
    tr = Translator(lang)
    note = tr("note.design.srswr")
    assert note != Translator("en")("note.design.srswr") or lang == "en"
    for name in ("overview", "victimization", "fear"):
        app = build(name, root=screener_publication, run="screener-nodesign", language=lang)
        assert note in app.view.notes
        assert "svy-design" in app.design_note.value
        assert app.design_note.value.count("<p") == 1
        assert tr("note.design.srswr").split(".")[0] in app.design_note.value.replace("&#x27;", "'")
        full = build(name, root=screener_publication, run="synthetic-screener", language=lang)
        assert full.design_note.value == "" and note not in full.view.notes
    # a 5-year-only run has no counts, but its repeat dashboard shows multiple victimization
    rep = build("repeat", root=screener_publication, run="screener-5y", language=lang)
    assert rep.state["indicator"] == "multiple_victimization" and rep.view.rows


# =============================================================================================
# in a real browser (skips without playwright and Chromium, as tests/test_dashboard_browser.py)
# =============================================================================================
def test_dashboards_in_the_browser_on_the_screener_runs(screener_publication, tmp_path):
    """`survey dashboard` served over the screener publication, driven by headless Chromium:
    every dashboard draws with no error (the repeat dashboard of the 5-year run: multiple
    victimization, from the screeners); choosing the run without strata or PSU shows the design note."""
    from _browser import chromium_context, need_browser, served_dashboards

    from survey import serve

    need_browser()
    dashboards = served_dashboards(tmp_path / "dashboards")
    with serve.ServerProcess(screener_publication, "--max-kernels", "60", "--max-kernels-per-client", "60",
                             dashboards=dashboards, timeout=240, log_path=tmp_path / "voila.log") as srv, \
            chromium_context(viewport={"width": 1280, "height": 1000}) as ctx:
        errors: list[str] = []
        for name in APPS:
            page = ctx.new_page()
            page.on("console", lambda m: m.type == "error" and errors.append(m.text))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(srv.base + f"voila/render/{name}.ipynb")
            root = f".svy-dashboard-{name}"
            page.wait_for_selector(f"{root} .svy-title h2")
            app = build(name, root=srv.outputs)
            assert app.state["run"] == "screener-5y"
            title = page.inner_text(f"{root} .svy-title")
            assert title.strip() == app.view.title and "None" not in title
            body = page.inner_text("body")
            assert "Traceback" not in body
            # every dashboard draws (the 5-year run's repeat dashboard: multiple victimization)
            page.wait_for_selector(f"{root} .svy-chart .js-plotly-plot")
            if name in ("overview", "victimization", "fear"):
                assert page.locator(f"{root} .svy-design-note p").count() == 0
                label = next(lab for lab, code in app.widgets["run"].options if code == "screener-nodesign")
                page.select_option(f"{root} .svy-filter-run select", label=label)
                page.wait_for_selector(f"{root} .svy-design-note p.svy-design")
                note = page.inner_text(f"{root} .svy-design-note")
                assert note.strip() == Translator("en")("note.design.srswr")
                page.screenshot(path=str(tmp_path / f"{name}-nodesign.png"), full_page=True)
            page.close()
        assert not errors, errors


@pytest.mark.parametrize("template", ["icvs", "csew"])
def test_templates_run_end_to_end(screener_publication, template):
    """The shipped templates (screeners and counts on the respondent record): the notebooks run,
    the codebook is written, and the indicator table has the types' prevalence."""
    run = screener_publication / f"template-{template}"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "succeeded"
    cb = pd.read_csv(run / "codebook.csv")
    assert cb.role.fillna("").str.startswith(("screener:", "count:")).any()
    table = pd.read_parquet(run / "indicators.parquet")
    spec = read_spec(manifest["parameters"]["resolved"]["spec"])
    assert set(spec.victimization.type_names()) <= set(table.loc[table.indicator == "prevalence", "crime_type"])
    for nb in manifest["notebooks"]:
        assert "ERROR" not in _outputs(run / f"{nb['name']}.ipynb")
    app = build("repeat", root=screener_publication, run=f"template-{template}")
    assert app.figure_specs and "None" not in app.view.title


def test_predictive_margins_with_value_labels_wider_than_the_file():
    """Region has value labels for 30 regions and 8 in the file: the model leaves out the empty
    levels and the margins are given for the 8 present.  With region as the only predictor the
    model is saturated, so each margin is the weighted share of victims in the region (by hand)."""
    import warnings

    data = load(SPEC)
    d = data.design("household")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = d.glm("victim__household_5y ~ C(region)", family="binomial")
        m = fit.predictive_margins("region")
    r = data.respondents
    assert len(r["region"].cat.categories) == 30
    y, w = r["victim__household_5y"].to_numpy(), r["wt_household"].to_numpy()
    ok = ~np.isnan(y)
    by_hand = pd.Series(w[ok] * y[ok]).groupby(r["region"].to_numpy()[ok]).sum() / \
        pd.Series(w[ok]).groupby(r["region"].to_numpy()[ok]).sum()
    assert list(m["level"]) == [c for c in r["region"].cat.categories if c in set(r["region"])]
    np.testing.assert_allclose(m["estimate"].to_numpy(), by_hand.loc[list(m["level"])].to_numpy(), rtol=1e-7)
