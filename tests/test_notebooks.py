"""The analysis notebooks: pairing, stripped outputs, one checked ``parameters`` cell each,
plotly figures as JSON, their own parameter checks (also through papermill), and the Airflow
DAG in deploy/."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest

from survey import params as sp

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
DAG = ROOT / "deploy" / "airflow" / "survey_quarterly.py"


def _read_pair(name):
    import jupytext

    return jupytext.read(NB_DIR / f"{name}.py"), nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)


@pytest.mark.parametrize("name", sp.NOTEBOOKS)
def test_pair_in_sync_and_outputs_stripped(name):
    py, ipynb = _read_pair(name)
    assert [c.cell_type for c in py.cells] == [c.cell_type for c in ipynb.cells]
    assert [c.source for c in py.cells] == [c.source for c in ipynb.cells], \
        f"notebooks/{name}.py and .ipynb differ: run `jupytext --sync notebooks/{name}.py`"
    assert ipynb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent"
    assert ipynb.metadata["kernelspec"]["name"] == "python3"
    for c in ipynb.cells:
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None, f"{name}.ipynb has outputs: strip them"


@pytest.mark.parametrize("name", sp.NOTEBOOKS)
def test_one_parameters_cell_declaring_the_schema(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    cell = tagged[0]
    assert cell.source.splitlines()[0].startswith(sp.PARAMETERS_MARKER)
    assert sp._assigned_names(cell.source) == list(sp.declared(name)), \
        "the parameters cell must declare exactly the parameters of survey.params, in order"
    # the defaults pass the notebook's own checks (relative paths against the project root)
    ns = {}
    exec(cell.source, ns)
    values = {k: ns[k] for k in sp.declared(name)}
    out = sp.validate(values, name, root=ROOT)
    assert Path(out["spec"]).is_absolute()
    # every code cell has a title: it names the cell in batch failure messages
    untitled = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "code" and not c.metadata.get("title")]
    assert not untitled
    # the check follows the parameters cell directly
    i = nb.cells.index(cell)
    assert "sp.check_notebook(globals()" in nb.cells[i + 1].source and f'"{name}"' in nb.cells[i + 1].source


@pytest.mark.parametrize("name", sp.NOTEBOOKS)
def test_figures_are_plain_plotly_figures(name):
    src = (NB_DIR / f"{name}.py").read_text()
    assert "FigureWidget" not in src and "init_notebook_mode" not in src
    assert "rp.setup_notebook()" in src  # the plotly_mimetype renderer: figures as JSON


# ---------------------------------------------------------------------------------------------
# the notebooks' own parameter checks
# ---------------------------------------------------------------------------------------------
def _ns(own: str, injected: str | None = None) -> dict:
    """A notebook namespace as IPython leaves it after the parameters cells ran."""
    history = ["", "from survey import params as sp", own] + ([injected] if injected else []) + ["P = ..."]
    ns = {"In": history}
    exec(own, ns)
    if injected:
        exec(injected, ns)
    del ns["__builtins__"]
    return ns


OWN = "\n".join([sp.PARAMETERS_MARKER + " (test)", 'spec = "specs/synthetic.yaml"', "data_dir = None",
                 "period = None", "domains = None", "crime_types = None", "publication = None", "cap_rule = None",
                 'output_dir = "outputs/interactive"', 'language = "en"', "seed = 1"])


@pytest.fixture()
def outdir(tmp_path, monkeypatch):
    monkeypatch.setenv("SURVEY_PROJECT_ROOT", str(ROOT))
    return tmp_path / "out"


def test_check_notebook_accepts_its_parameters(outdir):
    p = sp.check_notebook(_ns(OWN, f'# Parameters\noutput_dir = "{outdir}"\ndomains = ["region"]\n'), "ingest")
    assert p.spec == str(ROOT / "specs" / "synthetic.yaml")
    assert p.domains == ["region"] and p.output_dir == str(outdir) and outdir.is_dir()


def test_misspelt_injected_parameter_fails_with_did_you_mean(outdir):
    with pytest.raises(sp.ParameterError, match=r"notebook 'fear': unknown parameter 'domian' \(did you mean 'domains'\?\)"):
        sp.check_notebook(_ns(OWN, f'# Parameters\ndomian = ["region"]\noutput_dir = "{outdir}"\n'), "fear")


def test_parameter_of_another_notebook_is_unknown(outdir):
    with pytest.raises(sp.ParameterError, match="unknown parameter 'compare'"):
        sp.check_notebook(_ns(OWN, '# Parameters\ncompare = {"data_dir": "data"}\n'), "victimization")


def test_misspelt_name_in_the_notebook_itself(outdir):
    with pytest.raises(sp.ParameterError, match="unknown parameter 'sead'"):
        sp.check_notebook(_ns(OWN.replace("seed = 1", "sead = 1")), "ingest")


@pytest.mark.parametrize("assign, message", [
    ('language = "de"', "language must be one of en, fr, es"),
    ("seed = -1", "seed must be a whole number"),
    ('publication = "onz"', "did you mean 'ons'"),
    ('cap_rule = "percentile 120"', r"percentile cap must be in \(0, 100\]"),
    ('domains = ["regoin"]', "'regoin' is not in spec synthetic.yaml \\(did you mean 'region'\\?\\)"),
    ('crime_types = ["burglery"]', "did you mean 'burglary'"),
    ('spec = "specs/nope.yaml"', "spec: file 'specs/nope.yaml' not found"),
])
def test_bad_values_fail_with_a_clear_message(outdir, assign, message):
    with pytest.raises(sp.ParameterError, match=message):
        sp.check_notebook(_ns(OWN, f'# Parameters\n{assign}\noutput_dir = "{outdir}"\n'), "victimization")


def test_fr_es_languages_pass_through(outdir):
    for lang in ("fr", "es"):
        p = sp.check_notebook(_ns(OWN, f'# Parameters\nlanguage = "{lang}"\noutput_dir = "{outdir}"\n'), "summary")
        assert p.language == lang


def test_cap_rule_shorthands():
    assert sp.cap_rule("percentile 98") == {"rule": "percentile", "value": 98.0, "by": "type"}
    assert sp.cap_rule("fixed:5") == {"rule": "fixed", "value": 5.0, "by": "type"}
    assert sp.cap_rule({"rule": "none"}) == {"rule": "none", "by": "type"}
    with pytest.raises(sp.ParameterError, match="unknown key 'valeu' \\(did you mean 'value'\\?\\)"):
        sp.cap_rule({"rule": "fixed", "valeu": 5})


def test_misspelt_parameter_fails_the_papermill_run(tmp_path, monkeypatch):
    """papermill only warns about an unknown parameter; the notebook's check fails the run."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    from survey.batch import pin_kernel_environment

    pin_kernel_environment()
    monkeypatch.setenv("SURVEY_PROJECT_ROOT", str(ROOT))
    out = tmp_path / "ingest.ipynb"
    with pytest.raises(PapermillExecutionError) as info:
        pm.execute_notebook(str(NB_DIR / "ingest.ipynb"), str(out), kernel_name="python3", progress_bar=False,
                            cwd=str(tmp_path), parameters={"domian": ["region"], "output_dir": str(tmp_path)})
    assert info.value.ename == "ParameterError"
    assert "unknown parameter 'domian' (did you mean 'domains'?)" in info.value.evalue
    failed = [c for c in nbformat.read(out, as_version=4).cells if c.metadata.get("papermill", {}).get("exception")]
    assert [c.metadata.get("title") for c in failed] == ["check parameters"]


