"""Batch runs end to end: the demo parameter set through papermill (every notebook) on a small
synthetic survey, checked against the Python API; a deliberately failing set (non-zero exit,
the failing cell named, no partial output folder); the same run again on a Dask cluster
(identical tables); parameter sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from survey import params as sp
from survey.batch import batch_main, failure_line, run_main

ROOT = Path(__file__).resolve().parents[1]
HOUSEHOLDS = 3000


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder: a small synthetic survey, a copy of the spec, the demo parameter set
    (as committed) and a failing one whose earlier wave has a corrupt incident file."""
    from survey.synth import synth

    root = tmp_path_factory.mktemp("project")
    (root / "pyproject.toml").write_text("")  # marks the project root
    synth(root / "data" / "synthetic", households=HOUSEHOLDS, seed=1)
    (root / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "synthetic.yaml", root / "specs" / "synthetic.yaml")
    (root / "parameters").mkdir()
    shutil.copy(ROOT / "parameters" / "demo.yaml", root / "parameters" / "demo.yaml")
    broken = root / "data" / "broken"
    shutil.copytree(root / "data" / "synthetic", broken)
    (broken / "incidents.sav").write_bytes(b"this is not an SPSS file\n" * 10)
    failing = {"name": "failing", "spec": "specs/synthetic.yaml", "notebooks": ["ingest", "victimization", "summary"],
               "period": "Year 2", "compare": {"data_dir": "data/broken", "period": "Year 1"}}
    (root / "parameters" / "failing.yaml").write_text(yaml.safe_dump(failing))
    return root


