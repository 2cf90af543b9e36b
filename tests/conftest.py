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


SCREENER_DATA = ROOT / "data" / "synthetic-screener"
SCREENER_SPEC = ROOT / "specs" / "synthetic-screener.yaml"


@pytest.fixture(scope="session", autouse=True)
def screener_synthetic_data():
    """The data of specs/synthetic-screener.yaml and parameters/synthetic-screener.yaml
    (`survey synth --variant screener --out data/synthetic-screener --households 5000 --seed 1`),
    generated once if missing (under a second)."""
    from survey.synth import synth_screener

    if not (SCREENER_DATA / "respondents.sav").exists():
        synth_screener(SCREENER_DATA, households=5000, seed=1)
    return SCREENER_DATA


def write_no_design_survey(folder: Path, households: int = 5000, seed: int = 1) -> Path:
    """The screener survey written without strata and PSU (``--no-design``) into ``folder``, with
    a copy of specs/synthetic-screener.yaml pointing at it (strata and psu null); returns the spec."""
    import yaml

    from survey.spec import load_yaml
    from survey.synth import synth_screener

    data = synth_screener(folder / "data", households=households, seed=seed, design=False)
    raw = load_yaml(SCREENER_SPEC.read_text())  # YAML 1.2: `on:` is a key, not True
    raw["survey"] = "synthetic_screener_nodesign"
    raw["design"]["strata"] = None
    raw["design"]["psu"] = None
    for f in raw["files"].values():
        f["path"] = str(data / "respondents.sav")
    spec = folder / "synthetic-screener-nodesign.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    return spec


SCREENER_RUNS = ("synthetic-screener", "screener-5y", "screener-nodesign", "template-icvs", "template-csew")


def write_template_surveys(folder: Path) -> dict[str, Path]:
    """The shipped templates specs/templates/{icvs,csew}-style.yaml copied next to the synthetic
    files of tests/templates/make_files.py; returns {"icvs": spec, "csew": spec}."""
    import importlib.util
    import shutil
    import sys

    path = Path(__file__).parent / "templates" / "make_files.py"
    spec = importlib.util.spec_from_file_location("template_make_files_conftest", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    folder.mkdir(parents=True, exist_ok=True)
    mod.make_icvs(folder)
    mod.make_csew(folder)
    out = {}
    for name in ("icvs", "csew"):
        out[name] = Path(shutil.copy(ROOT / "specs" / "templates" / f"{name}-style.yaml", folder))
    return out


@pytest.fixture(scope="session")
def screener_publication(tmp_path_factory, screener_synthetic_data):
    """A publication root made by the real batch (papermill, two worker processes) on the
    screener survey: ``synthetic-screener`` (parameters/synthetic-screener.yaml, every
    notebook), ``screener-5y`` (every notebook on the 5-year screeners only: no count item, so
    no repeat victimization, no Lorenz curves) and ``screener-nodesign`` (the file without strata
    or PSU; ingest, victimization, fear, summary), ``template-icvs`` and ``template-csew`` (the
    shipped templates on their synthetic files; ingest, victimization, repeat, summary).  About
    two minutes, once a session.
    ``$SURVEY_TEST_SCREENER_PUBLICATION`` names an existing root to reuse instead."""
    import yaml

    from survey.batch import run_batch

    reuse = os.environ.get("SURVEY_TEST_SCREENER_PUBLICATION")
    if reuse and all((Path(reuse) / name / "manifest.json").exists() for name in SCREENER_RUNS):
        return Path(reuse)

    base = tmp_path_factory.mktemp("screener-publication")
    root = base / "outputs"
    sets = base / "parameters"
    sets.mkdir()
    nodesign = write_no_design_survey(base / "nodesign")
    raw = yaml.safe_load((ROOT / "parameters" / "synthetic-screener.yaml").read_text())
    runs = {
        "synthetic-screener": raw,
        "screener-5y": {**raw, "name": "screener-5y", "description": "5-year screeners only",
                        "crime_types": ["burglary_5y", "household_5y", "assault_5y", "personal_5y"]},
        "screener-nodesign": {**raw, "name": "screener-nodesign", "spec": str(nodesign),
                              "description": "weights only: no strata or PSU",
                              "notebooks": ["ingest", "victimization", "fear", "summary"]},
    }
    for name, tpl in write_template_surveys(base / "templates").items():
        runs[f"template-{name}"] = {"name": f"template-{name}", "spec": str(tpl), "description": f"{name} template",
                                    "notebooks": ["ingest", "victimization", "repeat", "summary"]}
    files = []
    for name, values in runs.items():
        values = dict(values, output_dir=str(root / name))
        target = sets / f"{name}.yaml"
        target.write_text(yaml.safe_dump(values, sort_keys=False))
        files.append(str(target))
    results = run_batch(files, jobs=2, notebook_dir=str(ROOT / "notebooks"), root=str(ROOT), progress=False)
    failed = [r for r in results if r["status"] != "succeeded"]
    assert not failed, failed
    return root


@pytest.fixture(scope="session")
def three_waves(publication, tmp_path_factory):
    """A publication root with three waves of the synthetic survey: the runs of ``publication``
    (demo: 'Synthetic year'; synthetic-two-waves: 'Year 2' against 'Year 1') and a third run on
    `survey synth --seed 3` data, period 'Year 3' (ingest and victimization notebooks, the real
    batch), so that the dashboards can draw trend lines over published waves."""
    import shutil

    import yaml

    from survey.batch import run_batch
    from survey.cli import main as cli_main

    base = tmp_path_factory.mktemp("three-waves")
    root = base / "outputs"
    root.mkdir()
    for name in PUBLICATION_RUNS:
        shutil.copytree(Path(publication) / name, root / name)
    data = ROOT / "data" / "synthetic-year3"
    if not (data / "households.sav").exists():
        assert cli_main(["synth", "--out", str(data), "--households", "5000", "--seed", "3"]) in (0, None)
    raw = yaml.safe_load((ROOT / "parameters" / "synthetic-two-waves.yaml").read_text())
    raw.update(name="synthetic-year3", description="Year 3 of the synthetic survey", data_dir=str(data),
               period="Year 3", notebooks=["ingest", "victimization"], output_dir=str(root / "synthetic-year3"))
    raw.pop("compare", None)
    target = base / "synthetic-year3.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False))
    results = run_batch([str(target)], jobs=1, notebook_dir=str(ROOT / "notebooks"), root=str(ROOT), progress=False)
    assert all(r["status"] == "succeeded" for r in results), results
    return root
