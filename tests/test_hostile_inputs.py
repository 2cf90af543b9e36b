"""Values that should be refused are refused before any work, with one line naming the file,
the variable and the row count (issue: wrong numbers accepted without error)."""

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from survey.cli import main
from survey.ingest import load
from survey.io import FileReadError, read
from survey.spec import SpecError, parse_spec, read_spec

BASE = """schema_version: 1
survey: {survey}
files:
  r: {{path: {path}, unit: person, keys: [id]{extra}}}
design: {{file: r, weights: w, strata: h, psu: p, nest: true}}
victimization:
  source: respondent
  types:
    - {{name: x, unit: person, count: {{variable: n}}}}
  cap: {cap}
publication: {publication}
"""


def _frame(n=40):
    rng = np.random.default_rng(5)
    return pd.DataFrame({"id": np.arange(n) + 1, "w": rng.uniform(10, 20, n).round(2), "h": np.repeat([1, 2], n // 2),
                         "p": np.tile(np.repeat([1, 2], n // 4), 2), "n": rng.poisson(0.5, n)})


def _spec(tmp_path, path="f.csv", survey="t", extra="", cap="{rule: none}", publication="{preset: none}"):
    p = tmp_path / "s.yaml"
    p.write_text(BASE.format(survey=survey, path=path, extra=extra, cap=cap, publication=publication))
    return p


def _cli_error(capsys, spec: Path) -> str:
    code = main(["validate", str(spec)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_duplicate_csv_columns(tmp_path, capsys):
    (tmp_path / "f.csv").write_text("id,w,h,p,n,w\n1,1,1,1,0,2\n")
    err = _cli_error(capsys, _spec(tmp_path))
    assert "f.csv" in err and "'w'" in err and "more than once" in err


def test_semicolon_and_tab_separated_csv(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "f.csv", sep=";", index=False)
    a = load(_spec(tmp_path))
    df.to_csv(tmp_path / "f.csv", sep="\t", index=False)
    b = load(_spec(tmp_path))
    np.testing.assert_array_equal(a.respondents["n__x"], df["n"])
    np.testing.assert_array_equal(b.respondents["n__x"], df["n"])


def test_latin1_csv_needs_its_encoding(tmp_path, capsys):
    df = _frame()
    df["town"] = ["Zürich" if i % 3 else "Besançon" for i in range(len(df))]
    df.to_csv(tmp_path / "f.csv", index=False, encoding="latin-1")
    err = _cli_error(capsys, _spec(tmp_path))
    assert "f.csv is not utf-8 text" in err and "line 2" in err and "encoding" in err
    data = load(_spec(tmp_path, extra=", encoding: latin-1, columns: [town]"))
    assert data.respondents["town"].iloc[1] == "Zürich"
    with pytest.raises(SpecError, match="unknown encoding 'klingon'"):
        read_spec(_spec(tmp_path, extra=", encoding: klingon"))


@pytest.mark.parametrize("value,word", [(1e300, "above"), (np.inf, "infinite")])
def test_absurd_weights(tmp_path, capsys, value, word):
    df = _frame()
    df.loc[[3, 7], "w"] = value
    df.to_csv(tmp_path / "f.csv", index=False)
    err = _cli_error(capsys, _spec(tmp_path))
    assert "weight 'w'" in err and "2 respondents" in err and "rows 4, 8" in err and word in err


def test_text_weights_are_not_called_missing(tmp_path, capsys):
    df = _frame().astype({"w": object})
    df.loc[[1, 2, 5], "w"] = "12,5"  # a decimal comma in a ;-separated file
    df.to_csv(tmp_path / "f.csv", index=False, sep=";")
    err = _cli_error(capsys, _spec(tmp_path))
    assert "is not a number for 3 respondents" in err and "12,5" in err


def test_parquet_nested_column(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    df = _frame()
    t = pa.Table.from_pandas(df, preserve_index=False).append_column(
        "n2", pa.array([{"a": 1}] * len(df)))
    t = t.drop(["n"]).rename_columns([c if c != "n2" else "n" for c in t.drop(["n"]).column_names])
    pq.write_table(t, tmp_path / "f.parquet")
    err = _cli_error(capsys, _spec(tmp_path, path="f.parquet"))
    assert "column 'n' holds nested values" in err


def test_fifo_data_file_does_not_hang(tmp_path, capsys):
    os.mkfifo(tmp_path / "f.csv")
    t = time.perf_counter()
    err = _cli_error(capsys, _spec(tmp_path))
    assert "not a regular file" in err and time.perf_counter() - t < 5
    with pytest.raises(FileReadError, match="not a regular file"):
        read(tmp_path / "f.csv")


def test_regex_replicate_columns_read_from_the_header(tmp_path, monkeypatch):
    df = _frame()
    for j in range(8):
        df[f"rw{j + 1}"] = df["w"] * (1 + 0.1 * (j % 2))
    for j in range(50):
        df[f"unused{j}"] = 0.0
    df.to_csv(tmp_path / "f.csv", index=False)
    spec = _spec(tmp_path).read_text().replace(
        "design: {file: r, weights: w, strata: h, psu: p, nest: true}",
        'design: {file: r, weights: w, replicate: {columns: "^rw[0-9]+$", method: JK1}}')
    (tmp_path / "s.yaml").write_text(spec)
    import survey.io as sio

    asked = []
    real = sio.read

    def spy(path, columns=None, **kw):
        asked.append(columns)
        return real(path, columns=columns, **kw)

    monkeypatch.setattr(sio, "read", spy)
    data = load(tmp_path / "s.yaml")
    assert asked and asked[0] is not None and not any(c.startswith("unused") for c in asked[0])
    assert sum(c.startswith("rw") for c in asked[0]) == 8
    assert data.design().repw.shape[1] >= 8


@pytest.mark.parametrize("cap,word", [("{rule: fixed, value: -3}", "at least 1"), ("{rule: fixed, value: 0}", "at least 1"),
                                      ("{rule: fixed, value: .nan}", "finite"), ("{rule: fixed, value: .inf}", "finite"),
                                      ("{rule: percentile, value: 120}", "(0, 100]")])
def test_bad_caps(tmp_path, capsys, cap, word):
    _frame().to_csv(tmp_path / "f.csv", index=False)
    err = _cli_error(capsys, _spec(tmp_path, cap=cap))
    assert "victimization.cap" in err and word in err


@pytest.mark.parametrize("pub", ["{preset: bjs, max_cv: .nan}", "{preset: bjs, max_cv: -5}", "{preset: bjs, max_cv: .inf}",
                                 "{preset: ons, min_base: -1}", "{preset: cv_bands, cv_bands: [0.3, 0.15]}"])
def test_bad_publication_values(tmp_path, capsys, pub):
    _frame().to_csv(tmp_path / "f.csv", index=False)
    err = _cli_error(capsys, _spec(tmp_path, publication=pub))
    assert "publication" in err


@pytest.mark.parametrize("sid", ["../../x", "a/b", ".hidden", "x" * 80, "a b"])
def test_survey_id_is_a_safe_name(tmp_path, sid):
    _frame().to_csv(tmp_path / "f.csv", index=False)
    with pytest.raises(SpecError, match="survey"):
        read_spec(_spec(tmp_path, survey=f'"{sid}"'))


def test_respondents_rule_on_another_file_is_refused():
    spec = {"survey": "t", "files": {"h": {"path": "h.csv", "unit": "household", "keys": ["hid"]},
                                     "p": {"path": "p.csv", "unit": "person", "keys": ["pid"], "respondents": "r == 1",
                                           "link": {"to": "h", "on": ["hid"]}}},
            "design": {"file": "h", "weights": "w"}}
    with pytest.raises(SpecError, match="applies to the design file"):
        parse_spec(spec)


def test_non_finite_estimates_are_withheld():
    """A cell whose estimate is not a finite number (e.g. a Gini with no victim) is never
    published as a value, whatever the rule."""
    from survey.quality import NOT_ESTIMABLE, apply_rule

    t = pd.DataFrame({"indicator": "gini", "crime_type": "x", "domain": ["overall", "region", "region", "region"],
                      "domain_value": ["all", "A", "B", "C"], "estimate": [0.9, np.nan, 0.95, np.inf],
                      "se": [0.01, np.nan, 0.02, np.nan], "ci_low": 0.8, "ci_high": 0.99, "cv": 0.01, "deff": np.nan,
                      "n": 500, "n_cases": [40, 0, 20, 3], "weighted_base": 1e4})
    for preset in ("none", "bjs", "ons", "cv_bands"):
        out = apply_rule(t, preset).set_index("domain_value")
        assert out.loc["A", "suppressed"] and out.loc["C", "suppressed"], preset
        assert out.loc["C", "suppression_reason"] == NOT_ESTIMABLE
        assert out.loc[out.suppressed, ["estimate", "se", "ci_low"]].isna().all().all()