# ---------------------------------------------------------------------------------------------
# the Airflow DAG
# ---------------------------------------------------------------------------------------------
def _calls(tree, name):
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def test_airflow_dag_parses_and_has_a_task_per_notebook():
    tree = ast.parse(DAG.read_text())
    ops = _calls(tree, "PapermillOperator")
    assert len(ops) == 1, "one PapermillOperator call, in a loop over the notebooks"
    kw = {k.arg: k.value for k in ops[0].keywords}
    assert {"task_id", "input_nb", "output_nb", "parameters", "kernel_name"} <= set(kw)
    assert ast.literal_eval(kw["kernel_name"]) == "python3"
    src = DAG.read_text()
    # parameters are templated by the run's date, and every path is absolute
    assert "data_interval_start" in src
    top = {n.targets[0].id: n.value for n in tree.body if isinstance(n, ast.Assign)
           and isinstance(n.targets[0], ast.Name)}
    names = {k.value for k in top["PARAMETERS"].keys}
    assert names <= set(sp.COMMON_NAMES) and {"spec", "data_dir", "period", "output_dir"} <= names
    for nb, extra in zip(top["EXTRA"].keys, top["EXTRA"].values):
        assert {k.value for k in extra.keys} <= set(sp.declared(nb.value))
    assert tuple(ast.literal_eval(top["NOTEBOOKS"])) == sp.NOTEBOOKS


def test_airflow_dag_loads_when_airflow_is_installed(monkeypatch):
    pytest.importorskip("airflow", reason="Airflow is an optional extra (deploy); the DAG was parsed above")
    pytest.importorskip("airflow.providers.papermill", reason="apache-airflow-providers-papermill not installed")
    import importlib.util

    spec = importlib.util.spec_from_file_location("survey_quarterly", DAG)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    dag = mod.dag
    assert set(dag.task_ids) == {"prepare", *sp.NOTEBOOKS, "finalize"}
    assert dag.get_task("summary").upstream_task_ids == {"fear", "repeat", "risk"}
    assert json.dumps(dag.get_task("ingest").parameters, default=str)
