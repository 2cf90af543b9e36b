"""survey.io: reading SPSS, Stata, SAS, CSV and Parquet files with their labels.

Files are written into tmp_path with pyreadstat (write_sav/zsav, write_por, write_dta,
write_xport) and pandas/pyarrow (CSV, Parquet). pyreadstat cannot write .sas7bdat: a 16 KB file
generated with R haven lives in tests/data/io/ (see its README), and the dispatch to
pyreadstat.read_sas7bdat is also checked with a stand-in reader.
"""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyreadstat
import pytest

import survey.io as sio
from survey.errors import ColumnNotFoundError, SurveyError
from survey.io import FileFormatError, FileReadError, Metadata, read

DATA = Path(__file__).parent / "data" / "io"
NCVS = Path(__file__).resolve().parents[1] / "data" / "ncvs2021"  # in the repository

LABELS = {"id": "Household id", "sex": "Sex of respondent", "inc": "Income band", "city": "City"}
VALUE_LABELS = {"sex": {1: "Male", 2: "Female", 9: "Refused"}, "inc": {98: "Don't know", 99: "Refused"}}


def survey_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": [1.0, 2, 3, 4, 5, 6, 7, 8],
        "sex": [1.0, 2, 1, 9, 2, np.nan, 1, 9],
        "inc": [10.0, 98, 20, 99, -3, 30, 40, 98],
        "city": ["Lima", "Quito", "zz", "Lima", "Quito", "Cusco", "zz", "Lima"],
    })


@pytest.fixture()
def sav(tmp_path) -> Path:
    """A compressed SPSS file with variable labels, value labels and user-missing values."""
    path = tmp_path / "hh.zsav"
    pyreadstat.write_sav(
        survey_frame(), path, compress=True, file_label="test household file",
        column_labels=LABELS, variable_value_labels=VALUE_LABELS,
        missing_ranges={"sex": [9], "inc": [{"lo": 98, "hi": 99}, -3], "city": ["zz"]},
    )
    return path


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    assert isinstance(exc.value, SurveyError)
    return msg


# ---------------------------------------------------------------------------------------------
# SPSS


def test_zsav_values_labels_and_user_missing(sav):
    df, meta = read(sav)
    assert isinstance(meta, Metadata)
    assert meta.format == "spss" and meta.path == sav and meta.n_rows == 8
    assert meta.columns == meta.file_columns == ["id", "sex", "inc", "city"]
    assert meta.variable_labels == LABELS
    assert meta.file_label == "test household file"
    assert meta.formats["city"].startswith("A") and meta.formats["id"].startswith("F")
    # value labels stay in meta; the data keep the numeric codes
    assert meta.value_labels == {"sex": {1.0: "Male", 2.0: "Female", 9.0: "Refused"},
                                 "inc": {98.0: "Don't know", 99.0: "Refused"}}
    assert df["sex"].dtype == np.float64
    # user-missing values are NaN ...
    np.testing.assert_array_equal(df["sex"].to_numpy(), [1, 2, 1, np.nan, 2, np.nan, 1, np.nan])
    np.testing.assert_array_equal(df["inc"].to_numpy(), [10, np.nan, 20, np.nan, np.nan, 30, 40, np.nan])
    assert df["city"].isna().tolist() == [False, False, True, False, False, False, True, False]
    # ... declared as written ...
    assert meta.user_missing == {"sex": [9.0], "inc": [{"lo": 98.0, "hi": 99.0}, -3.0],
                                 "city": ["zz"]}
    # ... counted per code ...
    counts = {(r.variable, r.code): r.n for r in meta.missing_codes.itertuples()}
    assert counts == {("sex", 9.0): 2, ("inc", -3.0): 1, ("inc", 98.0): 2, ("inc", 99.0): 1, ("city", "zz"): 2}
    assert list(meta.missing_codes.columns) == ["variable", "code", "n"]
    # ... and recoverable: the sidecar holds the codes at the NaN rows, original() puts them back
    assert meta.original_codes["sex"].to_dict() == {3: 9.0, 7: 9.0}
    assert meta.original_codes["inc"].to_dict() == {1: 98.0, 3: 99.0, 4: -3.0, 7: 98.0}
    expected = survey_frame()
    for col in ["sex", "inc", "city", "id"]:
        pd.testing.assert_series_equal(meta.original(df, col), expected[col], check_dtype=False)
    # system-missing values stay missing in original(); the data frame itself is untouched
    assert np.isnan(meta.original(df, "sex")[5]) and np.isnan(df.loc[3, "sex"])
    # a row subset of the data gets back only its own codes
    assert meta.original(df.iloc[4:], "inc").tolist() == [-3.0, 30.0, 40.0, 98.0]
    with pytest.raises(ColumnNotFoundError, match="'sexx'.*did you mean 'sex'"):
        meta.original(df, "sexx")


