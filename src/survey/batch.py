"""Batch runs of the analysis notebooks: ``survey run`` and ``survey batch``.

A run takes one parameter set (``parameters/<name>.yaml``, see ``survey.params``) and
executes its notebooks (``notebooks/<name>.ipynb``) in order with papermill, on the kernel
``python3`` of this environment, with every path passed as an absolute parameter.  Runs are
spread over process workers (``--jobs N``, a local process pool) or over an existing Dask
distributed cluster (``--scheduler tcp://host:8786``); each run writes into a temporary
folder next to its output folder and renames it onto ``outputs/<run-name>/`` only when every
notebook succeeded, so a failed run leaves no partial output folder.

A run folder holds:

====================  =======================================================================
``<notebook>.ipynb``  the executed notebooks (figures as plotly JSON, no plotly.js)
``<notebook>.html``   reports without code (nbconvert ``--no-input``); ``plotly.min.js`` next
                      to them (offline) unless the parameter set asks for ``inline``/``cdn``;
                      written in the run's ``language``, with its description in that language
``translations.csv``  the spec's labels in other languages (kind, name, value, language, text:
                      ``survey.spec.SurveySpec.translations``), when it gives any
``indicators.csv``    the indicator table (``survey.indicators.TABLE_COLUMNS``), also as
``indicators.parquet``  Parquet, with ``indicators.meta.json`` (rules, definitions, notes)
``indicators.xlsx``   one sheet per indicator family and a ``notes`` sheet, in the run's
                      ``language`` (sheet names, headers, labels; numbers with a number format)
``small_areas.csv``   model-based small-area estimates (``survey.sae.PUBLISHED_COLUMNS``), when
                      the parameter set has a ``small_areas`` section: ``notebooks/local.ipynb``
                      runs after the other notebooks (manifest entry ``small_areas``)
``accounting.csv``    the row accounting of the ingest (and whatever else the notebooks wrote:
                      codebook, Lorenz curves, model tables, wave comparison)
``run.log``           the run's log (also kept in ``<outputs>/_logs/<run-name>.log``)
``manifest.json``     inputs with sha256, spec, parameters, package versions, row accounting,
                      timings (kernel start-up and cell time per notebook), outputs, status,
                      ``model_failures`` (models recorded as not fitted by the risk notebook);
                      ``design`` (``survey.report.design_info``): the design the standard
                      errors assume, with a ``note`` when the file lacks strata or PSU;
                      ``language``, ``description`` and ``description_fr``/``description_es``
                      when the parameter set gives them; ``engine`` for a streamed run
``engine.json``       a streamed run (the spec's ``design.engine`` or the parameter set's
                      ``engine:``): the engine, the streamed table's fingerprint, the row
                      accounting and the notebooks left out with their reasons
                      (``survey.tables``: the notebooks run on the table streamed once; the
                      risk and evaluation notebooks, which need the rows in memory, do not)
====================  =======================================================================

The same parameters give the same tables (CSV and Parquet byte for byte).  Exit code 0 only
when every run succeeded; otherwise 1, with one line per failure naming the parameter set,
the notebook, the cell and the error.  ``<outputs>/_logs/`` keeps each run's log, its
outcome (``<run-name>.result.json``: status, failing notebook and cell, timings) and a failed
run's executed notebook (``<run-name>.<notebook>.failed.ipynb``).  Usage errors exit with 2.

Safety (``survey._atomic``): a run replaces only a previous run folder (the tool's marker
``.survey-output.json``), a new or an empty folder -- never the publication root, the
project, its data, a symlink (checked before any kernel starts, one line, exit 2); one run
per name at a time (``.<run>.lock``: a second one fails at once); what a stopped run left is
put back or removed when the next one starts; ``_logs/<run>.result.json`` is rewritten when
a run starts (status ``running``) and at its end (``succeeded``, ``failed``, ``stopped``).
The sha256 of the parameter file, the spec(s) and the data files are taken at the start and
checked right before publishing (a changed file fails the run, nothing is published).
SIGTERM or SIGINT to ``survey run``/``survey batch`` (or the death of the parent: the workers
and the queue server have ``PR_SET_PDEATHSIG``) ends the workers and their kernels (kernels
run in their own sessions, so the whole process tree is stopped, then killed), sets the stop
flag that the publication step checks under its lock (nothing is published after a stop),
prints one line and exits 143/130.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ._atomic import OutputError, check_target, mark, recover, replace_dir, run_lock
from .errors import SurveyError
from .params import (
    NOTEBOOKS,
    ParameterError,
    RunConfig,
    check_capabilities,
    data_files,
    project_root,
    read_parameter_set,
)

KERNEL = "python3"
LOG_DIR = "_logs"
VERSIONED = ("survey-workbench", "numpy", "scipy", "pandas", "pyarrow", "pyreadstat", "pydantic", "formulaic",
             "plotly", "papermill", "nbclient", "nbconvert", "nbformat", "ipykernel", "jupyter_client", "jupytext",
             "openpyxl", "pyyaml", "dask", "distributed")


class BatchError(SurveyError, RuntimeError):
    """A batch cannot start (no parameter sets, two runs writing the same folder, no kernel)."""


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------
def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).astimezone().isoformat(timespec="seconds")


def package_versions() -> dict:
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def default_notebook_dir(root: Path | None = None) -> Path:
    """``notebooks/`` of the project root (``SURVEY_NOTEBOOKS`` overrides it)."""
    env = os.environ.get("SURVEY_NOTEBOOKS")
    if env:
        return Path(env).expanduser().resolve()
    return (root or project_root()) / "notebooks"


def pin_kernel_environment() -> None:
    """Make the kernel ``python3`` this environment's Python: its kernelspec directory goes
    first on ``JUPYTER_PATH`` (a user-level ``python3`` kernelspec would otherwise win), and
    a spec whose command is ``python`` runs ``sys.executable`` (jupyter_client)."""
    share = Path(sys.prefix) / "share" / "jupyter"
    paths = [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    if str(share) not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(share), *paths])


def check_kernel() -> str:
    """The command of kernel ``python3``; a :class:`BatchError` when it is not this
    environment's Python (with the fix)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    pin_kernel_environment()
    try:
        ks = KernelSpecManager().get_kernel_spec(KERNEL)
    except NoSuchKernel:
        raise BatchError(f"no Jupyter kernel '{KERNEL}': run `{sys.executable} -m ipykernel install --sys-prefix`") from None
    exe = ks.argv[0]
    if exe in ("python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
        return sys.executable
    same = False
    with contextlib.suppress(OSError):
        same = Path(exe).resolve() == Path(sys.executable).resolve() or Path(exe).resolve().is_relative_to(
            Path(sys.prefix).resolve())
    if not same:
        raise BatchError(f"kernel '{KERNEL}' ({ks.resource_dir}) runs {exe}, not this environment's Python "
                         f"({sys.executable}): run `{sys.executable} -m ipykernel install --sys-prefix` and remove "
                         f"the other '{KERNEL}' kernelspec")
    return exe


def normalize_permissions(folder: Path) -> None:
    """Temporary folders and files are private (mkdtemp, mkstemp); outputs follow the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for p in folder.rglob("*"):
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)


# ---------------------------------------------------------------------------------------------
# logging of one run
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _run_log(path: Path, redirect_stderr: bool):
    """Log our records and papermill's (with the cells' output) to ``path``; with
    ``redirect_stderr`` the process's stderr too (the kernels inherit it).  One run at a time
    per process: pool workers and the Dask task's subprocess are dedicated processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, mode="w", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("survey.batch")
    loggers = [log, logging.getLogger("papermill")]
    saved = [(lg, lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    fd_saved = None
    if redirect_stderr:
        sys.stderr.flush()
        fd_saved = os.dup(2)
        os.dup2(handler.stream.fileno(), 2)
    try:
        yield log
    finally:
        if fd_saved is not None:
            sys.stderr.flush()
            os.dup2(fd_saved, 2)
            os.close(fd_saved)
        for lg, level, prop in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = prop
        handler.close()


# ---------------------------------------------------------------------------------------------
# one notebook
# ---------------------------------------------------------------------------------------------
def _parse_time(s):
    if not s:
        return None
    try:
        return _dt.datetime.fromisoformat(str(s).replace("Z", "+00:00"))
    except ValueError:
        return None


def notebook_timings(nb) -> dict:
    """Kernel start-up and cell time of an executed notebook (papermill's metadata)."""
    meta = nb.metadata.get("papermill", {})
    start = _parse_time(meta.get("start_time"))
    cells = [c.metadata.get("papermill", {}) for c in nb.cells if c.cell_type == "code"]
    first = next((_parse_time(c.get("start_time")) for c in cells if c.get("start_time")), None)
    cell_time = sum(float(c.get("duration") or 0.0) for c in cells)
    startup = (first - start).total_seconds() if start and first else None
    return {"kernel_startup": round(startup, 3) if startup is not None else None,
            "cells": round(cell_time, 3), "papermill": meta.get("duration")}


def _cell_name(cell) -> str:
    title = cell.metadata.get("title")
    if title:
        return f"'{title}'"
    first = next((ln.strip() for ln in cell.source.splitlines() if ln.strip()), "")
    return f"'{first[:60]}'"


def _error_from(out_path: Path, exc) -> dict:
    """Which cell failed and why, from papermill's error or the partial output notebook."""
    import nbformat

    err = {"cell": None, "cell_index": None, "exec_count": None,
           "ename": getattr(exc, "ename", None) or type(exc).__name__,
           "evalue": getattr(exc, "evalue", None) if hasattr(exc, "ename") else str(exc).strip().splitlines()[-1:]}
    if isinstance(err["evalue"], list):
        err["evalue"] = err["evalue"][0] if err["evalue"] else ""
    preview = None
    if err["ename"] == "CellTimeoutError":  # "A cell timed out ... after N seconds.", then the cell's start
        text = str(exc).strip().splitlines()
        err["evalue"] = (text[0] if text else "the cell timed out") + " (parameter set key 'timeout')"
        dashes = [i for i, ln in enumerate(text) if ln.strip() and set(ln.strip()) == {"-"}]
        if dashes:
            preview = next((ln.strip() for ln in text[dashes[0] + 1:] if ln.strip() and set(ln.strip()) != {"-"}),
                           None)
    nb = None
    with contextlib.suppress(Exception):
        nb = nbformat.read(out_path, as_version=4)
    if nb is None:
        return err
    code = [c for c in nb.cells if c.cell_type == "code"]
    hit = None
    src = getattr(exc, "source", None)
    if src is not None:
        hit = next((c for c in code if c.source == src), None)
    if hit is None and preview:
        hit = next((c for c in code if preview in c.source), None)
    if hit is None:  # timeouts, dead kernels: the cell papermill left running or failed
        hit = next((c for c in code if c.metadata.get("papermill", {}).get("status") in ("failed", "running")), None)
    if hit is not None:
        err["cell"] = _cell_name(hit)
        err["cell_index"] = nb.cells.index(hit)
        err["exec_count"] = hit.get("execution_count")
    return err


def _execute_notebook(name: str, cfg: RunConfig, run_dir: Path, notebook_dir: Path, log) -> dict:
    import nbformat
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    src = notebook_dir / f"{name}.ipynb"
    out = run_dir / f"{name}.ipynb"
    rec = {"name": name, "input": str(src), "output": out.name, "kernel": KERNEL, "status": "failed",
           "seconds": None, "kernel_startup": None, "cells": None, "error": None}
    if not src.exists():
        rec["error"] = {"cell": None, "ename": "FileNotFoundError", "evalue": f"notebook {src} not found"}
        return rec
    params = cfg.notebook_parameters(name, run_dir)
    log.info("notebook %s: start (%s)", name, src)
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(src), str(out), parameters=params, kernel_name=KERNEL, cwd=str(run_dir),
                            progress_bar=False, log_output=True, start_timeout=180,
                            execution_timeout=cfg.timeout, request_save_on_cell_execute=True)
        rec["status"] = "succeeded"
    except PapermillExecutionError as e:
        rec["error"] = _error_from(out, e)
    except Exception as e:  # timeouts, a dead kernel, unreadable notebook
        rec["error"] = _error_from(out, e)
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    if out.exists():
        with contextlib.suppress(Exception):
            rec.update(notebook_timings(nbformat.read(out, as_version=4)))
    if rec["error"]:
        log.error("notebook %s: failed in cell %s: %s: %s", name, rec["error"].get("cell"), rec["error"]["ename"],
                  rec["error"]["evalue"])
    else:
        log.info("notebook %s: done in %.1f s (kernel start-up %s s, cells %s s)", name, rec["seconds"],
                 rec["kernel_startup"], rec["cells"])
    return rec


# ---------------------------------------------------------------------------------------------
# reports, workbook and manifest of a run folder
# ---------------------------------------------------------------------------------------------
def finalize(run_dir, values: dict, notebooks: list[dict], *, name: str | None = None,
             parameter_file: str | Path | None = None, given: dict | None = None, plotlyjs: str = "file",
             started: str | None = None, description: str = "", log=None,
             descriptions: dict | None = None) -> dict:
    """HTML reports, the Excel workbook and ``manifest.json`` for a folder of executed
    notebooks (the batch runner calls it on its temporary folder; the Airflow DAG on the
    output folder).  ``notebooks``: records with at least ``name`` (timings are read from
    the executed notebooks when missing).  The reports and the workbook are written in the
    run's ``language`` (``values``), with the run's description in that language
    (``descriptions``: language -> text, ``survey.params.run_descriptions``; ``description``
    is the English one).  Returns the manifest."""
    import nbformat
    import pandas as pd

    from .params import description_in
    from .report import design_note as design_note_in
    from .report import notebook_to_html, read_indicator_table, write_workbook

    log = log or logging.getLogger("survey.batch")
    run_dir = Path(run_dir)
    name = name or run_dir.name
    lang = values.get("language") or "en"
    descriptions = dict(descriptions or {})
    if description and "en" not in descriptions:
        descriptions["en"] = description
    shown = description_in(descriptions, lang)
    timings = {}
    design = None
    translations = []
    with contextlib.suppress(Exception):
        from .params import spec_for
        from .report import design_info

        parsed_spec = spec_for(values)[0]
        design = design_info(parsed_spec)
        translations = parsed_spec.translations()
    t0 = time.perf_counter()
    for rec in notebooks:
        nb_path = run_dir / f"{rec['name']}.ipynb"
        if rec.get("cells") is None and nb_path.exists():
            rec.setdefault("status", "succeeded")
            rec.update({k: v for k, v in notebook_timings(nbformat.read(nb_path, as_version=4)).items()})
        if nb_path.exists():
            if lang == "en":
                title = f"{rec['name']} — {name}"
            else:
                from .i18n import Translator

                title = f"{Translator(lang).get('report.notebook.' + rec['name'], rec['name'])} — {shown or name}"
            notebook_to_html(nb_path, run_dir / f"{rec['name']}.html", title=title, plotlyjs=plotlyjs,
                             design_note=design_note_in((design or {}).get("kind"), lang), lang=lang,
                             description=shown)
            rec["html"] = f"{rec['name']}.html"
    timings["html"] = round(time.perf_counter() - t0, 3)
    log.info("HTML reports: %.1f s", timings["html"])

    t0 = time.perf_counter()
    table_info = None
    table = read_indicator_table(run_dir)
    if table is not None:
        meta = json.loads((run_dir / "indicators.meta.json").read_text(encoding="utf-8"))
        write_workbook(table, meta, run_dir / "indicators.xlsx", run={
            "name": name, "date": _dt.date.today().isoformat(), "parameters": given if given is not None else values,
            "software": f"survey-workbench {package_versions().get('survey-workbench', '?')}",
            "description": shown}, lang=lang, translations=translations)
        table_info = {"rows": int(len(table)), "csv": "indicators.csv", "parquet": "indicators.parquet",
                      "excel": "indicators.xlsx", "csv_sha256": sha256(run_dir / "indicators.csv"),
                      "families": sorted(set(table["indicator"]))}
    timings["excel"] = round(time.perf_counter() - t0, 3)

    inputs = []
    if parameter_file:
        inputs.append({"role": "parameters", "path": str(parameter_file), "sha256": sha256(Path(parameter_file)),
                       "bytes": Path(parameter_file).stat().st_size})
    for role, p in data_files(values):
        inputs.append({"role": role, "path": str(p), "sha256": sha256(p) if p.exists() else None,
                       "bytes": p.stat().st_size if p.exists() else None})
    with contextlib.suppress(Exception):  # the spec's labels in other languages, for reports and dashboards
        from .params import spec_for

        rows = spec_for(values)[0].translations()
        if rows:
            from .report import neutral_frame

            neutral_frame(pd.DataFrame(rows, columns=["kind", "name", "value", "language", "text"])).to_csv(
                run_dir / "translations.csv", index=False)
    accounting = None
    if (run_dir / "accounting.csv").exists():
        accounting = pd.read_csv(run_dir / "accounting.csv", keep_default_na=False).to_dict(orient="records")
    spec_meta = {}
    with contextlib.suppress(Exception):
        from .params import spec_for

        parsed, spec_path = spec_for(values)
        spec_meta = {"path": str(spec_path), "sha256": sha256(Path(spec_path)), "survey": parsed.survey,
                     "title": parsed.title, "period": parsed.period, "source": parsed.source,
                     "licence": parsed.licence, "publication": parsed.publication.model_dump(exclude_none=True),
                     "cap": parsed.victimization.cap.model_dump(exclude_none=True) if parsed.victimization else None}
    nb_secs = [r for r in notebooks if r.get("cells") is not None]
    timings["notebooks"] = round(sum(r.get("seconds") or 0.0 for r in notebooks), 3)
    timings["kernel_startup"] = round(sum(r.get("kernel_startup") or 0.0 for r in nb_secs), 3)
    timings["cells"] = round(sum(r.get("cells") or 0.0 for r in nb_secs), 3)
    finished = _now()
    manifest = {
        "run": name, "description": descriptions.get("en", ""),
        **{f"description_{k}": v for k, v in descriptions.items() if k != "en"},
        "language": lang, "status": "succeeded",
        "started": started, "finished": finished,
        "parameter_file": str(parameter_file) if parameter_file else None,
        "parameters": {"given": given, "resolved": values},
        "spec": spec_meta, "design": design, "inputs": inputs, "notebooks": notebooks, "indicator_table": table_info,
        "row_accounting": accounting, "timings_seconds": timings,
        "versions": package_versions(), "host": platform.node(), "kernel": {"name": KERNEL, "python": sys.executable},
    }
    if (run_dir / SMALL_AREA_FILE).exists():  # model-based small-area estimates (notebooks/local.py)
        manifest["small_areas"] = small_area_manifest(run_dir, values)
    if (run_dir / "evaluation.csv").exists():  # the evaluation step (parameter-set section `evaluation:`)
        ev = pd.read_csv(run_dir / "evaluation.csv", keep_default_na=False, na_values=[""])
        manifest["evaluation"] = {
            "section": (values.get("evaluation") if isinstance(values, dict) else None),
            "effects": "evaluation.csv", "effects_sha256": sha256(run_dir / "evaluation.csv"), "rows": int(len(ev)),
            "terms": [t for t in ev["term"].astype(str) if not t.startswith(("pretrend:", "event_study:", "att:"))],
            "cost_benefit": "cost_benefit.csv" if (run_dir / "cost_benefit.csv").exists() else None,
            "cost_benefit_sha256": sha256(run_dir / "cost_benefit.csv") if (run_dir / "cost_benefit.csv").exists()
            else None}
    from .tables import read_engine_file

    engine = read_engine_file(run_dir)
    if engine is not None:  # a streamed run: its engine and the notebooks it left out (survey.tables)
        manifest["engine"] = {k: engine.get(k) for k in ("mode", "engine", "chunk_rows", "rows", "table", "skipped")}
    if (run_dir / "risk_model_failures.csv").exists():  # models recorded as not fitted (on_model_failure: record)
        manifest["model_failures"] = pd.read_csv(run_dir / "risk_model_failures.csv",
                                                 keep_default_na=False).to_dict(orient="records")
    outputs = []
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and p.name != "manifest.json" and not p.name.startswith("."):
            outputs.append({"path": str(p.relative_to(run_dir)), "bytes": p.stat().st_size, "sha256": sha256(p)})
    manifest["outputs"] = outputs
    tmp = run_dir / ".manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(run_dir / "manifest.json")
    return manifest


# ---------------------------------------------------------------------------------------------
# one run (what a worker executes)
# ---------------------------------------------------------------------------------------------
class RunStopped(BaseException):
    """The run was told to stop (SIGTERM, SIGINT, the parent died): nothing is published."""


_STOP = {"signal": None, "published": False, "tmp": None, "result": None, "res": None}


def _stop_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.stop")


def _publish_lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.publish")


@contextlib.contextmanager
def _publish_lock(target: Path, timeout: float | None = None):
    """The short lock of the publication step (the stop flag is set and checked under it)."""
    import fcntl

    fd = os.open(_publish_lock_path(target), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() > deadline:
                    break  # a writer hung in the publication step: go on (the caller kills it)
                time.sleep(0.05)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def request_stop(target: Path, why: str) -> None:
    """Tell the run writing ``target`` to publish nothing (the flag file, under the
    publication lock: a run that has not published yet never will)."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    with _publish_lock(target, timeout=5.0):
        with contextlib.suppress(OSError):
            _stop_path(target).write_text(f"{os.getpid()} {why}\n", encoding="utf-8")


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, grandchildren...), from /proc."""
    children: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as fh:
                    stat = fh.read().decode(errors="replace")
                fields = stat[stat.rindex(")") + 2:].split()
                ppid = int(fields[1])
            except (OSError, ValueError, IndexError):
                continue
            if fields[0] in ("Z", "X"):  # dead already (a zombie until its parent reaps it)
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.append(c)
                todo.append(c)
    return out


def kill_tree(pid: int | None = None) -> int:
    """Stop then kill every process below ``pid`` (default: this one): the pool workers, the
    kernels (jupyter_client starts each in its own session, so a process group does not reach
    them) and whatever they started.  Stopped first so that none starts another meanwhile.
    Returns how many were killed."""
    import signal

    pid = os.getpid() if pid is None else pid
    seen: set[int] = set()
    for _ in range(20):
        new = [p for p in _descendants(pid) if p not in seen]
        if not new:
            break
        for p in new:
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGSTOP)
        seen.update(new)
    for p in seen:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
    return len(seen)


def _set_parent_death_signal() -> None:
    """Linux: this process gets SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG)."""
    import signal

    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def _worker_stop(signum, frame) -> None:  # pragma: no cover - runs in a worker on a signal
    """A worker told to stop: kill its kernels, remove its temporary folder, record the run
    as stopped, exit at once (never publishes: the flag is checked before publishing)."""
    import signal

    _STOP["signal"] = signum
    with contextlib.suppress(Exception):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    kill_tree()
    tmp = _STOP.get("tmp")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    res, result = _STOP.get("res"), _STOP.get("result")
    if res is not None and result is not None and not _STOP.get("published"):
        name = signal.Signals(signum).name
        res.update(status="stopped", error={"notebook": None, "cell": None, "ename": "Stopped",
                                            "evalue": f"stopped by {name} before publishing; no output folder "
                                                      "was replaced"})
        with contextlib.suppress(Exception):
            _write_result(Path(result), res)
    os._exit(128 + signum)


def worker_init() -> None:
    """Initializer of the pool workers (and ``python -m survey.batch --worker``): die with
    the parent, stop cleanly on SIGTERM/SIGINT."""
    import signal

    _set_parent_death_signal()
    signal.signal(signal.SIGTERM, _worker_stop)
    signal.signal(signal.SIGINT, _worker_stop)
    if os.getppid() == 1:  # the parent died before the prctl
        os._exit(143)


def _write_result(path: Path, res: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(res, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def input_hashes(cfg: RunConfig) -> dict[str, str]:
    """sha256 of every file a run reads (parameter file, spec(s), data files), at its start."""
    out = {str(cfg.source): sha256(cfg.source)}
    for _role, p in data_files(cfg.values):
        if p.is_file():
            out[str(p)] = sha256(p)
    return out


def changed_inputs(hashes: dict[str, str]) -> list[str]:
    out = []
    for path, digest in hashes.items():
        try:
            same = sha256(Path(path)) == digest
        except OSError:
            same = False
        if not same:
            out.append(path)
    return out


def _legacy_run_folder(target: Path, name: str) -> bool:
    """A run folder published before the marker existed: its manifest names this run."""
    try:
        m = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and m.get("run") == name and "versions" in m and (target / "run.log").is_file()


def check_run_target(cfg: RunConfig) -> None:
    """The output folder of a run may only be a previous run folder (the tool's marker, or an
    older run's manifest), a new or an empty folder; never the publication root, the project,
    its data, a symlink (:func:`survey._atomic.check_target`, one line naming the file)."""
    target = cfg.output_dir
    where = f"{cfg.source}: output_dir: "
    try:
        if Path(target) == Path(cfg.root) / "outputs" or (Path(target) / LOG_DIR).is_dir():
            raise OutputError(f"{target}: will not write the run folder there: it is the publication root "
                              "(runs go into folders below it)")
        if target.is_dir() and not target.is_symlink() and _legacy_run_folder(target, cfg.name):
            return
        check_target(target, "run folder")
    except OutputError as e:
        raise OutputError(f"{where}{e}") from None


SMALL_AREA_FILE = "small_areas.csv"


def small_area_step(cfg: RunConfig) -> list[str]:
    """The small-area step of a run: ``["local"]`` (notebooks/local.ipynb, after the other
    notebooks: it models the indicator table) when the parameter set has a ``small_areas``
    section, else nothing."""
    return ["local"] if cfg.values.get("small_areas") and "victimization" in cfg.notebooks else []


def small_area_manifest(run_dir: Path, values: dict) -> dict:
    """The manifest's ``small_areas`` entry: file, checksum, rows, model, auxiliary file (sha256)."""
    import pandas as pd

    sa = dict(values.get("small_areas") or {})
    t = pd.read_csv(run_dir / SMALL_AREA_FILE, keep_default_na=False, na_values=[""])
    aux = Path(sa.get("auxiliary", ""))
    return {"csv": SMALL_AREA_FILE, "csv_sha256": sha256(run_dir / SMALL_AREA_FILE), "rows": int(len(t)),
            "in_sample": int(t["in_sample"].astype(str).str.lower().eq("true").sum()),
            "suppressed": int(t["suppressed"].astype(str).str.lower().eq("true").sum()),
            "method": str(t["method"].iloc[0]) if len(t) else None, "parameters": sa,
            "auxiliary_sha256": sha256(aux) if aux.is_file() else None}


def execute_run(parameter_file: str, notebook_dir: str | None = None, notebooks: list[str] | None = None,
                root: str | None = None, events=None, redirect_stderr: bool = True) -> dict:
    """Execute one parameter set (its notebooks, then reports, workbook and manifest) and
    move the result onto its output folder.  Never raises for a failed run: returns a record
    with ``status``, ``error`` (notebook, cell, ename, evalue), ``log`` and timings.

    Safety: the output folder must be a previous run (or new/empty: :func:`check_target`);
    one writer per run name (:func:`run_lock`); what an earlier stopped run left is put back or
    removed (:func:`recover`); the inputs' sha256 are taken at the start and checked again
    right before publishing; a stop request (flag file, checked under the publication lock)
    publishes nothing; ``_logs/<run>.result.json`` is rewritten at the start (status
    ``running``) so that it never describes an earlier run."""
    t_start = time.perf_counter()
    started = _now()
    res = {"name": Path(parameter_file).stem, "source": str(parameter_file), "status": "failed",
           "output_dir": None, "log": None, "notebooks": [], "error": None, "seconds": None, "planned": []}

    def emit(*event):
        if events is not None:
            with contextlib.suppress(Exception):
                events.put(event)

    def fail(e, notebook=None):
        res["error"] = {"notebook": notebook, "cell": None, "ename": type(e).__name__, "evalue": str(e)}
        res["seconds"] = round(time.perf_counter() - t_start, 3)
        return res

    try:
        cfg = read_parameter_set(parameter_file, root)
        if notebooks:
            cfg.notebooks = [nb for nb in NOTEBOOKS if nb in notebooks]
        check_run_target(cfg)
    except SurveyError as e:
        return fail(e)
    nb_dir = Path(notebook_dir) if notebook_dir else default_notebook_dir(cfg.root)
    res.update(name=cfg.name, output_dir=str(cfg.output_dir),
               planned=list(cfg.notebooks) + small_area_step(cfg) + (["evaluation"] if cfg.evaluation else []),
               pid=os.getpid(), started=started)
    parent = cfg.output_dir.parent
    log_path = parent / LOG_DIR / f"{cfg.name}.log"
    result_path = log_path.with_name(f"{cfg.name}.result.json")
    pin_kernel_environment()
    try:
        lock = run_lock(cfg.output_dir)
        lock.__enter__()
    except (SurveyError, OSError) as e:  # another run of this name: its log and result are left alone
        return fail(e)
    tmp = None
    try:
        recovered = recover(parent, cfg.name)
        _stop_path(cfg.output_dir).unlink(missing_ok=True)
        res["log"] = str(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        res["status"] = "running"
        _write_result(result_path, res)
        _STOP.update(res=res, result=str(result_path), published=False)
        res["status"] = "failed"
        with _run_log(log_path, redirect_stderr) as log:
            try:
                for line in recovered:
                    log.warning("recover: %s", line)
                hashes = input_hashes(cfg)
                tmp = Path(tempfile.mkdtemp(prefix=f".{cfg.name}.tmp-{os.getpid()}-", dir=parent))
                _STOP["tmp"] = str(tmp)
                mark(tmp, "run", run=cfg.name, parameter_file=str(cfg.source))
                log.info("run %s from %s: notebooks %s; output %s; temporary folder %s", cfg.name, cfg.source,
                         ", ".join(cfg.notebooks), cfg.output_dir, tmp)
                # the small-area step after the indicator table; the evaluation notebook runs last when
                # the parameter set has an `evaluation:` section
                steps = cfg.notebooks + small_area_step(cfg) + (["evaluation"] if cfg.evaluation else [])
                streamed = _streamed_indicators(cfg, tmp, steps, log)  # engine: stream -> the table, once
                if streamed:
                    res["engine"] = streamed["engine"]
                    res["skipped"] = streamed["skipped"]
                    left_out = {s["notebook"] for s in streamed["skipped"]}
                    steps = [nb for nb in steps if nb not in left_out]
                    res["planned"] = list(steps)
                    for nb in left_out & set(cfg.notebooks):  # (the progress bar counts them)
                        emit("done", cfg.name, nb, "skipped")
                for nb in steps:
                    emit("start", cfg.name, nb)
                    rec = _execute_notebook(nb, cfg, tmp, nb_dir, log)
                    res["notebooks"].append(rec)
                    emit("done", cfg.name, nb, rec["status"])
                    if rec["status"] != "succeeded":
                        res["error"] = {"notebook": nb, **rec["error"]}
                        failed = tmp / f"{nb}.ipynb"
                        if failed.exists():
                            keep = log_path.with_name(f"{cfg.name}.{nb}.failed.ipynb")
                            shutil.copyfile(failed, keep)
                            res["failed_notebook"] = str(keep)
                        break
                else:
                    values = {**cfg.values, **({"evaluation": cfg.evaluation} if cfg.evaluation else {})}
                    finalize(tmp, values, res["notebooks"], name=cfg.name, parameter_file=cfg.source,
                             given=cfg.given, plotlyjs=cfg.html_plotlyjs, started=started,
                             description=cfg.description, log=log, descriptions=cfg.descriptions)
                    log.info("run %s: notebooks done in %.1f s", cfg.name, time.perf_counter() - t_start)
                    for h in logging.getLogger("survey.batch").handlers:
                        h.flush()
                    shutil.copyfile(log_path, tmp / "run.log")
                    normalize_permissions(tmp)
                    _publish(cfg, tmp, hashes, log)
                    res["status"] = "succeeded"
            except RunStopped as e:
                log.error("run %s: %s", cfg.name, e)
                res["status"] = "stopped"
                res["error"] = {"notebook": None, "cell": None, "ename": "Stopped", "evalue": str(e)}
            except Exception as e:  # finalizing failed (disk full, a bug, changed inputs): still one line
                log.error("run %s: %s: %s", cfg.name, type(e).__name__, e)
                res["error"] = {"notebook": None, "cell": None, "ename": type(e).__name__, "evalue": str(e)}
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        _STOP["tmp"] = None
        res["seconds"] = round(time.perf_counter() - t_start, 3)
        res["finished"] = _now()
        with contextlib.suppress(OSError):  # for schedulers and people: the outcome next to the log
            if res.get("log"):
                _write_result(result_path, res)
        _STOP.update(res=None, result=None)
        lock.__exit__(None, None, None)
    return res


def _streamed_indicators(cfg: RunConfig, run_dir: Path, steps: list[str], log) -> dict | None:
    """The engine of the run (the spec's ``design.engine`` with the parameter set's ``engine:``),
    passed on to the notebooks (their ``engine`` parameter: the mode chosen here, so that a
    kernel never chooses otherwise).  When it streams (a Parquet design file beyond the memory
    limit, or ``mode: stream``): the indicator table and the row accounting are computed once
    from the file in batches (:mod:`survey.stream_indicators`) and written into ``run_dir``
    with :data:`survey.tables.ENGINE_FILE`; the notebooks take their tables from there
    (:mod:`survey.tables`), and the ``steps`` that need the survey in memory
    (:data:`survey.tables.NEEDS_MEMORY`) are left out, with their reasons.  Returns the
    engine file's content then, else None."""
    from .params import publication_rule, spec_for
    from .tables import engine_plan_for, skipped_notebooks, write_engine_file

    spec, spec_path = spec_for(cfg.values)
    plan = engine_plan_for(spec, spec_path, cfg.engine)
    if plan is None:
        return None
    cfg.values["engine"] = {**(cfg.engine or {}), "mode": plan.mode}
    log.info("run %s: %s", cfg.name, plan.line())
    if plan.mode != "stream":
        return None
    import pandas as pd

    from .ingest import SurveyData
    from .report import neutral_frame, write_indicator_table
    from .stream_indicators import indicator_table

    cfg.values["engine"]["chunk_rows"] = int(plan.chunk_rows)
    preset, pub = publication_rule(cfg.values.get("publication"))
    table = indicator_table(spec, spec_path, crime_types=cfg.values.get("crime_types"),
                            domains=cfg.values.get("domains"), publication=preset, chunk_rows=plan.chunk_rows, **pub)
    meta = SurveyData(spec=spec, spec_path=spec_path, respondents=pd.DataFrame(), incidents=None,
                      accounting=pd.DataFrame())
    write_indicator_table(table, run_dir, meta, cfg.values)
    neutral_frame(pd.DataFrame(table.attrs["accounting"])).to_csv(run_dir / "accounting.csv", index=False)
    info = write_engine_file(run_dir, plan, table, cfg.values, skipped_notebooks(steps))
    log.info("run %s: indicator table streamed (%s): %d rows", cfg.name, table.attrs["engine"], len(table))
    for s in info["skipped"]:
        log.info("run %s: notebook %s left out: %s", cfg.name, s["notebook"], s["reason"])
    return info


def _publish(cfg: RunConfig, tmp: Path, hashes: dict[str, str], log) -> None:
    """The publication step: under the publication lock, with SIGTERM/SIGINT held back, check
    the stop flag, the inputs and the target again, then swap the run folder in."""
    import signal

    changed = changed_inputs(hashes)
    if changed:
        raise InputChangedError(f"{changed[0]}: changed while the run was going (its sha256 differs from the "
                                "start); nothing was published, run again")
    blocked = False
    with _publish_lock(cfg.output_dir):
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(Exception):
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
                blocked = True
        try:
            stop = _stop_path(cfg.output_dir)
            if stop.exists() or _STOP.get("signal"):
                raise RunStopped("stopped before publishing (a stop was requested); no output folder was replaced")
            changed = changed_inputs(hashes)
            if changed:
                raise InputChangedError(f"{changed[0]}: changed while the run was going (its sha256 differs from "
                                        "the start); nothing was published, run again")
            check_run_target(cfg)
            replace_dir(tmp, cfg.output_dir)
            _STOP["published"] = True
            log.info("run %s: published %s", cfg.name, cfg.output_dir)
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})


class InputChangedError(SurveyError, RuntimeError):
    """An input file changed between the start of a run and its publication."""


def _dask_task(parameter_file: str, notebook_dir: str | None, notebooks: list[str] | None, root: str | None) -> dict:
    """A run on a Dask worker: in a fresh Python process (papermill changes the working
    directory and the kernels inherit stderr; neither belongs in a shared worker)."""
    with tempfile.TemporaryDirectory(prefix="survey-run-") as d:
        out = Path(d) / "result.json"
        cmd = [sys.executable, "-m", "survey.batch", "--worker", str(parameter_file), "--result", str(out)]
        if notebook_dir:
            cmd += ["--notebook-dir", str(notebook_dir)]
        if notebooks:
            cmd += ["--notebooks", ",".join(notebooks)]
        if root:
            cmd += ["--root", str(root)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if out.exists():
            return json.loads(out.read_text(encoding="utf-8"))
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-1:] or ["no output"]
        return {"name": Path(parameter_file).stem, "source": str(parameter_file), "status": "failed",
                "output_dir": None, "log": None, "notebooks": [], "seconds": None, "planned": [],
                "error": {"notebook": None, "cell": None, "ename": "WorkerError",
                          "evalue": f"worker exited with {proc.returncode}: {tail[0]}"}}


# ---------------------------------------------------------------------------------------------
# many runs
# ---------------------------------------------------------------------------------------------
def plan(parameter_files, notebooks: list[str] | None = None, root: str | None = None):
    """Read every parameter set; (configs, failures) where failures are records of sets that
    cannot run.  Two sets writing the same folder are a :class:`BatchError`."""
    configs, failures = [], []
    for f in parameter_files:
        try:
            cfg = read_parameter_set(f, root)
            if notebooks:
                cfg.notebooks = [nb for nb in NOTEBOOKS if nb in notebooks]
                check_capabilities(cfg.values, cfg.notebooks, explicit=True, where=f"{cfg.source}: ")
            check_run_target(cfg)
            configs.append(cfg)
        except SurveyError as e:
            failures.append({"name": Path(f).stem, "source": str(f), "status": "failed", "output_dir": None,
                             "log": None, "notebooks": [], "seconds": 0.0, "planned": [],
                             "error": {"notebook": None, "cell": None, "ename": type(e).__name__, "evalue": str(e)}})
    seen: dict = {}
    for cfg in configs:
        other = seen.get(cfg.output_dir)
        if other is not None:
            raise BatchError(f"{other.source} and {cfg.source} both write {cfg.output_dir}: give one of them "
                             "another 'name' or 'output_dir'")
        seen[cfg.output_dir] = cfg
    return configs, failures


def run_batch(parameter_files, jobs: int | None = None, scheduler: str | None = None,
              notebook_dir: str | None = None, notebooks: list[str] | None = None, root: str | None = None,
              progress: bool | None = None) -> list[dict]:
    """Run parameter sets on ``jobs`` local process workers or on the Dask cluster at
    ``scheduler``; returns one record per parameter set (see :func:`execute_run`)."""
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    configs, results = plan(parameter_files, notebooks, root)
    if not configs:
        return results
    check_kernel()
    jobs = jobs or max(1, min(len(configs), (os.cpu_count() or 2) // 2))
    nb_dir = str(Path(notebook_dir).resolve()) if notebook_dir else None
    total = sum(len(c.notebooks) + len(small_area_step(c)) for c in configs)
    bar = _progress(total, progress)
    nb_subset = list(notebooks) if notebooks else None
    restore = _install_stop_handlers(configs, bar)
    try:
        if scheduler:
            results += _run_dask(configs, scheduler, nb_dir, nb_subset, root, bar)
        else:
            from multiprocessing.managers import SyncManager

            ctx = get_context("spawn")
            manager = SyncManager(ctx=ctx)
            manager.start(initializer=_set_parent_death_signal)  # the queue's server dies with us too
            with manager:
                events = manager.Queue()
                stop = threading.Event()
                watcher = threading.Thread(target=_watch, args=(events, bar, stop), daemon=True)
                watcher.start()
                try:
                    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=worker_init) as pool:
                        futs = {pool.submit(execute_run, str(c.source), nb_dir, nb_subset, root, events): c
                                for c in configs}
                        try:
                            for fut in as_completed(futs):
                                results.append(_collect(fut, futs[fut], bar))
                        except KeyboardInterrupt:
                            for f in futs:
                                f.cancel()
                            raise
                finally:
                    stop.set()
                    watcher.join(timeout=2)
    finally:
        restore()
        bar.close()
    order = {Path(f).resolve(): i for i, f in enumerate(parameter_files)}
    results.sort(key=lambda r: order.get(Path(r["source"]).resolve(), len(order)))
    return results


def _install_stop_handlers(configs, bar):
    """SIGTERM/SIGINT to ``survey run``/``survey batch`` (what a scheduler or Ctrl-C sends):
    raise the stop flag of every run (nothing is published after it), let the workers stop
    their kernels, kill whatever is left below this process, record the stopped runs, remove
    their temporary folders, print one line and exit 143/130.  Returns the undo function."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        name = signal.Signals(signum).name
        for c in configs:
            with contextlib.suppress(Exception):
                request_stop(c.output_dir, name)
        me = os.getpid()
        children = [p for p in _descendants(me)]
        for p in children:  # the workers stop their kernels and record their run
            with contextlib.suppress(OSError):
                os.kill(p, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and [p for p in _descendants(me) if not _is_resource_tracker(p)]:
            time.sleep(0.1)  # (multiprocessing's resource tracker ignores SIGTERM: killed below)
        killed = kill_tree(me)
        stopped = _record_stopped(configs, name)
        with contextlib.suppress(Exception):
            bar.close()
        extra = f"; {killed} process(es) killed" if killed else ""
        print(f"survey: stopped by {name}: {len(stopped)} run(s) stopped ({', '.join(stopped) or 'none running'}), "
              f"workers and kernels ended{extra}; no output folder was replaced", file=sys.stderr, flush=True)
        os._exit(128 + signum)

    saved = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore():
        for s, h in saved.items():
            signal.signal(s, h)

    return restore


def _is_resource_tracker(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"multiprocessing.resource_tracker" in fh.read()
    except OSError:
        return False


def _record_stopped(configs, name: str) -> list[str]:
    """After a stop: the result of each run still marked running (its worker was killed) says
    stopped; temporary folders of the dead workers are removed."""
    out = []
    for c in configs:
        parent = c.output_dir.parent
        result = parent / LOG_DIR / f"{c.name}.result.json"
        with contextlib.suppress(Exception):
            r = json.loads(result.read_text(encoding="utf-8"))
            if r.get("status") == "running":
                r.update(status="stopped", finished=_now(), error={
                    "notebook": None, "cell": None, "ename": "Stopped",
                    "evalue": f"stopped by {name} before publishing; no output folder was replaced"})
                _write_result(result, r)
            if r.get("status") == "stopped":
                out.append(c.name)
        with contextlib.suppress(Exception):
            recover(parent, c.name)
            _stop_path(c.output_dir).unlink(missing_ok=True)
    return out


def _collect(fut, cfg: RunConfig, bar) -> dict:
    try:
        r = fut.result()
    except Exception as e:  # the worker process died
        r = {"name": cfg.name, "source": str(cfg.source), "status": "failed", "output_dir": str(cfg.output_dir),
             "log": None, "notebooks": [], "seconds": None, "planned": list(cfg.notebooks),
             "error": {"notebook": None, "cell": None, "ename": type(e).__name__, "evalue": str(e)}}
    # notebooks a failed run did not reach still count for the progress bar
    left = len(cfg.notebooks) + len(small_area_step(cfg)) - len(r.get("notebooks", []))
    if r["status"] != "succeeded" and left > 0:
        bar.update(left)
    bar.write(_status_line(r))
    return r


def _run_dask(configs, scheduler, nb_dir, nb_subset, root, bar) -> list[dict]:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise BatchError("--scheduler needs dask.distributed: pip install 'survey-workbench[dask]'") from None
    out = []
    with Client(scheduler, timeout="30s") as client:
        futs = {}
        for c in configs:
            f = client.submit(_dask_task, str(c.source), nb_dir, nb_subset, root, pure=False,
                              key=f"survey-run-{c.name}-{os.getpid()}-{time.time_ns()}")
            futs[f] = c
        for f in as_completed(list(futs)):
            c = futs[f]
            try:
                r = f.result()
            except Exception as e:
                r = {"name": c.name, "source": str(c.source), "status": "failed", "output_dir": str(c.output_dir),
                     "log": None, "notebooks": [], "seconds": None, "planned": list(c.notebooks),
                     "error": {"notebook": None, "cell": None, "ename": type(e).__name__, "evalue": str(e)}}
            bar.update(len(c.notebooks) + len(small_area_step(c)))
            bar.write(_status_line(r))
            out.append(r)
    return out


def _watch(events, bar, stop) -> None:
    import queue

    running: dict = {}
    while not stop.is_set():
        try:
            ev = events.get(timeout=0.2)
        except queue.Empty:
            continue
        except (EOFError, OSError):
            return
        if ev[0] == "start":
            running[ev[1]] = ev[2]
        elif ev[0] == "done":
            running.pop(ev[1], None)
            bar.update(1)
        bar.set_postfix_str(", ".join(f"{k}:{v}" for k, v in sorted(running.items()))[:60])


class _NoBar:
    def update(self, n=1):
        pass

    def write(self, s):
        print(s, file=sys.stderr, flush=True)

    def set_postfix_str(self, s):
        pass

    def close(self):
        pass


def _progress(total: int, progress: bool | None):
    if progress is False:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="notebook", desc="survey batch", file=sys.stderr, dynamic_ncols=True,
                disable=None if progress is None else False)


# ---------------------------------------------------------------------------------------------
# reporting and the command line
# ---------------------------------------------------------------------------------------------
def failure_line(r: dict) -> str:
    """One line: parameter set, notebook, cell, error."""
    e = r.get("error") or {}
    where = f"notebook {e['notebook']}" if e.get("notebook") else "parameters"
    cell = e.get("cell")
    if e.get("notebook"):
        where += f", cell {cell}" if cell else ", cell unknown"
        if e.get("exec_count"):
            where += f" [In {e['exec_count']}]"
    evalue = " ".join(str(e.get("evalue") or "").split())
    for prefix in (f"{r['source']}: ", f"{Path(r['source']).resolve()}: "):
        evalue = evalue.removeprefix(prefix)  # parameter errors name the file already shown
    log = f" (log {_display(r['log'])})" if r.get("log") else ""
    return f"FAILED {_display(r['source'])}: {where}: {e.get('ename', 'Error')}: {evalue}{log}"


def _display(path) -> str:
    """A path relative to the working directory when it is below it."""
    p = Path(path)
    with contextlib.suppress(ValueError, OSError):
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    return str(p)


def _status_line(r: dict) -> str:
    if r["status"] == "succeeded":
        left = ", ".join(s["notebook"] for s in r.get("skipped") or [])
        left = f" (streamed; left out: {left}, they need the rows in memory)" if left else ""
        return (f"ok     {r['name']}: {len(r['notebooks'])} notebooks in {r['seconds']:.1f} s -> {r['output_dir']}"
                f"{left}")
    e = r.get("error") or {}
    where = f"notebook {e['notebook']}" if e.get("notebook") else "parameters"
    return f"failed {r['name']}: {where}: {e.get('ename', 'Error')} (details below)"


def summary_table(results: list[dict]) -> str:
    rows = [("run", "status", "notebooks", "seconds", "kernel start", "cells", "output")]
    for r in results:
        nbs = r.get("notebooks", [])
        ok = sum(1 for n in nbs if n.get("status") == "succeeded")
        planned = len(r.get("planned") or []) or len(nbs)
        ks = sum(n.get("kernel_startup") or 0 for n in nbs)
        cells = sum(n.get("cells") or 0 for n in nbs)
        rows.append((r["name"], r["status"], f"{ok}/{planned}", f"{r['seconds']:.1f}" if r.get("seconds") else "-",
                     f"{ks:.1f}", f"{cells:.1f}",
                     r["output_dir"] if r["status"] == "succeeded" else "(none: nothing written)"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows)


def _report(results: list[dict], wall: float) -> int:
    sys.stderr.flush()
    print(summary_table(results))
    n_ok = sum(r["status"] == "succeeded" for r in results)
    print(f"{n_ok} of {len(results)} runs succeeded in {wall:.1f} s")
    for r in results:
        if r["status"] != "succeeded":
            print(f"survey: {failure_line(r)}", file=sys.stderr)
    sys.stdout.flush()
    return 0 if n_ok == len(results) and results else 1


def _parser(prog: str, many: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=(
        "Execute the analysis notebooks of parameter sets with papermill; outputs in outputs/<run-name>/"))
    p.add_argument("parameters", nargs="+" if many else 1, help="parameter set(s): parameters/<name>.yaml")
    if many:
        p.add_argument("--jobs", "-j", type=int, default=None,
                       help="local process workers (default: half the CPUs, at most one per run)")
        p.add_argument("--scheduler", default=None,
                       help="address of a Dask distributed scheduler (tcp://host:8786) to run on instead")
    p.add_argument("--notebooks", default=None, help="only these notebooks (comma-separated), in run order")
    p.add_argument("--notebook-dir", default=None, help="folder of the notebooks (default: <project>/notebooks)")
    p.add_argument("--root", default=None, help="project root for relative paths (default: found from the "
                                                "parameter file: the folder with pyproject.toml or .git)")
    p.add_argument("--check", action="store_true", help="only check the parameter sets")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _main(argv, many: bool) -> int:
    prog = "survey batch" if many else "survey run"
    args = _parser(prog, many).parse_args(argv)
    files = list(args.parameters)
    notebooks = [n.strip() for n in args.notebooks.split(",") if n.strip()] if args.notebooks else None
    try:
        if notebooks:
            bad = [n for n in notebooks if n not in NOTEBOOKS]
            if bad:
                raise ParameterError(f"--notebooks: unknown notebook '{bad[0]}' (notebooks: {', '.join(NOTEBOOKS)})")
        if getattr(args, "jobs", None) is not None and args.jobs < 1:
            raise ParameterError("--jobs must be 1 or more")
        if args.check:
            configs, failures = plan(files, notebooks, args.root)
            for c in configs:
                print(f"ok     {c.source}: run '{c.name}', notebooks {', '.join(c.notebooks)} -> {c.output_dir}")
            for r in failures:
                print(f"survey: {failure_line(r)}", file=sys.stderr)
            return 1 if failures else 0
        if not many:  # survey run: a parameter set that cannot run is a usage error (one line, exit 2)
            configs, failures = plan(files, notebooks, args.root)
            if failures and not configs:
                for r in failures:
                    print(f"survey: {failure_line(r)}", file=sys.stderr)
                return 2
        t0 = time.perf_counter()
        results = run_batch(files, jobs=1 if not many else args.jobs, scheduler=getattr(args, "scheduler", None),
                            notebook_dir=args.notebook_dir, notebooks=notebooks, root=args.root,
                            progress=False if args.no_progress else None)
        code = _report(results, time.perf_counter() - t0)
        ok = [r for r in results if r["status"] == "succeeded"]
        if ok:
            print("reports: " + "; ".join(f"{r['output_dir']}/*.html" for r in ok))
        return code
    except SurveyError as e:
        print(f"survey: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("survey: interrupted", file=sys.stderr)
        return 130


def run_main(argv: list[str] | None = None) -> int:
    """``survey run parameters/X.yaml``: one parameter set."""
    return _main(list(sys.argv[1:] if argv is None else argv), many=False)


def batch_main(argv: list[str] | None = None) -> int:
    """``survey batch parameters/*.yaml --jobs N [--scheduler tcp://host:8786]``."""
    return _main(list(sys.argv[1:] if argv is None else argv), many=True)


def _worker_main(argv: list[str]) -> int:
    """``python -m survey.batch --worker PARAMS --result OUT.json``: one run in this process."""
    p = argparse.ArgumentParser(prog="python -m survey.batch --worker")
    p.add_argument("--worker", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--notebook-dir", default=None)
    p.add_argument("--notebooks", default=None)
    p.add_argument("--root", default=None)
    a = p.parse_args(argv)
    nbs = a.notebooks.split(",") if a.notebooks else None
    worker_init()
    res = execute_run(a.worker, a.notebook_dir, nbs, a.root, None, redirect_stderr=True)
    Path(a.result).write_text(json.dumps(res, default=str), encoding="utf-8")
    return 0 if res["status"] == "succeeded" else 1


if __name__ == "__main__":  # pragma: no cover
    if "--worker" in sys.argv[1:]:
        sys.exit(_worker_main(sys.argv[1:]))
    sys.exit(batch_main())
