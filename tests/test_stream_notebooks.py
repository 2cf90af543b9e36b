"""A run whose engine streams publishes what an in-memory run publishes wherever the streamed
sums give it: a real batch run (papermill) with ``engine: {mode: stream}`` on a small Parquet
survey executes the ingest, victimization, fear, repeat, summary and small-area notebooks on the
streamed survey (survey.tables), writes their HTML reports and the Excel workbook, and its
``indicators.csv`` and ``small_areas.csv`` equal those of an in-memory run of the same
parameter set (the reference: survey.indicators, itself checked against R) to 1e-9, and so do
its Lorenz curves (``lorenz.csv``); the ingest report's design summary and domain
distributions and the victimization report's two-category differences are streamed and equal
the in-memory ones.  The notebooks that need the rows in memory (risk models, evaluation) are
left out with their reasons, in the manifest, the run's result and the summary report (in the
run's language)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_stream_indicators import _respondents, _spec

from survey import tables as st
from survey.indicators import INDICATORS
from survey.indicators import indicator_table as memory_table
from survey.indicators import perception_by_victimization as memory_perception
from survey.ingest import load
from survey.stream_indicators import STREAM_FAMILIES

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ["sex", "region", "zone", "sex_by_region"]
NOT_STREAMED = [f for f in INDICATORS if f not in STREAM_FAMILIES]
"""Families the stream leaves out (none: the Gini indices stream from the histogram of the counts)."""
NUMBERS = ["estimate", "se", "ci_low", "ci_high", "cv", "deff", "weighted_base"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("streamnb")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    path = root / "respondents.parquet"
    frame = _respondents(n=2500, seed=11)
    frame["year"] = 2020 + frame["hhid"] % 4  # (an evaluation section needs a period column)
    frame.to_parquet(path, row_group_size=300)
    spec = root / "taylor.yaml"
    spec.write_text(yaml.safe_dump(_spec(path, False)))
    rng = np.random.default_rng(5)
    pd.DataFrame({"area": [str(i) for i in range(1, 6)], "x": rng.normal(size=5)}).to_csv(root / "areas.csv",
                                                                                           index=False)
    return root, spec


def _parameter_set(root, spec, name, **extra):
    raw = {"name": name, "spec": str(spec), "domains": DOMAINS, "seed": 1,
           "small_areas": {"indicator": "prevalence", "crime_type": "burglary", "area": "region",
                           "auxiliary": str(root / "areas.csv"), "covariates": ["x"]}, **extra}
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def _run(path, root):
    from survey.batch import execute_run

    res = execute_run(str(path), notebook_dir=str(ROOT / "notebooks"), root=str(root), redirect_stderr=False)
    assert res["status"] == "succeeded", res.get("error")
    return res, root / "outputs" / path.stem


@pytest.fixture(scope="module")
def runs(project):
    root, spec = project
    streamed = _parameter_set(root, spec, "streamed", language="fr", engine={"mode": "stream", "chunk_rows": 700},
                              compare={"spec": str(spec), "period": "2024"},
                              evaluation={"outcome": "victim:burglary", "treated": "region in [1, 2]",
                                          "period": "year", "start": 2022})
    memory = _parameter_set(root, spec, "memory", engine={"mode": "memory"}, notebooks=["victimization", "repeat"])
    return {"stream": _run(streamed, root), "memory": _run(memory, root)}


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_streamed_run_publishes_the_reports_and_leaves_out_what_needs_memory(runs, project):
    res, out = runs["stream"]
    ran = ["ingest", "victimization", "fear", "repeat", "summary", "local"]
    assert res["engine"].startswith("engine: stream (mode: stream)")
    assert [n["name"] for n in res["notebooks"]] == ran
    assert [s["notebook"] for s in res["skipped"]] == ["risk", "evaluation"]
    assert all("every respondent row" in s["reason"] and "memory" in s["reason"] for s in res["skipped"])
    from survey.batch import _status_line

    assert "(streamed; left out: risk, evaluation" in _status_line(res)
    for nb in ran:
        assert (out / f"{nb}.html").stat().st_size > 10_000, nb
    assert not (out / "risk.html").exists() and not (out / "evaluation.csv").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"]["mode"] == "stream" and manifest["engine"]["chunk_rows"] == 700
    assert manifest["engine"]["skipped"] == res["skipped"]
    assert [n["name"] for n in manifest["notebooks"]] == ran and all(n.get("html") for n in manifest["notebooks"])
    assert manifest["parameters"]["resolved"]["engine"] == {"mode": "stream", "chunk_rows": 700}
    assert any(r["step"] == "read" and "(streamed)" in r["detail"] for r in manifest["row_accounting"])
    # the workbook, as in memory: one sheet per family, numbers as numbers
    from openpyxl import load_workbook

    wb = load_workbook(out / "indicators.xlsx", read_only=True)
    assert len(wb.sheetnames) >= 8
    assert manifest["indicator_table"]["excel"] == "indicators.xlsx"
    # the reports say, in the run's language, what the stream leaves out
    summary = (out / "summary.html").read_text(encoding="utf-8")
    assert "Moteur\u202f: lecture en flux" in summary
    assert "les modèles de risque ajustent des régressions sur chaque ligne de répondant" in summary
    assert "Facteurs de risque" in summary and "l’évaluation du programme ajuste ses modèles" in summary
    assert "needs the survey in memory" not in summary
    repeat = (out / "repeat.html").read_text(encoding="utf-8")
    assert "Les courbes de Lorenz classent chaque répondant" not in repeat  # (streamed now: no message)
    assert "Les coefficients de Gini classent" not in repeat
    assert (out / "lorenz.csv").exists()
    vic = (out / "victimization.html").read_text(encoding="utf-8")
    assert "Les écarts entre les deux catégories" not in vic  # (streamed now: the cells' covariance)
    assert "Significatif (seuil 5 %)" in vic or "Significatif (seuil 5 %)" in vic  # the differences' table
    ingest = (out / "ingest.html").read_text(encoding="utf-8")
    assert "colonnes lues en" in ingest and "(lecture en flux)" in ingest
    assert not (out / "codebook.csv").exists()  # (its frequencies count every row)
    # the design summary and the domains' distributions, streamed: the in-memory designs' numbers
    from survey.report import Reader

    mem = load(project[1])
    R = Reader("fr", mem.spec)
    for unit in ("household", "person"):
        d = mem.design(unit)
        desc = R("report.ing.design_desc", n=R.count(d.n), strata=R.count(d.n_strata), psu=R.count(d.n_psu),
                 df=R.count(d.df))
        assert desc in ingest, desc
        assert R.count(float(d.w.sum())) in ingest
    assert "R\\u00e9partition pond\\u00e9r\\u00e9e de chaque ventilation" in ingest  # the domains' figure (JSON)
    # the comparison with a streamed wave: independent samples, and it says so
    cmp = pd.read_csv(out / "comparison.csv")
    assert len(cmp) > 50 and (cmp["method"] == st.STREAMED_METHOD).all()
    np.testing.assert_allclose(cmp["difference"].dropna(), 0.0, atol=1e-12)  # the same file as the earlier wave
    assert "les UPE et les ménages communs aux deux vagues ne sont pas recherchés" in summary


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_streamed_run_tables_equal_the_in_memory_run(runs):
    """indicators.csv and small_areas.csv of the streamed run = those of the in-memory run of the
    same parameters (the in-memory table has the Gini families besides: they sort every row)."""
    meta = [json.loads((runs[k][1] / "indicators.meta.json").read_text()) for k in ("stream", "memory")]
    assert meta[0]["fingerprint"] == meta[1]["fingerprint"]  # the same table parameters
    got = pd.read_csv(runs["stream"][1] / "indicators.csv", keep_default_na=False, na_values=[""])
    want = pd.read_csv(runs["memory"][1] / "indicators.csv", keep_default_na=False, na_values=[""])
    assert set(want["indicator"]) - set(got["indicator"]) == set(NOT_STREAMED)
    want = want[~want["indicator"].isin(NOT_STREAMED)].reset_index(drop=True)
    assert len(got) == len(want) > 400
    assert list(got.columns) == list(want.columns)
    assert set(got["domain"]) >= {"overall", *DOMAINS, "victim__personal", "victim__any_5y"}
    for c in got.columns:
        if c in NUMBERS or c == "df":  # (the effective df of incidence: a Satterthwaite fraction)
            np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-12,
                                       equal_nan=True, err_msg=c)
        else:
            assert got[c].astype(str).tolist() == want[c].astype(str).tolist(), c
    # the Lorenz curves of the repeat report: streamed (the weighted histogram of the counts)
    lz_got = pd.read_csv(runs["stream"][1] / "lorenz.csv")
    lz_want = pd.read_csv(runs["memory"][1] / "lorenz.csv")
    assert len(lz_got) == len(lz_want) >= 101 * 2
    assert lz_got.drop(columns=["population_share", "victimization_share"]).equals(
        lz_want.drop(columns=["population_share", "victimization_share"]))
    for c in ("population_share", "victimization_share"):
        np.testing.assert_allclose(lz_got[c], lz_want[c], rtol=0, atol=1e-12, err_msg=c)
    assert lz_got["victimization_share"].between(0, 1).all() and (lz_got["victimization_share"] > 0).any()
    sa_got = pd.read_csv(runs["stream"][1] / "small_areas.csv")
    sa_want = pd.read_csv(runs["memory"][1] / "small_areas.csv")
    assert len(sa_got) == 5
    for c in ("direct", "direct_se", "eblup", "rmse"):
        np.testing.assert_allclose(sa_got[c].to_numpy(float), sa_want[c].to_numpy(float), rtol=1e-9, err_msg=c)


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_notebook_tables_of_a_streamed_survey_equal_memory(project, tmp_path):
    """What the notebooks ask of survey.tables on a streamed survey (a subset of the run's table,
    the perceptions by victim status, a selection outside it) equals the in-memory estimators."""
    from survey import params as sp

    _, spec = project
    values = sp.validate({"spec": str(spec), "domains": DOMAINS, "output_dir": str(tmp_path),
                          "engine": {"mode": "stream", "chunk_rows": 600}})
    data = sp.load_survey(values)
    assert st.streams(data) and data.source == "stream" and (tmp_path / "accounting.csv").exists()
    mem = load(spec)
    cases = [dict(crime_types=["burglary", "assault"], domains=["zone"],
                  indicators=["concentration", "repeat_victims", "repeat_incidents", "gini"]),
             dict(crime_types=[], domains=["sex"], indicators=["feeling_safe", "worry", "likelihood", "likert"]),
             dict(crime_types=["personal"], domains=["region"], publication="bjs")]  # not in the run's table
    for kw in cases:
        got = st.indicator_table(data, **kw)
        want = memory_table(mem, **kw)
        want = want[~want["indicator"].isin(NOT_STREAMED)].reset_index(drop=True)
        assert got.attrs["not_streamed"] == [f for f in kw.get("indicators", INDICATORS) if f in NOT_STREAMED]
        assert len(got) == len(want) > 0, kw
        assert got[["indicator", "crime_type", "domain", "domain_value"]].astype(str).values.tolist() == \
            want[["indicator", "crime_type", "domain", "domain_value"]].astype(str).values.tolist()
        for c in ("estimate", "se", "ci_low", "ci_high"):
            np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, equal_nan=True)
        assert got["suppressed"].tolist() == want["suppressed"].tolist()
    got = st.perception_by_victimization(data, crime_types=["any_5y", "personal"])
    want = memory_perception(mem, crime_types=["any_5y", "personal"])
    assert len(got) == len(want) > 0
    np.testing.assert_allclose(got["estimate"].to_numpy(float), want["estimate"].to_numpy(float), rtol=1e-9)
    assert st.counted(data, data.crime_types + data.crime_groups) == st.counted(mem, mem.crime_types + mem.crime_groups)
    # the ingest report's design summary and domain distributions (one streamed pass)
    pairs = [("sex", "person"), ("region", "household"), ("sex_by_region", "person")]
    got, got_d = st.design_summary(data, ["household", "person"], pairs)
    want, want_d = st.design_summary(mem, ["household", "person"], pairs)
    pd.testing.assert_frame_equal(got, want, check_dtype=False, rtol=1e-12)
    for g, w in zip(got_d, want_d, strict=True):
        assert g["level"].astype(str).tolist() == w["level"].astype(str).tolist()
        np.testing.assert_allclose(g[["estimate", "se"]].to_numpy(float), w[["estimate", "se"]].to_numpy(float),
                                   rtol=1e-9, atol=1e-14)
    # the victimization report's two-category differences (the covariance of the two cells)
    comps = [("prevalence", "burglary", "sex", "Male", "Female"), ("prevalence", "assault", "zone", "Island",
                                                                    "Mainland"),
             ("concentration", "personal", "sex", "Female", "Male")]
    got = st.domain_differences(data, comps)
    want = st.domain_differences(mem, comps)
    assert len(got) == len(want) == 3 and got["a"].tolist() == want["a"].tolist()
    for c in ("difference", "se", "df", "p_value", "ci_low", "ci_high"):
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, err_msg=c)
    assert got["significant"].tolist() == want["significant"].tolist()
    with pytest.raises(st.StreamedError, match="needs the survey's rows in memory"):
        data.design("person")


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_notebooks_read_the_table_the_batch_streamed(runs):
    """The notebooks of a streamed run take the batch's table from the run folder (streamed
    once); another batch size, or another selection, is not that table."""
    from survey import params as sp

    out = runs["stream"][1]
    manifest = json.loads((out / "manifest.json").read_text())
    values = dict(manifest["parameters"]["resolved"], output_dir=str(out))
    data = sp.load_survey(values, write_accounting=False)
    assert data.source is None  # (nothing read yet)
    data.table()
    assert data.source == "run folder" and data.skipped == manifest["engine"]["skipped"]
    assert len(data.table()) == manifest["indicator_table"]["rows"]
    other = sp.load_survey(dict(values, engine={"mode": "stream", "chunk_rows": 650}), write_accounting=False)
    other.table()
    assert other.source == "stream" and other.skipped == []
    pd.testing.assert_frame_equal(other.table()[["estimate", "se"]], data.table()[["estimate", "se"]],
                                  rtol=1e-9, atol=1e-12)