def test_plain_sav_equals_zsav(sav, tmp_path):
    path = tmp_path / "hh.sav"
    pyreadstat.write_sav(survey_frame(), path, column_labels=LABELS, variable_value_labels=VALUE_LABELS,
                         missing_ranges={"sex": [9]})
    df, meta = read(path)
    assert meta.user_missing == {"sex": [9.0]} and meta.value_labels["sex"][9] == "Refused"
    np.testing.assert_array_equal(df["inc"], survey_frame()["inc"])  # no missing declared on inc here


def test_usecols_spss_passes_usecols_and_keeps_order(sav, monkeypatch):
    calls = []
    real = pyreadstat.read_sav

    def spy(path, **kw):
        calls.append(kw)
        return real(path, **kw)

    monkeypatch.setattr(pyreadstat, "read_sav", spy)
    df, meta = read(sav, columns=["inc", "id"])
    assert list(df.columns) == meta.columns == ["inc", "id"]
    assert meta.file_columns == ["id", "sex", "inc", "city"]
    assert meta.variable_labels == {"inc": "Income band", "id": "Household id"}
    assert set(meta.value_labels) == {"inc"} and set(meta.user_missing) == {"inc"}
    assert set(meta.missing_codes["variable"]) == {"inc"}
    assert calls[0]["metadataonly"] is True  # the header is read first to check the columns
    assert sorted(calls[-1]["usecols"]) == ["id", "inc"] and calls[-1]["user_missing"] is True
    df1, _ = read(sav, columns="sex")  # a single name is fine
    assert list(df1.columns) == ["sex"]
    df2, _ = read(sav, columns=["sex", "sex", "id"])  # repeated names are read once
    assert list(df2.columns) == ["sex", "id"]
    with pytest.raises(SurveyError, match=r"columns=\[\] asks for no column of .*hh\.zsav") as e:
        read(sav, columns=[])
    one_line(e)


def test_row_limit(sav):
    df, meta = read(sav, row_limit=3)
    assert len(df) == 3 and meta.n_rows == 8
    assert meta.original_codes["inc"].to_dict() == {1: 98.0}
    df, meta = read(sav, row_limit=100)
    assert len(df) == 8
    with pytest.raises(SurveyError, match=r"row_limit must be a positive integer, got 0"):
        read(sav, row_limit=0)


def big_sav(tmp_path, n=3000) -> Path:
    rng = np.random.default_rng(1)
    df = pd.DataFrame({f"v{i}": rng.integers(1, 6, n).astype(float) for i in range(6)})
    df.loc[rng.random(n) < 0.1, "v1"] = 9.0
    df["s"] = np.where(rng.random(n) < 0.5, "a", "b")
    path = tmp_path / "big.sav"
    pyreadstat.write_sav(df, path, column_labels={"v1": "Var one"}, missing_ranges={"v1": [9]},
                         variable_value_labels={"v1": {9: "Refused"}})
    return path


