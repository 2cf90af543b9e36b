"""Output folders: only the tool's own are replaced, atomically, by one run at a time, and what
a stopped run leaves behind is put right at the next start."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from survey._atomic import (
    MARKER,
    OutputError,
    _exchange,
    _journal,
    check_target,
    is_ours,
    mark,
    recover,
    replace_dir,
    run_lock,
)


def test_refuses_what_the_tool_did_not_make(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text("[project]\n")
    data = tmp_path / "data"
    data.mkdir()
    (data / "households.sav").write_bytes(b"$FL2")
    link = tmp_path / "link"
    link.symlink_to(data)
    cases = {Path("/"): "root of the file system", tmp_path: "working directory", tmp_path.parent: "working directory",
             Path.home(): "home folder", project: "holds a project", data: "not made by this tool",
             link: "symbolic link"}
    for target, why in cases.items():
        with pytest.raises(OutputError, match=why):
            check_target(target, "run")
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="it is a file"):
        check_target(tmp_path / "afile")
    # fine: a new folder, an empty one, one the tool made
    check_target(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_target(tmp_path / "empty")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "indicators.csv").write_text("a\n")
    mark(mine, "run")
    assert is_ours(mine)
    check_target(mine)


def test_replace_is_an_exchange(tmp_path):
    target, new = tmp_path / "run", tmp_path / ".run.tmp-1"
    target.mkdir()
    (target / "old.txt").write_text("old")
    new.mkdir()
    (new / "new.txt").write_text("new")
    assert _exchange(new, target)  # Linux: one atomic rename, the target never missing
    assert (target / "new.txt").exists() and (new / "old.txt").exists()
    other = tmp_path / ".run.tmp-2"
    other.mkdir()
    (other / "third.txt").write_text("3")
    replace_dir(other, target)
    assert sorted(p.name for p in target.iterdir()) == ["third.txt"] and not other.exists()
    fresh = tmp_path / ".x.tmp-1"
    fresh.mkdir()
    replace_dir(fresh, tmp_path / "x")
    assert (tmp_path / "x").is_dir()


def test_recover_puts_back_an_interrupted_swap(tmp_path):
    target = tmp_path / "run"
    old = tmp_path / ".run.old.999999.1"
    old.mkdir()
    (old / "indicators.csv").write_text("published\n")
    _journal(target).write_text(json.dumps({"old": old.name, "new": ".run.tmp-x"}))
    done = recover(tmp_path, "run")
    assert (target / "indicators.csv").read_text() == "published\n" and not _journal(target).exists()
    assert any("put back" in d for d in done)


def test_recover_removes_temporaries_of_dead_processes_only(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / ".run.tmp-abc"
    stale.mkdir()
    mark(stale, "run", pid=dead_pid)
    live = tmp_path / ".run.tmp-def"
    live.mkdir()
    mark(live, "run", pid=os.getppid())
    unknown = tmp_path / ".run.tmp-ghi"  # no marker, recent: left alone
    unknown.mkdir()
    other = tmp_path / ".other.tmp-abc"
    other.mkdir()
    mark(other, "run", pid=dead_pid)
    recover(tmp_path, "run")
    assert not stale.exists() and live.exists() and unknown.exists() and other.exists()
    assert (live / MARKER).exists()


def test_one_writer_per_target(tmp_path):
    target = tmp_path / "outputs" / "demo"
    with run_lock(target):
        with pytest.raises(OutputError, match=f"another run is writing it \\(pid {os.getpid()}\\)"):
            with run_lock(target):
                pass
        code = ("import sys; from survey._atomic import run_lock\n"
                f"with run_lock({str(target)!r}): pass\n")
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert r.returncode != 0 and "another run is writing it" in r.stderr
    with run_lock(target):  # released
        pass
