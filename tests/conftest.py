"""Shared fixtures: R's api data sets (committed under tests/reference/data)."""

import os
from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).parent / "reference" / "data"


def load_api(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"api{name}.csv")


@pytest.fixture(scope="session")
def apiclus1() -> pd.DataFrame:
    return load_api("clus1")


@pytest.fixture(scope="session")
def apistrat() -> pd.DataFrame:
    return load_api("strat")


@pytest.fixture(scope="session")
def apiclus2() -> pd.DataFrame:
    return load_api("clus2")


@pytest.fixture(scope="session")
def apipop() -> pd.DataFrame:
    return load_api("pop")


ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def default_synthetic_data():
    """The default data of the notebooks and parameter sets (`make run` generates it; a fresh
    clone running only `make test` has not): data/synthetic (seed 1) and data/synthetic-year2
    (seed 2), 5,000 households each, generated once if missing (a few seconds)."""
    from survey.synth import synth

    for folder, seed in (("synthetic", 1), ("synthetic-year2", 2)):
        if not (ROOT / "data" / folder / "households.sav").exists():
            synth(ROOT / "data" / folder, households=5000, seed=seed)


PUBLICATION_RUNS = ("demo", "synthetic-two-waves")


@pytest.fixture(scope="session")
def publication(tmp_path_factory, default_synthetic_data):
    """A real publication root for the dashboards: the committed parameter sets
    ``parameters/demo.yaml`` and ``parameters/synthetic-two-waves.yaml`` run by the real batch
    (papermill, every notebook of each set, two worker processes) with their outputs directed
    into a temporary root (``output_dir`` added to copies of the sets).  Run once per test
    session (about a minute).  ``$SURVEY_TEST_PUBLICATION`` names an existing root to reuse
    instead (e.g. the path a previous session printed), for quick iterations."""
    import yaml

    reuse = os.environ.get("SURVEY_TEST_PUBLICATION")
    if reuse:
        root = Path(reuse)
        if all((root / name / "manifest.json").exists() for name in PUBLICATION_RUNS):
            return root
    from survey.batch import run_batch

    base = tmp_path_factory.mktemp("publication")
    root = base / "outputs"
    sets = base / "parameters"
    sets.mkdir()
    files = []
    for name in PUBLICATION_RUNS:
        raw = yaml.safe_load((ROOT / "parameters" / f"{name}.yaml").read_text())
        raw["output_dir"] = str(root / raw.get("name", name))
        target = sets / f"{name}.yaml"
        target.write_text(yaml.safe_dump(raw, sort_keys=False))
        files.append(str(target))
    results = run_batch(files, jobs=2, notebook_dir=str(ROOT / "notebooks"), root=str(ROOT), progress=False)
    failed = [r for r in results if r["status"] != "succeeded"]
    assert not failed, failed
    return root
