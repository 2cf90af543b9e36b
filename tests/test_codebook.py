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


def _template_files(tmp_path):
    import importlib.util
    import shutil
    import sys

    path = ROOT / "tests" / "templates" / "make_files.py"
    spec = importlib.util.spec_from_file_location("template_make_files_cb", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    frames = {"csew": mod.make_csew(tmp_path), "icvs": mod.make_icvs(tmp_path)}
    for name in ("csew", "icvs"):
        shutil.copy(ROOT / "specs" / "templates" / f"{name}-style.yaml", tmp_path)
    return frames


@pytest.mark.parametrize("template", ["icvs", "csew"])
def test_codebook_of_the_respondent_level_templates(tmp_path, template):
    """The shipped templates (screeners, counts, reporting items, follow-ups on the respondent
    record, no incident file): every item the spec reads has its role, frequencies by hand."""
    frames = _template_files(tmp_path)
    spec = tmp_path / f"{template}-style.yaml"
    data = sv.load(spec)
    cb = codebook(data)
    assert list(cb.columns) == CODEBOOK_COLUMNS
    v = data.spec.victimization
    roles = cb.groupby("variable")["role"].first()
    for t in v.types:
        if t.victim is not None:
            assert f"screener:{t.name}" in roles[t.victim.variable]
        if t.count is not None:
            assert f"count:{t.name}" in roles[t.count.variable]
        if t.reported is not None:
            assert f"reported to police:{t.name}" in roles[t.reported.variable]
    raw, meta = pyreadstat.read_sav(str(tmp_path / f"{template}-style.sav"), user_missing=True)
    item = v.types[0].victim.variable if template == "icvs" else v.types[0].count.variable
    rows = cb[cb.variable == item]
    counts = raw[item].value_counts(dropna=False)
    expected = {("(missing)" if pd.isna(k) else f"{k:g}"): int(n) for k, n in counts.items()}
    assert dict(zip(rows.value, rows.n)) == expected
    # user-missing codes of the file are shown with their code and marked, not as "(missing)"
    for var, codes in meta.missing_ranges.items():
        shown = cb[cb.variable == var]
        for r in codes:
            hit = shown[shown.value == f"{r['lo']:g}"]
            if (raw[var] == r["lo"]).any():
                assert len(hit) == 1 and hit.value_label.iloc[0].endswith("(user-missing)"), (var, r)
    assert main(["codebook", str(spec), "--out", str(tmp_path / "cb")]) == 0
    assert frames[template] is not None