def test_multiprocess_equals_single_process(tmp_path):
    path = big_sav(tmp_path)
    df1, m1 = read(path, multiprocess=False)
    df2, m2 = read(path, multiprocess=True)
    assert not m1.multiprocess and m2.multiprocess
    pd.testing.assert_frame_equal(df1, df2)
    pd.testing.assert_frame_equal(m1.missing_codes, m2.missing_codes)
    assert m2.variable_labels == {"v1": "Var one"} and m2.user_missing == {"v1": [9.0]}
    pd.testing.assert_series_equal(m2.original(df2, "v1"), m1.original(df1, "v1"))
    df3, m3 = read(path, columns=["s", "v1"], row_limit=1001, multiprocess=True)
    assert m3.multiprocess and list(df3.columns) == ["s", "v1"] and len(df3) == 1001
    pd.testing.assert_frame_equal(df3, df1[["s", "v1"]].iloc[:1001])


def test_multiprocess_auto_threshold(tmp_path, monkeypatch):
    path = big_sav(tmp_path)
    monkeypatch.setattr(sio, "_cpus", lambda: 2)
    monkeypatch.setattr(sio, "MULTIPROCESS_MIN_ROWS", 2000)
    assert not read(path)[1].multiprocess  # 3,000 rows, but every column: not worth it
    assert read(path, columns=["v1", "v2", "s"])[1].multiprocess  # 3 of 7 columns
    assert not read(path, columns=["v1", "v2", "s", "v3"])[1].multiprocess  # 4 of 7
    assert not read(path, columns=["v1"], row_limit=1500)[1].multiprocess  # only 1,500 rows to read
    monkeypatch.setattr(sio, "MULTIPROCESS_MAX_COLUMN_SHARE", 1.0)
    assert read(path)[1].multiprocess
    monkeypatch.setattr(sio, "_cpus", lambda: 1)
    assert not read(path, columns=["v1"])[1].multiprocess  # one CPU: no point


def test_por(tmp_path):
    path = tmp_path / "hh.por"
    pyreadstat.write_por(survey_frame()[["id", "sex", "inc"]], path, column_labels=LABELS)
    df, meta = read(path, multiprocess=True)  # multiprocess is ignored for .por
    assert meta.format == "spss" and not meta.multiprocess
    assert list(df.columns) == ["ID", "SEX", "INC"]  # the portable format upper-cases names
    assert meta.n_rows == 8
    np.testing.assert_array_equal(df["INC"], survey_frame()["inc"])
    # pyreadstat 1.3.7 writes the labels into the .por but read_por does not return them
    assert meta.variable_labels.get("ID") in (None, "Household id")
    df, meta = read(path, columns=["INC"], row_limit=2)
    assert df["INC"].tolist() == [10.0, 98.0] and meta.n_rows is None  # .por has no row count


# ---------------------------------------------------------------------------------------------
# Stata and SAS


def test_dta_labels_and_extended_missing(tmp_path):
    path = tmp_path / "hh.dta"
    df0 = pd.DataFrame({
        "id": [1.0, 2, 3, 4, 5],
        "v4399": pd.Series([1.0, "a", 2.0, "b", 1.0], dtype=object),
        "name": ["p", "q", "r", "s", "t"],
    })
    pyreadstat.write_dta(df0, path, column_labels={"v4399": "Reported to police"},
                         variable_value_labels={"v4399": {1: "Yes", 2: "No"}},
                         missing_user_values={"v4399": ["a", "b"]})
    df, meta = read(path)
    assert meta.format == "stata" and meta.n_rows == 5
    assert df["v4399"].dtype == np.float64
    np.testing.assert_array_equal(df["v4399"], [1, np.nan, 2, np.nan, 1])
    assert meta.variable_labels == {"v4399": "Reported to police"}
    assert meta.value_labels == {"v4399": {1: "Yes", 2: "No"}}
    assert meta.user_missing == {"v4399": ["a", "b"]}
    assert meta.missing_codes.to_dict("list") == {"variable": ["v4399", "v4399"], "code": ["a", "b"], "n": [1, 1]}
    assert meta.original(df, "v4399").tolist() == [1.0, "a", 2.0, "b", 1.0]
    df, meta = read(path, columns=["name", "id"])
    assert list(df.columns) == ["name", "id"] and meta.user_missing == {}


