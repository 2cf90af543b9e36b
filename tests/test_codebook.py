"""Codebook of a survey spec: variables, labels, frequencies (unweighted and weighted), HTML and CSV."""

from pathlib import Path

import pandas as pd
import pyreadstat
import pytest

import survey as sv
from survey.cli import main
from survey.codebook import CODEBOOK_COLUMNS, codebook

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ncvs():
    return sv.load(ROOT / "specs" / "ncvs-2021.yaml")


def test_codebook_frequencies_match_the_file(ncvs):
    cb = codebook(ncvs)
    assert list(cb.columns) == CODEBOOK_COLUMNS
    raw, _ = pyreadstat.read_sav(ROOT / "data" / "ncvs2021" / "ncvs_2021_household.zsav", usecols=["WGTHHCY", "V2015"])
    resp = raw[raw.WGTHHCY > 0]
    ten = cb[(cb.variable == "V2015")].set_index("value")
    for code in (1, 2, 3):
        assert ten.loc[str(code), "n"] == int((resp.V2015 == code).sum())
        assert ten.loc[str(code), "weighted_n"] == pytest.approx(resp.WGTHHCY[resp.V2015 == code].sum(), rel=1e-12)
    assert ten.loc["1", "value_label"] == "Owned" and ten.loc["1", "label"] == "Tenure"
    assert "domain:tenure" in ten.loc["1", "role"]
    assert ten.percent.sum() == pytest.approx(100.0)
    crime = cb[(cb.file == "incident") & (cb.variable == "crime_type")]
    assert crime.n.sum() == len(ncvs.incidents)


def test_codebook_cli_writes_html_and_csv(tmp_path, capsys):
    assert main(["codebook", str(ROOT / "specs" / "ncvs-2021.yaml"), "--out", str(tmp_path)]) == 0
    csv = pd.read_csv(tmp_path / "codebook.csv")
    html = (tmp_path / "codebook.html").read_text()
    assert {"V2015", "WGTHHCY", "V4529"} <= set(csv.variable)
    assert "Row accounting" in html and "exclude: outside_us" in html and "<table>" in html
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
