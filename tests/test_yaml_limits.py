"""Specs and parameter sets are small YAML documents: a file that expands to gigabytes through
nested aliases, repeats a key, is huge, or is not a regular file is one error line (exit 2),
checked before any work, through the real command line (in-process) and the API."""

import os
import time
from pathlib import Path

import pytest

from survey.cli import main
from survey.params import ParameterError, read_parameter_set
from survey.spec import YAML_MAX_BYTES, SpecError, read_spec

ROOT = Path(__file__).resolve().parents[1]

def _bomb() -> str:
    lines, prev = [], None
    for a in "abcdefghi":
        item = f"*{prev}" if prev else '"x"'
        lines.append(f"{a}: &{a} [{', '.join([item] * 9)}]")
        prev = a
    return "\n".join(lines) + "\n"


BOMB = _bomb()  # 9^9 = 387 million strings once expanded, under 1 KB on disk


def _one_line(capsys, code):
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_alias_bomb_spec_is_refused_fast(tmp_path, capsys):
    p = tmp_path / "bomb.yaml"
    p.write_text(BOMB)
    assert p.stat().st_size < 1024
    t = time.perf_counter()
    err = _one_line(capsys, main(["validate", str(p)]))
    assert time.perf_counter() - t < 5
    assert "aliases" in err and "bomb.yaml" in err
    with pytest.raises(SpecError, match="once its aliases"):
        read_spec(p)


def test_alias_bomb_parameter_set_is_refused(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text("name: x\nspec: specs/synthetic.yaml\n" + BOMB)
    with pytest.raises(ParameterError, match="once its aliases"):
        read_parameter_set(p)


def test_duplicate_keys_are_refused(tmp_path, capsys):
    spec = (ROOT / "specs" / "ncvs-2021.yaml").read_text()
    p = tmp_path / "dup.yaml"
    p.write_text(spec + "\npublication: {preset: none}\n")  # a second 'publication'
    err = _one_line(capsys, main(["validate", str(p)]))
    assert "'publication' is given twice" in err
    q = tmp_path / "run.yaml"
    q.write_text("name: a\nspec: specs/synthetic.yaml\nname: b\n")
    with pytest.raises(ParameterError, match="'name' is given twice"):
        read_parameter_set(q)


def test_huge_and_special_files_are_refused(tmp_path, capsys):
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.write("title: x\n# " + "y" * (YAML_MAX_BYTES + 10) + "\n")
    assert "at most" in _one_line(capsys, main(["validate", str(big)]))
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    t = time.perf_counter()
    assert "not a regular file" in _one_line(capsys, main(["validate", str(fifo)]))
    assert time.perf_counter() - t < 5


def test_yaml_12_booleans_still_hold():
    from survey.spec import load_yaml

    assert load_yaml("on: [a]\nyes: 1\nno: 2\nflag: true") == {"on": ["a"], "yes": 1, "no": 2, "flag": True}