def test_xport(tmp_path):
    path = tmp_path / "hh.xpt"
    pyreadstat.write_xport(survey_frame(), path, column_labels=LABELS)
    df, meta = read(path)
    assert meta.format == "xport" and meta.n_rows == 8 and meta.variable_labels == LABELS
    pd.testing.assert_frame_equal(df, survey_frame(), check_dtype=False)
    df, meta = read(path, columns=["city", "sex"], row_limit=3)
    assert list(df.columns) == ["city", "sex"] and len(df) == 3
    assert meta.n_rows == 8  # from the V8 OBS header


def test_sas7bdat_real_file():
    df, meta = read(DATA / "small.sas7bdat")
    assert meta.format == "sas7bdat" and meta.n_rows == 4
    assert meta.variable_labels == {"id": "Household id", "sex": "Sex of respondent"}
    np.testing.assert_array_equal(df["inc"], [10.5, np.nan, 30, np.nan])
    assert meta.user_missing == {"inc": ["A", "B"]}
    assert meta.original(df, "inc").tolist() == [10.5, "A", 30.0, "B"]
    assert np.isnan(meta.original(df, "sex")[3])  # system missing stays missing
    df, meta = read(DATA / "small.sas7bdat", columns=["name", "inc"], multiprocess=True)
    assert list(df.columns) == ["name", "inc"] and meta.multiprocess
    assert df["name"].tolist() == ["a", "b", "c", "d"]


def test_sas7bdat_dispatches_to_pyreadstat(tmp_path, monkeypatch):
    path = tmp_path / "x.sas7bdat"
    path.write_bytes(bytes(12) + sio._SAS7BDAT_MAGIC + bytes(500))
    calls = []

    def fake(p, **kw):
        calls.append((p, kw))
        m = pyreadstat.metadata_container(column_names=["a", "b"], number_rows=2,
                                          column_names_to_labels={"a": "A", "b": None})
        data = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
        return (data.iloc[:0] if kw.get("metadataonly") else data[kw.get("usecols", ["a", "b"])]), m

    monkeypatch.setattr(pyreadstat, "read_sas7bdat", fake)
    df, meta = read(path, columns=["a"])
    assert [c[0] for c in calls] == [str(path), str(path)]
    assert calls[0][1]["metadataonly"] and calls[1][1]["usecols"] == ["a"] and calls[1][1]["user_missing"]
    assert meta.format == "sas7bdat" and df["a"].tolist() == [1.0, 2.0] and meta.variable_labels == {"a": "A"}


# ---------------------------------------------------------------------------------------------
# CSV and Parquet


def test_csv(tmp_path):
    path = tmp_path / "hh.csv"
    survey_frame().to_csv(path, index=False)
    df, meta = read(path)
    assert meta.format == "csv" and meta.n_rows == 8 and meta.variable_labels == {} and meta.value_labels == {}
    pd.testing.assert_frame_equal(df, survey_frame(), check_dtype=False)
    df, meta = read(path, columns=["city", "inc"], row_limit=2)
    assert list(df.columns) == ["city", "inc"] and df["inc"].tolist() == [10.0, 98.0]
    assert meta.n_rows is None and meta.file_columns == ["id", "sex", "inc", "city"]