@pytest.fixture(scope="module")
def batch(project):
    """``survey batch parameters/demo.yaml parameters/failing.yaml --jobs 2``, once."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = batch_main([str(project / "parameters" / "demo.yaml"), str(project / "parameters" / "failing.yaml"),
                           "--jobs", "2", "--root", str(project), "--notebook-dir", str(ROOT / "notebooks"),
                           "--no-progress"])
    return {"code": code, "out": out.getvalue(), "err": err.getvalue(), "root": project,
            "demo": project / "outputs" / "demo"}


def test_exit_code_and_one_line_per_failure(batch):
    assert batch["code"] == 1, batch["out"] + batch["err"]
    failed = [ln for ln in batch["err"].splitlines() if "FAILED" in ln]
    assert len(failed) == 1, batch["err"]
    line = failed[0]
    assert "failing.yaml" in line and "notebook summary" in line and "cell 'compare waves'" in line
    assert "incidents.sav" in line  # the error itself
    assert "demo" in batch["out"] and "succeeded" in batch["out"] and "1 of 2 runs succeeded" in batch["out"]


def test_failed_run_leaves_no_partial_output(batch):
    outputs = batch["root"] / "outputs"
    assert not (outputs / "failing").exists()
    # (the lock files .<run>.lock / .<run>.publish stay: flock needs a file that is never removed)
    assert not [p for p in outputs.iterdir() if p.name.startswith(".") and p.is_dir()], "temporary folders left behind"
    assert sorted(p.name for p in outputs.iterdir() if p.name.startswith(".") and not p.is_dir()) == [
        ".demo.lock", ".demo.publish", ".failing.lock"]
    logs = outputs / "_logs"
    assert (logs / "failing.log").exists() and (logs / "failing.summary.failed.ipynb").exists()
    assert "compare waves" in (logs / "failing.log").read_text()
    outcome = json.loads((logs / "failing.result.json").read_text())
    assert outcome["status"] == "failed" and outcome["error"]["notebook"] == "summary"
    assert outcome["error"]["cell"] == "'compare waves'" and outcome["error"]["ename"] == "FileFormatError"
    assert json.loads((logs / "demo.result.json").read_text())["status"] == "succeeded"


def test_demo_run_folder(batch):
    demo = batch["demo"]
    names = {p.name for p in demo.iterdir()}
    for nb in sp.NOTEBOOKS:
        assert f"{nb}.ipynb" in names and f"{nb}.html" in names
    assert {"indicators.csv", "indicators.parquet", "indicators.xlsx", "manifest.json", "run.log",
            "accounting.csv", "plotly.min.js", "lorenz.csv", "risk_models.csv"} <= names


def test_indicator_table_matches_the_python_api(batch):
    """The table the notebooks wrote is the table the API computes (and the same bytes)."""
    import survey as sv
    from survey.indicators import indicator_table
    from survey.report import write_indicator_table

    demo = batch["demo"]
    data = sv.load(batch["root"] / "specs" / "synthetic.yaml")
    direct = indicator_table(data, publication="ons")
    produced = pd.read_parquet(demo / "indicators.parquet")
    pd.testing.assert_frame_equal(produced, direct.reset_index(drop=True), check_exact=False, rtol=1e-12)
    from_csv = pd.read_csv(demo / "indicators.csv", keep_default_na=False, na_values=[""])
    assert len(from_csv) == len(direct) and list(from_csv.columns) == list(direct.columns)
    here = batch["root"] / "direct"
    write_indicator_table(direct, here, data)
    assert (here / "indicators.csv").read_bytes() == (demo / "indicators.csv").read_bytes()
    # a few published figures, by hand
    row = direct[(direct.indicator == "prevalence") & (direct.crime_type == "burglary") & (direct.domain == "overall")]
    assert produced.loc[row.index[0], "estimate"] == pytest.approx(row["estimate"].iloc[0], rel=1e-12)


def test_manifest(batch):
    import hashlib

    m = json.loads((batch["demo"] / "manifest.json").read_text())
    assert m["status"] == "succeeded" and m["run"] == "demo"
    roles = {i["role"]: i for i in m["inputs"]}
    assert {"parameters", "spec", "data:households", "data:persons", "data:incidents"} <= set(roles)
    hh = roles["data:households"]
    assert hh["sha256"] == hashlib.sha256(Path(hh["path"]).read_bytes()).hexdigest()
    assert m["parameters"]["given"]["publication"] == "ons"
    assert m["parameters"]["resolved"]["spec"] == str(batch["root"] / "specs" / "synthetic.yaml")
    assert m["spec"]["survey"] == "synthetic"
    assert {"papermill", "pandas", "survey-workbench", "python"} <= set(m["versions"])
    steps = {r["step"] for r in m["row_accounting"]}
    assert {"read", "respondents", "exclude: outside_period", "incidents counted"} <= steps
    assert [n["name"] for n in m["notebooks"]] == list(sp.NOTEBOOKS)
    for n in m["notebooks"]:
        assert n["status"] == "succeeded" and n["kernel_startup"] > 0 and n["cells"] > 0 and n["kernel"] == "python3"
    assert m["indicator_table"]["rows"] > 1000
    outs = {o["path"]: o for o in m["outputs"]}
    csv = batch["demo"] / "indicators.csv"
    assert outs["indicators.csv"]["sha256"] == hashlib.sha256(csv.read_bytes()).hexdigest()


def test_excel_workbook(batch):
    from openpyxl import load_workbook

    table = pd.read_parquet(batch["demo"] / "indicators.parquet")
    wb = load_workbook(batch["demo"] / "indicators.xlsx", read_only=True)
    fams = list(dict.fromkeys(table.indicator))
    assert wb.sheetnames[0] == "notes" and set(wb.sheetnames[1:]) == set(fams)
    notes = {r[0]: r[1] for r in wb["notes"].iter_rows(values_only=True) if r and r[0]}
    for item in ("Suppression rule", "Cap rule", "Source", "Date", "Survey", "Period"):
        assert notes.get(item), item
    assert "unweighted base below 50" in notes["Suppression rule"] and notes["Cap rule"] == "no cap"
    defs = {r[0]: r for r in wb["notes"].iter_rows(values_only=True) if r and r[0] in fams}
    assert set(defs) == set(fams)  # a definition for every family
    assert defs["prevalence"][4].startswith("Share of the population")
    rows = list(wb["prevalence"].iter_rows(values_only=True))
    assert len(rows) - 1 == (table.indicator == "prevalence").sum()


def test_reports_and_executed_notebooks(batch):
    demo = batch["demo"]
    for nb in sp.NOTEBOOKS:
        html = (demo / f"{nb}.html").read_text()
        assert "check_notebook(" not in html, "the HTML reports show no code"
        assert "cdnjs" not in html and "require.min.js" not in html  # offline
        ipynb = (demo / f"{nb}.ipynb").read_text()
        assert len(ipynb) < 1_500_000 and "FigureWidget" not in ipynb and "plotly.min.js" not in ipynb
        assert "application/vnd.plotly.v1+json" in ipynb
        assert 'class="plotly-graph-div"' in html
    assert '<script charset="utf-8" src="plotly.min.js">' in (demo / "victimization.html").read_text()


def test_rerun_on_a_dask_cluster_gives_identical_tables(batch, project):
    """``--scheduler``: the same parameters on a LocalCluster give the same table, byte for byte."""
    pytest.importorskip("distributed", reason="dask.distributed is an optional extra (pip install '.[dask]')")
    from distributed import LocalCluster

    again = yaml.safe_load((project / "parameters" / "demo.yaml").read_text())
    again.update(name="demo-dask", notebooks=["victimization"])
    f = project / "parameters" / "demo-dask.yaml"
    f.write_text(yaml.safe_dump(again))
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        code = batch_main([str(f), "--scheduler", cluster.scheduler_address, "--root", str(project),
                           "--notebook-dir", str(ROOT / "notebooks"), "--no-progress"])
    assert code == 0
    a, b = project / "outputs" / "demo", project / "outputs" / "demo-dask"
    assert (a / "indicators.csv").read_bytes() == (b / "indicators.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_parquet(a / "indicators.parquet"), pd.read_parquet(b / "indicators.parquet"))


# ---------------------------------------------------------------------------------------------
# parameter sets (no kernel)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "parameters").glob("*.yaml")))
def test_committed_parameter_sets_are_valid(name, monkeypatch, default_synthetic_data):
    f = ROOT / "parameters" / name
    raw = yaml.safe_load(f.read_text())
    needed = ROOT / "data" / "synthetic" / "households.sav"
    if "synthetic" in raw["spec"] and not needed.exists():
        pytest.skip("the synthetic data are generated by `make run`")
    if raw.get("data_dir") == "data/synthetic-evaluation" and not (ROOT / raw["data_dir"]).exists():
        from survey.evaluation import write_pooled_survey  # what `make run` writes (seconds)

        write_pooled_survey(ROOT / raw["data_dir"])
    if raw.get("data_dir") and not (ROOT / raw["data_dir"]).exists():
        pytest.skip(f"{raw['data_dir']} is generated by `make run`")
    cfg = sp.read_parameter_set(f)
    assert cfg.name == raw["name"] and cfg.output_dir == ROOT / "outputs" / raw["name"]
    assert Path(cfg.values["spec"]).is_absolute()


def _write(tmp_path, **kw):
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "specs").mkdir(exist_ok=True)
    shutil.copy(ROOT / "specs" / "ncvs-2021.yaml", tmp_path / "specs" / "ncvs-2021.yaml")
    # the spec's data paths (../data/ncvs2021) point into tmp_path: link the real folder
    if not (tmp_path / "data").exists():
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "ncvs2021").symlink_to(ROOT / "data" / "ncvs2021")
    f = tmp_path / "parameters" / "x.yaml"
    f.parent.mkdir(exist_ok=True)
    f.write_text(yaml.safe_dump({"spec": "specs/ncvs-2021.yaml", **kw}))
    return f


def test_paths_relative_to_the_parameter_file_or_the_root_not_the_cwd(tmp_path, monkeypatch):
    f = _write(tmp_path, name="x1")
    monkeypatch.chdir("/")
    cfg = sp.read_parameter_set(f)
    assert cfg.values["spec"] == str(tmp_path / "specs" / "ncvs-2021.yaml")  # from the root
    assert cfg.output_dir == tmp_path / "outputs" / "x1"
    local = tmp_path / "parameters" / "specs"
    local.mkdir()
    shutil.copy(ROOT / "specs" / "ncvs-2021.yaml", local / "ncvs-2021.yaml")
    (tmp_path / "parameters" / "data").mkdir()
    (tmp_path / "parameters" / "data" / "ncvs2021").symlink_to(ROOT / "data" / "ncvs2021")
    assert sp.read_parameter_set(f).values["spec"] == str(local / "ncvs-2021.yaml")  # next to the file first


@pytest.mark.parametrize("extra, message", [
    ({"domian": ["region"]}, "unknown key 'domian' \\(did you mean 'domains'\\?\\)"),
    ({"notebooks": ["victimisation"]}, "did you mean 'victimization'"),
    ({"domains": ["regoin"]}, "did you mean 'region'"),
    ({"publication": {"preset": "bjs", "min_cases": -1}}, "min_cases must be a whole number"),
    ({"data_dir": "data/nowhere"}, "data_dir: folder 'data/nowhere' not found"),
    ({"compare": {"dta_dir": "x"}}, "did you mean 'data_dir'"),
    ({"timeout": 0}, "timeout must be a number of seconds"),
    ({"name": "a b"}, "name must be letters"),
])
def test_bad_parameter_sets(tmp_path, extra, message):
    f = _write(tmp_path, **extra)
    with pytest.raises(sp.ParameterError, match=message):
        sp.read_parameter_set(f)


def test_check_and_bad_sets_fail_before_any_kernel(tmp_path, capsys):
    good = _write(tmp_path, name="good")
    bad = good.with_name("bad.yaml")
    bad.write_text(yaml.safe_dump({"spec": "specs/ncvs-2021.yaml", "langauge": "fr"}))
    assert run_main([str(good), "--check"]) == 0
    assert "run 'good'" in capsys.readouterr().out
    assert batch_main([str(bad), "--no-progress"]) == 1
    capsys.readouterr()
    assert run_main([str(bad), "--no-progress"]) == 2  # survey run: a usage error, one line
    err = capsys.readouterr().err
    assert "FAILED" in err and "bad.yaml: parameters: ParameterError" in err and "did you mean 'language'" in err
    assert not (tmp_path / "outputs").exists()


def test_two_sets_writing_one_folder_are_refused(tmp_path, capsys):
    a = _write(tmp_path, name="same")
    b = a.with_name("y.yaml")
    b.write_text(a.read_text())
    assert batch_main([str(a), str(b), "--check"]) == 2
    assert "both write" in capsys.readouterr().err


def test_failure_line_format():
    r = {"source": "parameters/q.yaml", "log": None, "error": {
        "notebook": "victimization", "cell": "'indicator table'", "exec_count": 6, "ename": "IndicatorError",
        "evalue": "unknown crime type(s):\n burglery"}}
    assert failure_line(r) == ("FAILED parameters/q.yaml: notebook victimization, cell 'indicator table' [In 6]: "
                               "IndicatorError: unknown crime type(s): burglery")


def test_kernel_python3_is_this_environment():
    import sys

    from survey.batch import check_kernel

    assert Path(check_kernel()).resolve() == Path(sys.executable).resolve()
