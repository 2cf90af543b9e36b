"""Airflow DAG: the survey notebooks every quarter, one PapermillOperator task per notebook.

Copy (or symlink) this file into the Airflow DAGs folder of a machine where the workbench is
installed (``pip install -e /opt/survey`` in the Python that runs the tasks, with the Jupyter
kernel ``python3`` of that environment) and set ``SURVEY_PROJECT_ROOT`` and
``SURVEY_DATA_ROOT``.

- Parameters are templated by the quarter being processed (``data_interval_start``): the
  period label, the folder of the quarter's data files, the output folder.
- Every path is absolute: the PapermillOperator sets no working directory, and the notebooks
  take all paths as parameters.
- ``prepare`` checks the parameters (the same checks as ``survey run``) and makes a clean
  temporary folder; the notebooks write into it; ``finalize`` writes the HTML reports, the
  Excel workbook and the manifest, then renames the folder onto the quarter's output folder
  (atomic: a failed quarter leaves no partial output folder; the executed notebooks stay in
  the temporary folder for inspection until the next try).
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.providers.papermill.operators.papermill import PapermillOperator

try:  # Airflow 3
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
try:
    from airflow.providers.standard.operators.python import PythonOperator
except ImportError:  # Airflow 2 without the standard provider
    from airflow.operators.python import PythonOperator

PROJECT = os.environ.get("SURVEY_PROJECT_ROOT", "/opt/survey")
DATA_ROOT = os.environ.get("SURVEY_DATA_ROOT", "/srv/survey")
NOTEBOOKS = ("ingest", "victimization", "fear", "repeat", "risk", "summary")
QUARTER = "{{ data_interval_start.year }}-Q{{ (data_interval_start.month - 1) // 3 + 1 }}"
OUTPUT = f"{DATA_ROOT}/outputs/{QUARTER}"
WORK = f"{DATA_ROOT}/outputs/.{QUARTER}.tmp"

PARAMETERS = {
    "spec": f"{PROJECT}/specs/synthetic.yaml",
    "data_dir": f"{DATA_ROOT}/data/{QUARTER}",
    "period": QUARTER,
    "publication": "ons",
    "cap_rule": "none",
    "output_dir": WORK,
    "language": "en",
    "seed": 1,
    "engine": None,  # the spec's design.engine; a streamed survey (survey.tables) has no risk models:
}                    # leave "risk" out of NOTEBOOKS then (each task streams the table once)
EXTRA = {  # parameters of one notebook only (another notebook would reject them as unknown)
    "risk": {"risk_crime_types": None},
    "summary": {"compare": None},  # e.g. {"data_dir": ".../{{ prev_quarter }}", "period": "..."}
}


def prepare(parameters: dict, work: str) -> None:
    """Check the parameters as ``survey run`` does; start from an empty work folder."""
    import shutil
    from pathlib import Path

    from survey._atomic import check_target, mark
    from survey.params import validate

    validate(dict(parameters), None, root=Path(PROJECT))
    check_target(Path(OUTPUT_OF(work)), "run folder")  # only a previous run (or a new folder) is replaced
    check_target(Path(work), "work folder")  # only the tool's own work folder is emptied
    shutil.rmtree(work, ignore_errors=True)
    Path(work).mkdir(parents=True)
    mark(Path(work), "run", run=Path(OUTPUT_OF(work)).name)


def finalize(parameters: dict, work: str, output: str, run_name: str) -> None:
    """Reports, workbook and manifest; then the work folder becomes the output folder."""
    from pathlib import Path

    from survey._atomic import check_target, run_lock
    from survey.batch import finalize as write_reports
    from survey.batch import normalize_permissions, replace_dir
    from survey.params import validate

    values = validate(dict(parameters), None, root=Path(PROJECT))
    write_reports(work, values, [{"name": nb} for nb in NOTEBOOKS], name=run_name, given=dict(parameters))
    normalize_permissions(Path(work))
    with run_lock(Path(output)):  # one writer per quarter; never anything but a previous run replaced
        check_target(Path(output), "run folder")
        replace_dir(Path(work), Path(output))


def OUTPUT_OF(work: str) -> str:  # noqa: N802 - the output folder of a work folder (.<quarter>.tmp)
    p = os.path.dirname(work)
    return os.path.join(p, os.path.basename(work).removeprefix(".").removesuffix(".tmp"))


with DAG(
    dag_id="survey_quarterly",
    description="Crime victimization survey: the analysis notebooks for each quarter",
    schedule="@quarterly",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["survey", "papermill"],
) as dag:
    start = PythonOperator(task_id="prepare", python_callable=prepare,
                           op_kwargs={"parameters": PARAMETERS, "work": WORK})
    tasks = {}
    for nb in NOTEBOOKS:
        tasks[nb] = PapermillOperator(
            task_id=nb,
            input_nb=f"{PROJECT}/notebooks/{nb}.ipynb",
            output_nb=f"{WORK}/{nb}.ipynb",
            parameters={**PARAMETERS, **EXTRA.get(nb, {})},
            kernel_name="python3",
            language_name="python",
        )
    end = PythonOperator(task_id="finalize", python_callable=finalize,
                         op_kwargs={"parameters": PARAMETERS, "work": WORK, "output": OUTPUT, "run_name": QUARTER})
    start >> tasks["ingest"] >> tasks["victimization"] >> [tasks["fear"], tasks["repeat"], tasks["risk"]]
    [tasks["fear"], tasks["repeat"], tasks["risk"]] >> tasks["summary"] >> end
