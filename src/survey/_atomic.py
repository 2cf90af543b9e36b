"""Output folders the tool can replace safely: only its own, atomically, one writer at a time.

- Every folder the tool publishes carries a marker file (:data:`MARKER`, JSON: what made it and
  when).  :func:`check_target` refuses to replace anything else: a folder without the marker
  that is not empty, a symlink, the file system root, the home folder, the working directory or
  one of its parents, a folder holding a project (``pyproject.toml``, ``.git``) or data files.
- :func:`replace_dir` swaps the new folder in with one atomic ``renameat2(RENAME_EXCHANGE)``
  where the kernel offers it (Linux), so the target is never missing; elsewhere with two
  renames and a journal, which :func:`recover` completes or rolls back at the next start.
- :func:`run_lock` holds an exclusive lock per target while a run writes it: a second run of the
  same name fails at once with the holder's pid instead of racing it.
- :func:`recover` (called before a run starts) puts back a target that a crash left moved
  aside, and removes the temporary folders of processes that no longer exist.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import shutil
import threading
import time
from pathlib import Path

from .errors import SurveyError

MARKER = ".survey-output.json"
"""Marker file of a folder the tool published (or is writing)."""

DATA_SUFFIXES = (".sav", ".zsav", ".por", ".dta", ".sas7bdat", ".xpt", ".csv", ".parquet", ".xlsx", ".rds", ".rda")


class OutputError(SurveyError, ValueError):
    """A target folder the tool must not replace, or one another run is writing."""


def atomic_write(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file in the same folder, then rename)."""
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mark(folder: Path, kind: str, **info) -> None:
    """Write the marker into a folder the tool is making (``kind``: run, synth, codebook...)."""
    data = {"tool": "survey-workbench", "kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "pid": os.getpid(), **info}
    (Path(folder) / MARKER).write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")


def is_ours(folder: Path) -> bool:
    try:
        data = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("tool") == "survey-workbench"


def _protected(path: Path) -> str | None:
    """Why ``path`` can never be an output folder (None: it may be, if it is ours or empty)."""
    p = Path(os.path.abspath(path))
    try:
        real = p.resolve()
    except OSError:
        real = p
    if p.is_symlink():
        return "it is a symbolic link"
    if real == Path(real.anchor):
        return "it is the root of the file system"
    home = Path.home().resolve()
    cwd = Path.cwd().resolve()
    if real == home or real in home.parents:
        return "it is the home folder or one of its parents"
    if real == cwd or real in cwd.parents:
        return "it is the working directory or one of its parents"
    for name in ("pyproject.toml", "setup.py", ".git", "Makefile", ".venv"):
        if (real / name).exists():
            return f"it holds a project ({name})"
    return None


def check_target(target: Path, kind: str = "output") -> None:
    """Refuse a target folder the tool did not make (see the module docstring).  A missing
    target, an empty folder and a folder with the marker are fine."""
    target = Path(target)
    why = _protected(target)
    if why:
        raise OutputError(f"{target}: will not write the {kind} there: {why}")
    if target.exists():
        if not target.is_dir():
            raise OutputError(f"{target}: will not replace it with the {kind}: it is a file, not a folder")
        if is_ours(target):
            return
        try:
            entries = list(os.scandir(target))
        except OSError as e:
            raise OutputError(f"{target}: cannot be read ({e.strerror})") from None
        if entries:
            data = [e.name for e in entries if e.name.lower().endswith(DATA_SUFFIXES)]
            what = f"{len(entries)} entries" + (f", data files such as {data[0]}" if data else "")
            raise OutputError(f"{target}: will not replace it with the {kind}: it was not made by this tool "
                              f"({what}); choose an empty or new folder")


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    AT_FDCWD = -100
    rc = fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, getattr(errno, "EOPNOTSUPP", errno.EINVAL)):
        return False  # the kernel or the file system cannot exchange: two renames instead
    raise OSError(err, os.strerror(err), str(b))


def _journal(target: Path) -> Path:
    return target.with_name(f".{target.name}.swap.json")


def replace_dir(tmp: Path, target: Path) -> None:
    """Put ``tmp`` in place of ``target`` (created if missing).  With an existing target the
    swap is one atomic exchange where possible; otherwise two renames journaled for
    :func:`recover`.  The old folder is removed afterwards."""
    tmp, target = Path(tmp), Path(target)
    if not target.exists():
        os.replace(tmp, target)
        return
    if _exchange(tmp, target):  # tmp now holds the old folder
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = target.with_name(f".{target.name}.old.{os.getpid()}.{threading.get_ident()}")
    journal = _journal(target)
    journal.write_text(json.dumps({"old": old.name, "new": tmp.name}), encoding="utf-8")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        journal.unlink(missing_ok=True)
        raise
    journal.unlink(missing_ok=True)
    shutil.rmtree(old, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(parent: Path, name: str) -> list[str]:
    """Finish or undo what a stopped run left beside ``parent/name``: a target moved aside by an
    interrupted two-rename swap is put back; temporary and old folders of dead processes are
    removed (only those carrying the tool's name pattern).  Returns what was done."""
    parent = Path(parent)
    done = []
    target = parent / name
    journal = _journal(target)
    if journal.exists():
        try:
            info = json.loads(journal.read_text(encoding="utf-8"))
            old = parent / info["old"]
            if not target.exists() and old.exists():
                os.replace(old, target)
                done.append(f"put back {target} (a run was stopped while replacing it)")
        except (OSError, ValueError, KeyError):
            pass
        journal.unlink(missing_ok=True)
    if not parent.is_dir():
        return done
    for entry in os.scandir(parent):
        n = entry.name
        for prefix in (f".{name}.old.", f".{name}.tmp-"):
            if not n.startswith(prefix) or not entry.is_dir(follow_symlinks=False):
                continue
            pid = _pid_of(Path(entry.path), n[len(prefix):])
            if pid is None:  # no way to tell whose it is: only when clearly abandoned (a day old)
                if time.time() - entry.stat(follow_symlinks=False).st_mtime < 86400:
                    continue
            elif pid == os.getpid() or _alive(pid):
                continue
            shutil.rmtree(entry.path, ignore_errors=True)
            done.append(f"removed {entry.path} (left by a stopped run)")
    return done


def _pid_of(folder: Path, suffix: str) -> int | None:
    head = suffix.split(".")[0].split("-")[0]
    if head.isdigit():
        return int(head)
    try:
        return int(json.loads((folder / MARKER).read_text(encoding="utf-8")).get("pid"))
    except (OSError, ValueError, TypeError):
        return None


@contextlib.contextmanager
def run_lock(target: Path):
    """Hold the exclusive lock of ``target`` for the time of a run (a lock file beside it); a
    second writer of the same target fails at once naming the holder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.with_name(f".{target.name}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            raise OutputError(f"{target}: another run is writing it (pid {holder}); wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
