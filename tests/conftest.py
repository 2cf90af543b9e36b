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