def test_parquet_categoricals_and_column_metadata(tmp_path):
    path = tmp_path / "hh.parquet"
    df0 = survey_frame().assign(tenure=pd.Categorical(["Owned", "Rented", "Owned", "No cash rent",
                                                       "Rented", "Owned", "Owned", "Rented"]))
    table = pa.Table.from_pandas(df0, preserve_index=False)
    fields = [f.with_metadata({"label": LABELS[f.name], "source": "test"}) if f.name in LABELS else f
              for f in table.schema]
    table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
    pq.write_table(table, path, row_group_size=3)
    df, meta = read(path)
    assert meta.format == "parquet" and meta.n_rows == 8
    assert isinstance(df["tenure"].dtype, pd.CategoricalDtype)  # category strings are the values
    assert df["tenure"].tolist() == df0["tenure"].tolist()
    assert meta.value_labels == {} and meta.user_missing == {}
    assert meta.variable_labels == LABELS
    assert meta.column_metadata["id"] == {"label": "Household id", "source": "test"}
    df, meta = read(path, columns=["tenure", "inc"], row_limit=5)  # spans two row groups
    assert list(df.columns) == ["tenure", "inc"] and len(df) == 5 and meta.n_rows == 8
    assert df["tenure"].tolist() == df0["tenure"].tolist()[:5] and meta.variable_labels == {"inc": "Income band"}


def test_parquet_index_is_not_a_column(tmp_path):
    path = tmp_path / "x.parquet"
    survey_frame().set_index("id").to_parquet(path)  # pandas stores the index as a column
    df, meta = read(path)
    assert meta.file_columns == ["sex", "inc", "city", "id"]  # a named index is an ordinary column
    assert list(df.columns) == meta.file_columns and df["id"].tolist() == survey_frame()["id"].tolist()
    assert isinstance(df.index, pd.RangeIndex) and df.index.start == 0
    df, _ = read(path, columns=["id", "sex"])
    assert list(df.columns) == ["id", "sex"] and df["id"].tolist() == survey_frame()["id"].tolist()
    pd.DataFrame({"a": [1, 2]}, index=[5, 6]).to_parquet(tmp_path / "y.parquet")
    df, meta = read(tmp_path / "y.parquet")
    assert meta.file_columns == ["a"] and df.index.tolist() == [0, 1]


# ---------------------------------------------------------------------------------------------
# errors: one line, naming the file


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileReadError, match=r"^file not found: .*nope\.sav$") as e:
        read(tmp_path / "nope.sav")
    one_line(e)
    assert isinstance(e.value, OSError)
    with pytest.raises(FileReadError, match=r"is a directory") as e:
        read(tmp_path)
    one_line(e)


def test_unreadable_file(sav, monkeypatch):
    real_open = builtins.open

    def deny(file, *a, **kw):
        if Path(str(file)) == sav:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *a, **kw)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(FileReadError, match=rf"^cannot read {sav}: permission denied$") as e:
        read(sav)
    one_line(e)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_permissions(sav):
    sav.chmod(0)
    try:
        with pytest.raises(FileReadError, match="permission denied"):
            read(sav)
    finally:
        sav.chmod(0o644)


def test_unknown_extension(tmp_path):
    path = tmp_path / "hh.xlsx"
    path.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(FileFormatError, match=r"unknown file type \('\.xlsx'\) for .*hh\.xlsx; readable types: "
                                              r"\.sav, \.zsav, \.por, \.dta, \.sas7bdat, \.xpt, \.csv, \.parquet") as e:
        read(path)
    one_line(e)


def write_all(tmp_path) -> dict[str, Path]:
    df = pd.concat([survey_frame()] * 40, ignore_index=True)
    files = {ext: tmp_path / f"f{ext}" for ext in [".sav", ".zsav", ".dta", ".por", ".xpt", ".csv", ".parquet"]}
    pyreadstat.write_sav(df, files[".sav"])
    pyreadstat.write_sav(df, files[".zsav"], compress=True)
    pyreadstat.write_dta(df, files[".dta"])
    pyreadstat.write_por(df, files[".por"])
    pyreadstat.write_xport(df, files[".xpt"])
    df.to_csv(files[".csv"], index=False)
    df.to_parquet(files[".parquet"])
    return files


