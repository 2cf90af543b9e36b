"""Hostile parameter sets (``tests/bad_parameters/``, written by its ``make_corpus.py``): through
the real CLI, every case exits 2 with one ``survey:`` line containing the expected text, before
any kernel starts, and creates nothing (the project's tree is the same before and after)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from survey.cli import main

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).parent / "bad_parameters"
_spec = importlib.util.spec_from_file_location("bad_parameters_corpus", CORPUS / "make_corpus.py")
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)


def test_committed_corpus_is_what_the_generator_writes():
    written = corpus.files()
    assert sorted(p.name for p in CORPUS.iterdir() if p.suffix in (".yaml", ".md", ".csv")) == sorted(written)
    for name, text in written.items():
        assert (CORPUS / name).read_text(encoding="utf-8") == text, name


@pytest.fixture(scope="module")
def project(tmp_path_factory, default_synthetic_data):
    root = tmp_path_factory.mktemp("badparams")
    (root / "pyproject.toml").write_text("")
    (root / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "synthetic.yaml", root / "specs" / "synthetic.yaml")
    (root / "data").mkdir()
    (root / "data" / "synthetic").symlink_to(ROOT / "data" / "synthetic", target_is_directory=True)
    shutil.copytree(CORPUS, root / "parameters", ignore=shutil.ignore_patterns("*.py", "*.md", "__pycache__"))
    return root


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("case", list(corpus.CASES))
def test_hostile_parameter_set_one_line_exit_2_nothing_created(project, case, capsys, monkeypatch):
    monkeypatch.chdir(project)
    before = _tree(project)
    code = main(["run", f"parameters/{case}.yaml", "--root", str(project), "--no-progress"])
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, out + err
    assert len(lines) == 1 and lines[0].startswith("survey:"), err
    assert "Traceback" not in err and f"{case}.yaml" in lines[0]
    assert corpus.CASES[case][1] in lines[0], lines[0]
    assert _tree(project) == before
    assert not out.strip()


def test_the_real_command(project):
    """A few cases as real processes (started together): exit status and stderr of the process."""
    cases = ["cap_fixed_dot", "output_dir_project", "max_cv_nan"]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    before = _tree(project)
    procs = {c: subprocess.Popen([sys.executable, "-m", "survey.cli", "run", f"parameters/{c}.yaml", "--root",
                                  str(project)], cwd=project, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for c in cases}
    for c, p in procs.items():
        out, err = p.communicate(timeout=120)
        assert p.returncode == 2, out + err
        assert len(err.strip().splitlines()) == 1 and corpus.CASES[c][1] in err, err
    assert _tree(project) == before
