"""Shared fixtures: R's api data sets (committed under tests/reference/data)."""

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