@pytest.mark.parametrize("ext", [".sav", ".zsav", ".dta", ".por", ".xpt", ".parquet"])
def test_truncated_file(tmp_path, ext):
    src = write_all(tmp_path)[ext]
    data = src.read_bytes()
    cut = tmp_path / f"cut{ext}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FileFormatError, match=r"is truncated or corrupt") as e:
        read(cut)
    assert str(cut) in one_line(e)


def test_truncated_xport_at_a_record_boundary(tmp_path):
    src = write_all(tmp_path)[".xpt"]
    data = src.read_bytes()
    cut = tmp_path / "cut.xpt"
    cut.write_bytes(data[: (len(data) // 2) // 80 * 80])
    with pytest.raises(FileFormatError, match=r"cut\.xpt is truncated or corrupt: read [\d,]+ of the 320 rows"):
        read(cut)


@pytest.mark.parametrize(
    "src, dst, says",
    [
        (".csv", ".sav", r"is not an SPSS \.sav/\.zsav file: its contents look like text \(a CSV file\?\)"),
        (".csv", ".zsav", r"is not an SPSS \.sav/\.zsav file: its contents look like text"),
        (".csv", ".dta", r"is not a Stata \.dta file: its contents look like text"),
        (".csv", ".sas7bdat", r"is not a SAS \.sas7bdat data set: its contents look like text"),
        (".csv", ".por", r"is not an SPSS \.por portable file: its contents look like text"),
        (".csv", ".parquet", r"is not a Parquet file: its contents look like text"),
        (".parquet", ".dta", r"is not a Stata \.dta file: its contents look like a Parquet file"),
        (".sav", ".csv", r"is not a CSV file: its contents look like an SPSS \.sav/\.zsav file"),
        (".dta", ".sav", r"is not an SPSS \.sav/\.zsav file: its contents look like a Stata \.dta file"),
        (".xpt", ".sav", r"is not an SPSS \.sav/\.zsav file: its contents look like a SAS \.xpt transport"),
        (".sav", ".por", r"is not an SPSS \.por portable file: its contents look like an SPSS \.sav"),
    ],
)
def test_wrong_format_for_extension(tmp_path, src, dst, says):
    path = tmp_path / f"renamed{dst}"
    path.write_bytes(write_all(tmp_path)[src].read_bytes())
    with pytest.raises(FileFormatError, match=says) as e:
        read(path)
    assert one_line(e).startswith(str(path))


def test_corrupt_sas7bdat(tmp_path):
    path = tmp_path / "bad.sas7bdat"
    rng = np.random.default_rng(0)
    path.write_bytes(bytes(12) + sio._SAS7BDAT_MAGIC + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(FileFormatError, match=r"bad\.sas7bdat is truncated or corrupt: reading it as a SAS "
                                              r"\.sas7bdat data set failed \(.+\)$") as e:
        read(path)
    one_line(e)
    cut = tmp_path / "cut.sas7bdat"
    cut.write_bytes((DATA / "small.sas7bdat").read_bytes()[:6000])
    with pytest.raises(FileFormatError, match="cut.sas7bdat is truncated or corrupt") as e:
        read(cut)
    one_line(e)


def test_garbage_binary(tmp_path):
    path = tmp_path / "junk.sav"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(FileFormatError, match=r"junk\.sav is truncated or corrupt: reading it as an SPSS") as e:
        read(path)
    one_line(e)
    path = tmp_path / "junk.csv"
    path.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(FileFormatError, match=r"junk\.csv is not a CSV file: its contents look like binary data$") as e:
        read(path)
    one_line(e)


@pytest.mark.parametrize("ext", [".sav", ".csv", ".parquet", ".dta", ".xpt"])
def test_empty_file(tmp_path, ext):
    path = tmp_path / f"empty{ext}"
    path.write_bytes(b"")
    with pytest.raises(FileFormatError, match=rf"empty{ext} is empty \(0 bytes\)") as e:
        read(path)
    one_line(e)


@pytest.mark.parametrize("ext", [".sav", ".zsav", ".dta", ".por", ".xpt", ".csv", ".parquet"])
def test_columns_not_in_file(tmp_path, ext):
    path = write_all(tmp_path)[ext]
    upper = ext == ".por"  # .por upper-cases names
    name = (lambda s: s.upper()) if upper else (lambda s: s)
    with pytest.raises(ColumnNotFoundError) as e:
        read(path, columns=[name("id"), name("sexx")])
    msg = one_line(e)
    assert f"'{name('sexx')}'" in msg and f"did you mean '{name('sex')}'" in msg and str(path) in msg
    assert "(4 columns)" in msg
    with pytest.raises(ColumnNotFoundError) as e:
        read(path, columns=[name("sexx"), name("id"), name("incc"), "zzzzzz"])
    msg = one_line(e)
    assert msg.startswith(f"3 requested columns not found in {path} (4 columns): ")
    assert f"'{name('sexx')}' (did you mean '{name('sex')}'?)" in msg
    assert f"'{name('incc')}' (did you mean '{name('inc')}'?)" in msg and "'zzzzzz'" in msg


# ---------------------------------------------------------------------------------------------
# the real NCVS 2021 extracts (data/ncvs2021, in the repository: they must be there)

def test_ncvs_household_zsav():
    path = NCVS / "ncvs_2021_household.zsav"
    keys = ["WGTHHCY", "V2117", "V2118", "V2015"]
    df, meta = read(path, columns=keys)
    assert meta.n_rows == len(df) == 256_460 and list(df.columns) == keys
    assert len(meta.file_columns) == 12 and "IDHH" in meta.file_columns
    assert meta.multiprocess == (sio._cpus() >= 2)  # > MULTIPROCESS_MIN_ROWS rows, 4 of 12 columns
    assert meta.variable_labels == {
        "WGTHHCY": "Household weight, collection year",
        "V2117": "Pseudo-stratum code",
        "V2118": "Half-sample code (PSU within pseudo-stratum)",
        "V2015": "Tenure",
    }
    assert (df["WGTHHCY"] == 0).sum() == 106_322  # non-interviews are kept
    assert df["V2117"].nunique() == 160
    assert set(df["V2015"].dropna().unique()) == {1.0, 2.0, 3.0}
    single, m1 = read(path, columns=keys, multiprocess=False)
    assert not m1.multiprocess
    pd.testing.assert_frame_equal(df, single)


def test_ncvs_household_parquet_matches_zsav():
    cols = ["IDHH", "YEARQ", "V2015", "V2127B"]
    pz, mz = read(NCVS / "ncvs_2021_household.zsav", columns=cols)
    pp, mp = read(NCVS / "ncvs_2021_household.parquet", columns=cols)
    assert mp.n_rows == 256_460 and mp.value_labels == {}
    assert isinstance(pp["V2015"].dtype, pd.CategoricalDtype)  # R factor levels as strings
    assert (pp["IDHH"] == pz["IDHH"]).all()
    for c in ["V2015", "V2127B"]:
        as_codes = pd.to_numeric(pp[c].astype(object))
        np.testing.assert_array_equal(as_codes.to_numpy(dtype=float), pz[c].to_numpy())


def test_ncvs_incident_zsav():
    df, meta = read(NCVS / "ncvs_2021_incident.zsav", columns=["WGTVICCY", "V4399", "V4529"])
    assert meta.n_rows == len(df) == 8_982 and len(meta.file_columns) == 60 and not meta.multiprocess
    assert meta.variable_labels["V4399"] == "Reported to police (1 yes, 2 no, 3 do not know)"
    assert meta.variable_labels["V4529"] == "Type of crime code (new, NCVS)"
