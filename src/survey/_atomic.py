"""Atomic output folders: write into a temporary sibling, then rename it onto the target."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path


def replace_dir(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target`` (an existing folder is moved aside first, then removed;
    put back if the rename fails)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}.{threading.get_ident()}")
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
