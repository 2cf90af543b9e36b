"""Read survey microdata files: SPSS, Stata, SAS, CSV and Parquet, with their labels.

>>> from survey.io import read
>>> df, meta = read("ncvs_2021_household.zsav", columns=["WGTHHCY", "V2117", "V2118", "V2015"])
>>> meta.variable_labels["V2015"]
'Tenure'

One function, :func:`read`, returns a pandas DataFrame and a :class:`Metadata` record:

- **Values stay codes.** Value labels are never applied to the data (R's ``haven`` keeps them
  as ``labelled`` attributes the same way); they live in ``meta.value_labels``.
- **Only the columns a spec needs** are read (``columns=``, passed to the reader itself:
  pyreadstat ``usecols``, pandas ``usecols``, pyarrow ``columns``), in the order asked for.
- **SPSS user-defined missing values** (and Stata/SAS extended missing values ``.a``-``.z``)
  become NaN, and the original codes stay recoverable: ``meta.original_codes`` holds, per
  variable, a Series of the codes at the rows that were set to NaN, ``meta.original(df, col)``
  puts them back, and ``meta.missing_codes`` counts them (R's ``haven::read_sav(user_na=TRUE)``
  keeps them as ``labelled_spss`` values instead).
- **Large files** (SAV/ZSAV, DTA, SAS7BDAT with more than :data:`MULTIPROCESS_MIN_ROWS` rows to
  read, when at most half of their columns are read) go through pyreadstat's multiprocessing
  reader. A metadata-only read comes first: it checks the requested columns and decides.
- **Errors** are one-line :class:`~survey.errors.SurveyError` subclasses naming the file:
  :class:`FileReadError` (missing, a directory, not readable), :class:`FileFormatError` (unknown
  extension, wrong format for the extension, empty, truncated or corrupt) and
  :class:`~survey.errors.ColumnNotFoundError` (requested columns not in the file, with a
  "did you mean").
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ColumnNotFoundError, SurveyError, column_not_found

__all__ = ["read", "Metadata", "FileReadError", "FileFormatError", "FORMATS", "MULTIPROCESS_MIN_ROWS",
           "MULTIPROCESS_MAX_COLUMN_SHARE"]

#: File extension (lower case) -> ``Metadata.format``.
FORMATS: dict[str, str] = {
    ".sav": "spss",
    ".zsav": "spss",
    ".por": "spss",
    ".dta": "stata",
    ".sas7bdat": "sas7bdat",
    ".xpt": "xport",
    ".csv": "csv",
    ".parquet": "parquet",
}

#: ``multiprocess=None`` uses pyreadstat's multiprocessing reader above this many rows to read
#: (and when at most :data:`MULTIPROCESS_MAX_COLUMN_SHARE` of the file's columns are read).
MULTIPROCESS_MIN_ROWS = 200_000
#: Each worker scans the whole width of its rows but sends back only the columns read, so the
#: parallel scan pays when few columns are read; reading (nearly) all columns of a wide file,
#: shipping the chunks back and concatenating them costs about what the second process saves
#: (see benchmarks/README.md).
MULTIPROCESS_MAX_COLUMN_SHARE = 0.5

# extension -> (pyreadstat reader, what the file should be, for messages)
_PYREADSTAT = {
    ".sav": ("read_sav", "an SPSS .sav/.zsav file"),
    ".zsav": ("read_sav", "an SPSS .sav/.zsav file"),
    ".por": ("read_por", "an SPSS .por portable file"),
    ".dta": ("read_dta", "a Stata .dta file"),
    ".sas7bdat": ("read_sas7bdat", "a SAS .sas7bdat data set"),
    ".xpt": ("read_xport", "a SAS .xpt transport file"),
}
_KINDS = {  # what _sniff() can recognise -> words for messages
    "sav": "an SPSS .sav/.zsav file",
    "por": "an SPSS .por portable file",
    "dta": "a Stata .dta file",
    "sas7bdat": "a SAS .sas7bdat data set",
    "xpt": "a SAS .xpt transport file",
    "parquet": "a Parquet file",
    "zip": "a zip archive (an Excel .xlsx workbook?)",
    "gzip": "a gzip-compressed file",
    "text": "text (a CSV file?)",
}
_EXPECTED_KIND = {".sav": "sav", ".zsav": "sav", ".por": "por", ".dta": "dta", ".sas7bdat": "sas7bdat",
                  ".xpt": "xpt", ".parquet": "parquet", ".csv": "text"}
_SAS7BDAT_MAGIC = bytes.fromhex("c2ea8160b31411cfbd92080009c7318c181f1011")
_MULTIPROCESS_READERS = {"read_sav", "read_dta", "read_sas7bdat"}


class FileReadError(SurveyError, OSError):
    """A data file is missing, is a directory, or cannot be opened (permissions)."""

    def __str__(self) -> str:  # OSError would otherwise format (errno, strerror)
        return str(self.args[0]) if self.args else ""


class FileFormatError(SurveyError, ValueError):
    """A data file has an unknown extension, is not in the format its extension says, or is
    empty, truncated or corrupt."""


@dataclass(repr=False)
class Metadata:
    """What :func:`read` knows about a file besides its values.

    Attributes
    ----------
    path : Path
        The file read.
    format : str
        ``"spss"`` (.sav, .zsav, .por), ``"stata"``, ``"sas7bdat"``, ``"xport"``, ``"csv"`` or
        ``"parquet"``.
    n_rows : int or None
        Rows in the file (not only the rows read); None when the format does not record it and
        the file was read with ``row_limit`` (CSV, SPSS .por, SAS .xpt).
    columns : list of str
        The columns read, in the order of the returned DataFrame.
    file_columns : list of str
        Every column in the file, in file order.
    variable_labels : dict
        ``{column: label}`` for the labelled columns read.
    value_labels : dict
        ``{column: {code: label}}`` for the columns read that have value labels (SPSS, Stata,
        SAS with a catalog). Codes are as the reader gives them (floats for SPSS, ints for Stata).
    user_missing : dict
        ``{column: [codes]}``: user-defined missing values of the columns read. SPSS: the
        declared discrete values, and ranges as ``{"lo": lo, "hi": hi}`` (the form
        ``pyreadstat.write_sav(missing_ranges=)`` takes). Stata/SAS: the extended missing values
        found, as pyreadstat spells them (``"a"`` for Stata's ``.a``, ``"A"`` for SAS's ``.A``).
    missing_codes : DataFrame
        One row per (``variable``, ``code``) with ``n``, the number of values that held that
        user-missing code and were set to NaN.
    original_codes : dict
        ``{column: Series}``: the original codes at the rows set to NaN (index = row labels of
        the returned DataFrame).
    formats : dict
        ``{column: format}``: the original variable formats (e.g. SPSS ``F8.2``, ``A25``, Stata
        ``%9.0g``), when the format has them.
    file_label : str or None
        The file label, when the format has one.
    column_metadata : dict
        Parquet only: the key/value metadata stored on each column (decoded as text), when present.
    multiprocess : bool
        Whether pyreadstat's multiprocessing reader was used.
    """

    path: Path
    format: str
    n_rows: int | None
    columns: list[str]
    file_columns: list[str]
    variable_labels: dict[str, str] = field(default_factory=dict)
    value_labels: dict[str, dict[Any, str]] = field(default_factory=dict)
    user_missing: dict[str, list] = field(default_factory=dict)
    missing_codes: pd.DataFrame = field(default_factory=lambda: _missing_codes([]))
    original_codes: dict[str, pd.Series] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    file_label: str | None = None
    column_metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    multiprocess: bool = False

    def original(self, data: pd.DataFrame, column: str) -> pd.Series:
        """``data[column]`` with its user-missing codes put back where :func:`read` set NaN.

        Rows are matched by index label, so ``data`` may be a row subset of what was read.
        A numeric SPSS column stays numeric; a Stata/SAS column with extended missing values
        becomes ``object`` (numbers and ``"a"``...). Columns without user-missing values are
        returned unchanged (a copy).
        """
        if column not in data.columns:
            raise column_not_found(column, data.columns, "column", source=str(self.path))
        s = data[column].copy()
        codes = self.original_codes.get(column)
        if codes is None or codes.empty:
            return s
        codes = codes[codes.index.isin(s.index)]
        if not pd.api.types.is_numeric_dtype(codes.dtype) and pd.api.types.is_numeric_dtype(s.dtype):
            s = s.astype(object)
        s.loc[codes.index] = codes.to_numpy()
        return s

    def __repr__(self) -> str:
        n = "unknown" if self.n_rows is None else f"{self.n_rows:,}"
        n_missing = int(self.missing_codes["n"].sum()) if len(self.missing_codes) else 0
        return (f"Metadata({self.format} file {self.path.name!r}: {n} rows, {len(self.columns)} of "
                f"{len(self.file_columns)} columns read, {len(self.variable_labels)} variable labels, "
                f"{len(self.value_labels)} value-label sets, {n_missing:,} user-missing values set to NaN)")


def read(
    path: str | os.PathLike,
    columns: list[str] | str | None = None,
    row_limit: int | None = None,
    multiprocess: bool | None = None,
    encoding: str | None = None,
) -> tuple[pd.DataFrame, Metadata]:
    """Read a survey data file into a DataFrame of codes, and its :class:`Metadata`.

    As R's ``haven::read_sav(path, col_select=, n_max=, user_na=)`` / ``read_dta`` / ``read_sas``
    / ``read_xpt``, ``readr::read_csv`` and ``arrow::read_parquet``, with one result shape.

    Parameters
    ----------
    path
        ``.sav``, ``.zsav``, ``.por`` (SPSS), ``.dta`` (Stata), ``.sas7bdat``, ``.xpt`` (SAS)
        through pyreadstat; ``.csv`` through pandas; ``.parquet`` through pyarrow. The extension
        (any case) decides the reader.
    columns
        Read only these columns (pyreadstat ``usecols``, pandas ``usecols``, pyarrow
        ``columns``), returned in this order. Unknown names raise
        :class:`~survey.errors.ColumnNotFoundError` naming them and the file. ``None``: all.
    row_limit
        Read at most this many rows (from the top). ``None``: all.
    multiprocess
        Use ``pyreadstat.read_file_multiprocessing`` (SAV/ZSAV, DTA and SAS7BDAT only; up to
        4 processes, as many as there are CPUs). ``None`` (default): when more than
        :data:`MULTIPROCESS_MIN_ROWS` rows are to be read, at most
        :data:`MULTIPROCESS_MAX_COLUMN_SHARE` of the file's columns are read and there are at
        least 2 CPUs. Ignored for the other formats (pyarrow reads Parquet with threads already).
        ``meta.multiprocess`` says whether it was used.
    encoding
        CSV only: the text encoding (default UTF-8, checked on the whole file: a file in
        another encoding is an error naming the line, never read as mojibake).  The field
        separator is detected from the header line: ``,``, ``;``, tab or ``|``.

    Returns
    -------
    (DataFrame, Metadata)
        Statistical-package files: numeric codes (float64), strings, dates as ``datetime64``;
        value labels are *not* applied. SPSS user-defined missing values and Stata/SAS extended
        missing values are NaN, with the codes in ``meta.original_codes`` / ``meta.original()``.
        SPSS .por: pyreadstat's ``read_por`` has no user-missing option, so user-missing values
        there arrive as NaN without their codes; SAS .xpt has none either.
        CSV: pandas' type inference, no labels. Parquet: the stored types; dictionary-encoded
        columns (pandas categoricals, R factors) keep their category *strings* as values as
        pandas categoricals and no value labels are recorded (the codes behind an R factor are
        not meaningful survey codes); column labels are taken from the per-column Parquet
        metadata key ``label`` (or ``description``) when present, and all per-column metadata is
        kept in ``meta.column_metadata``; a named pandas index stored in the file is read as an
        ordinary column.

    Raises
    ------
    FileReadError
        The file does not exist, is a directory, or cannot be opened.
    FileFormatError
        Unknown extension; contents of another format (e.g. a CSV renamed ``.sav``); empty,
        truncated or corrupt file.
    ColumnNotFoundError
        Requested columns not in the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileReadError(f"file not found: {path}")
    if path.is_dir():
        raise FileReadError(f"not a file: {path} is a directory")
    if not path.is_file():  # a FIFO or a device would block or never end
        raise FileReadError(f"not a regular file: {path}")
    ext = _extension(path)
    wanted = _as_columns(columns)
    if wanted == []:
        raise SurveyError(f"columns=[] asks for no column of {path}; pass None to read them all")
    if row_limit is not None:
        if isinstance(row_limit, bool) or not isinstance(row_limit, (int, np.integer)) or row_limit < 1:
            raise SurveyError(f"row_limit must be a positive integer, got {row_limit!r} (reading {path})")
        row_limit = int(row_limit)
    _check_file(path, ext)
    if ext in _PYREADSTAT:
        return _read_pyreadstat(path, ext, wanted, row_limit, multiprocess)
    if ext == ".csv":
        return _read_csv(path, wanted, row_limit, encoding)
    return _read_parquet(path, wanted, row_limit)


def columns_of(path: str | os.PathLike, encoding: str | None = None) -> list[str]:
    """The column names of a data file, from its header only (no data read): to match a
    regular expression (replicate weights) before reading just those columns."""
    path = Path(path)
    if not path.is_file():
        raise FileReadError(f"file not found: {path}" if not path.exists() else f"not a regular file: {path}")
    ext = _extension(path)
    _check_file(path, ext)
    if ext in _PYREADSTAT:
        import pyreadstat

        fname, _ = _PYREADSTAT[ext]
        try:
            _, header = getattr(pyreadstat, fname)(str(path), metadataonly=True)
        except MemoryError:
            raise
        except Exception as e:
            raise _unreadable(path, ext, e) from None
        return list(header.column_names)
    if ext == ".csv":
        return _csv_header(path, encoding)[0]
    import pyarrow.parquet as pq

    try:
        names = pq.ParquetFile(path).schema_arrow.names
    except MemoryError:
        raise
    except Exception as e:
        raise _unreadable(path, ext, e) from None
    return [n for n in names if not n.startswith("__index_level_")]


# ---------------------------------------------------------------------------------------------
# checks shared by every format


def _extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in FORMATS:
        known = ", ".join(FORMATS)
        shown = f"'{path.suffix}'" if path.suffix else "no extension"
        raise FileFormatError(f"unknown file type ({shown}) for {path}; readable types: {known}")
    return ext


def _as_columns(columns) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [columns]
    out: list[str] = []
    for c in columns:
        if c not in out:
            out.append(c)
    return out


def _check_file(path: Path, ext: str) -> None:
    """Check that the file is readable, is not empty and is not obviously in another
    format than its extension says (from its first 4 KB)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except PermissionError:
        raise FileReadError(f"cannot read {path}: permission denied") from None
    except OSError as e:
        raise FileReadError(f"cannot read {path}: {e.strerror or e}") from None
    if not head:
        raise FileFormatError(f"{path} is empty (0 bytes)")
    expected = _EXPECTED_KIND[ext]
    kind = _sniff(head)
    mismatch = kind is not None and kind != expected
    if expected == "por" and kind == "text":
        mismatch = b"SPSSPORT" not in head[:2048]
    if expected == "text" and kind is None:
        raise FileFormatError(f"{path} is not {_what(ext)}: its contents look like binary data")
    if mismatch:
        raise FileFormatError(f"{path} is not {_what(ext)}: its contents look like {_KINDS[kind]}")


def _sniff(head: bytes) -> str | None:
    """Recognise a file format from its first bytes (None when unsure)."""
    if head.startswith((b"$FL2", b"$FL3")):
        return "sav"
    if head.startswith(b"<stata_dta>") or (
        len(head) > 1 and 102 <= head[0] <= 115 and head[1] in (1, 2)
    ):
        return "dta"
    if head[12:32] == _SAS7BDAT_MAGIC:
        return "sas7bdat"
    if head.startswith(b"HEADER RECORD*******LIB"):
        return "xpt"
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if b"SPSSPORT" in head[:2048]:
        return "por"
    if b"\x00" not in head:
        printable = sum(1 for b in head if b >= 32 or b in (9, 10, 13))
        if printable >= 0.95 * len(head):
            return "text"
    return None


def _what(ext: str) -> str:
    if ext in _PYREADSTAT:
        return _PYREADSTAT[ext][1]
    return {".csv": "a CSV file", ".parquet": "a Parquet file"}[ext]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].strip() if text and text[0].strip() else type(exc).__name__


def _unreadable(path: Path, ext: str, exc: BaseException) -> FileFormatError:
    """The one-line error for a reader failure: the file is corrupt or truncated."""
    return FileFormatError(
        f"{path} is truncated or corrupt: reading it as {_what(ext)} failed ({_first_line(exc)})"
    )


def _check_columns(path: Path, wanted: list[str] | None, file_columns: list[str]) -> list[str]:
    if wanted is None:
        return list(file_columns)
    have = set(file_columns)
    missing = [c for c in wanted if c not in have]
    if not missing:
        return wanted
    if len(missing) == 1:
        raise column_not_found(missing[0], file_columns, "requested column", source=str(path))
    parts = []
    for name in missing:
        close = difflib.get_close_matches(str(name), [str(c) for c in file_columns], n=1)
        parts.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    raise ColumnNotFoundError(
        f"{len(missing)} requested columns not found in {path} ({len(file_columns)} columns): "
        + ", ".join(parts)
    )


def _check_rows(path: Path, ext: str, got: int, n_rows: int | None, row_limit: int | None) -> None:
    if n_rows is None:
        return
    expected = n_rows if row_limit is None else min(n_rows, row_limit)
    if got < expected:
        raise FileFormatError(
            f"{path} is truncated or corrupt: read {got:,} of the {expected:,} rows its header announces"
        )


def _in_order(df: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    return df if list(df.columns) == cols else df[cols]


# ---------------------------------------------------------------------------------------------
# SPSS, Stata, SAS through pyreadstat


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _read_pyreadstat(path: Path, ext: str, wanted, row_limit, multiprocess):
    import pyreadstat

    fname, _ = _PYREADSTAT[ext]
    reader = getattr(pyreadstat, fname)  # looked up at call time (tests replace it)
    kwargs: dict[str, Any] = {"dates_as_pandas_datetime": True}
    if fname in ("read_sav", "read_dta", "read_sas7bdat"):
        kwargs["user_missing"] = True  # codes kept, set to NaN below with the originals recorded

    if ext == ".xpt" and path.stat().st_size % 80:
        # transport files are made of 80-byte records; readstat reads a cut file without error
        raise FileFormatError(
            f"{path} is truncated or corrupt: its size ({path.stat().st_size:,} bytes) is not a whole "
            f"number of 80-byte records, as {_what(ext)} must be"
        )
    try:
        _, header = reader(str(path), metadataonly=True, **kwargs)
    except MemoryError:
        raise
    except Exception as e:
        raise _unreadable(path, ext, e) from None
    file_columns = list(header.column_names)
    cols = _check_columns(path, wanted, file_columns)
    n_rows = header.number_rows
    n_rows = None if n_rows is None or n_rows < 0 else int(n_rows)
    if n_rows is None and ext == ".xpt":
        n_rows = _xport_row_count(path)

    to_read = n_rows if row_limit is None or n_rows is None else min(n_rows, row_limit)
    use_mp = False
    if fname in _MULTIPROCESS_READERS and n_rows is not None:
        if multiprocess is None:
            use_mp = (to_read > MULTIPROCESS_MIN_ROWS and _cpus() >= 2
                      and len(cols) <= MULTIPROCESS_MAX_COLUMN_SHARE * len(file_columns))
        else:
            use_mp = bool(multiprocess)
    if wanted is not None:
        kwargs["usecols"] = cols
    if row_limit is not None:
        kwargs["row_limit"] = row_limit
    try:
        if use_mp:
            df, meta = pyreadstat.read_file_multiprocessing(
                reader, str(path), num_processes=min(4, max(2, _cpus())), **kwargs
            )
        else:
            df, meta = reader(str(path), **kwargs)
    except MemoryError:
        raise
    except Exception as e:
        raise _unreadable(path, ext, e) from None
    if n_rows is None and row_limit is None:
        n_rows = len(df)  # .por / .xpt: the count is only known once read
    _check_rows(path, ext, len(df), n_rows, row_limit)
    df = _in_order(df, cols)
    if not isinstance(df.index, pd.RangeIndex):
        df = df.reset_index(drop=True)

    labels = meta.column_names_to_labels or {}
    value_labels = meta.variable_value_labels or {}
    formats = meta.original_variable_types or {}
    if fname == "read_sav":
        declared = {c: [_spss_missing(r) for r in v] for c, v in (meta.missing_ranges or {}).items()
                    if c in df.columns and v}
    else:
        declared = {c: list(v) for c, v in (meta.missing_user_values or {}).items()
                    if c in df.columns and v}
    df, missing_codes, original = _set_user_missing(df, declared, spss=fname == "read_sav")
    out = Metadata(
        path=path,
        format=FORMATS[ext],
        n_rows=n_rows,
        columns=list(df.columns),
        file_columns=file_columns,
        variable_labels={c: labels[c] for c in df.columns if labels.get(c)},
        value_labels={c: dict(value_labels[c]) for c in df.columns if value_labels.get(c)},
        user_missing=declared,
        missing_codes=missing_codes,
        original_codes=original,
        formats={c: formats[c] for c in df.columns if formats.get(c)},
        file_label=meta.file_label or None,
        multiprocess=use_mp,
    )
    return df, out


def _xport_row_count(path: Path) -> int | None:
    """The row count a SAS V8 transport file records in its ``OBSV8`` header (V5 files have none)."""
    import mmap

    tag = b"HEADER RECORD*******OBSV8   HEADER RECORD!!!!!!!"
    try:
        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            at = mm.find(tag, 0, 64 * 1024 * 1024)
            if at < 0 or at % 80 or mm.find(tag, at + 80, 64 * 1024 * 1024) >= 0:
                return None  # no V8 header, or several members
            count = mm[at + len(tag):at + 80].strip()
    except (OSError, ValueError):
        return None
    return int(count) if count.isdigit() else None


def _spss_missing(r):
    """A pyreadstat SPSS missing range as a code (lo == hi) or a ``{"lo", "hi"}`` range."""
    if isinstance(r, dict):
        return r["lo"] if r["lo"] == r["hi"] else {"lo": r["lo"], "hi": r["hi"]}
    return r


def _set_user_missing(df: pd.DataFrame, declared: dict[str, list], spss: bool):
    """Set user-missing codes to NaN; return the data, the per-code counts and the originals."""
    rows: list[tuple[str, Any, int]] = []
    original: dict[str, pd.Series] = {}
    if not declared:
        return df, _missing_codes(rows), original
    df = df.copy(deep=False)
    for col, codes in declared.items():
        s = df[col]
        if spss and pd.api.types.is_numeric_dtype(s.dtype):
            x = s.to_numpy(dtype=float, na_value=np.nan)
            mask = np.zeros(len(x), dtype=bool)
            for c in codes:
                if isinstance(c, dict):
                    mask |= (x >= c["lo"]) & (x <= c["hi"])
                elif isinstance(c, (int, float, np.number)):
                    mask |= x == c
        else:  # SPSS strings; Stata/SAS extended missing values are strings in a numeric column
            flat = [c for c in codes if not isinstance(c, dict)]
            mask = s.isin(flat).to_numpy(dtype=bool, na_value=False)
        if not mask.any():
            if not spss and s.dtype == object:
                df[col] = pd.to_numeric(s)
            continue
        kept = s[mask]
        original[col] = kept.copy()
        for code, n in kept.value_counts(sort=False).sort_index().items():
            rows.append((col, code, int(n)))
        if spss and pd.api.types.is_numeric_dtype(s.dtype):
            df[col] = np.where(mask, np.nan, x)
        elif spss:
            df[col] = s.mask(mask)
        else:
            df[col] = pd.to_numeric(s.mask(mask))
    return df, _missing_codes(rows), original


def _missing_codes(rows: list[tuple[str, Any, int]]) -> pd.DataFrame:
    """The ``Metadata.missing_codes`` table: one row per (variable, code) with its count."""
    return pd.DataFrame({
        "variable": pd.Series([r[0] for r in rows], dtype=object),
        "code": pd.Series([r[1] for r in rows], dtype=object),
        "n": pd.Series([r[2] for r in rows], dtype="int64"),
    })


# ---------------------------------------------------------------------------------------------
# CSV and Parquet


CSV_SEPARATORS = (",", ";", "\t", "|")


def _csv_header(path: Path, encoding: str | None) -> tuple[list[str], str, str]:
    """(column names, separator, encoding) of a CSV file: the whole file must decode in the
    encoding (UTF-8 unless declared), the separator is the one of ``, ; tab |`` that splits
    the header line, and no two columns may share a name."""
    import codecs
    import csv

    enc = encoding or "utf-8"
    try:
        decoder = codecs.getincrementaldecoder(enc)("strict")
    except LookupError:
        raise FileFormatError(f"{path}: unknown encoding '{enc}'") from None
    first = None
    line_no, done = 1, 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(1 << 20)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                at = line_no + chunk[:e.start].count(b"\n")
                hint = "; declare the file's encoding in the spec (encoding: latin-1, cp1252...)" \
                    if encoding is None else ""
                raise FileFormatError(f"{path} is not {enc} text: byte 0x{chunk[e.start]:02x} on line {at}"
                                      f"{hint}") from None
            if first is None:
                first = text
            elif len(first) < 65536:
                first += text
            line_no += chunk.count(b"\n")
            done += len(chunk)
            if not chunk:
                break
    head = (first or "").lstrip("\ufeff").splitlines()[0] if (first or "").strip() else ""
    if not head:
        raise FileFormatError(f"{path} has no header line (an empty CSV file)")
    counts = {sep: len(next(csv.reader([head], delimiter=sep))) for sep in CSV_SEPARATORS}
    sep = max(CSV_SEPARATORS, key=lambda c: (counts[c], c == ","))
    names = [c.strip() for c in next(csv.reader([head], delimiter=sep))]
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise FileFormatError(f"{path}: {len(dup)} column name(s) appear more than once in the header "
                              f"({', '.join(repr(d) for d in dup[:5])}); each column needs its own name")
    return names, sep, enc


def _read_csv(path: Path, wanted, row_limit, encoding=None):
    ext = ".csv"
    file_columns, sep, enc = _csv_header(path, encoding)
    try:
        pd_cols = [str(c) for c in pd.read_csv(path, nrows=0, sep=sep, encoding=enc).columns]
    except MemoryError:
        raise
    except pd.errors.EmptyDataError:
        raise FileFormatError(f"{path} has no header line (an empty CSV file)") from None
    except Exception as e:
        raise FileFormatError(f"{path} is not a readable CSV file: {_first_line(e)}") from None
    file_columns = pd_cols
    cols = _check_columns(path, wanted, file_columns)
    try:
        if row_limit is None:  # pyarrow checks every line's field count, even with usecols
            df = pd.read_csv(path, usecols=cols if wanted is not None else None, engine="pyarrow", sep=sep,
                             encoding=enc)
        else:  # a preview: no usecols, so the C parser checks the field counts
            df = pd.read_csv(path, nrows=row_limit, sep=sep, encoding=enc)[cols]
    except MemoryError:
        raise
    except Exception as e:
        bad = _ragged_line(path, len(file_columns), sep, enc)
        if bad:
            raise FileFormatError(f"{path} is not a readable CSV file: line {bad[0]} has {bad[1]} fields, "
                                  f"the header has {len(file_columns)}") from None
        raise FileFormatError(f"{path} is not a readable CSV file: {_first_line(e)}") from None
    df = _in_order(df, cols)
    meta = Metadata(path=path, format=FORMATS[ext], n_rows=len(df) if row_limit is None else None,
                    columns=list(df.columns), file_columns=file_columns)
    return df, meta


def _ragged_line(path: Path, n_fields: int, sep: str = ",", encoding: str = "utf-8"):
    """(line number, fields) of the first line whose field count is not the header's."""
    import csv

    with open(path, newline="", encoding=encoding, errors="replace") as fh:
        for i, row in enumerate(csv.reader(fh, delimiter=sep), start=1):
            if row and len(row) != n_fields:
                return i, len(row)
    return None


def _read_parquet(path: Path, wanted, row_limit):
    import pyarrow as pa
    import pyarrow.parquet as pq

    ext = ".parquet"
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        n_rows = int(pf.metadata.num_rows)
    except MemoryError:
        raise
    except Exception as e:
        raise _unreadable(path, ext, e) from None
    file_columns = [n for n in schema.names if not n.startswith("__index_level_")]
    cols = _check_columns(path, wanted, file_columns)
    nested = [(c, str(schema.field(c).type)) for c in cols if pa.types.is_nested(schema.field(c).type)]
    if nested:
        c, t = nested[0]
        raise FileFormatError(f"{path}: column '{c}' holds nested values ({t}); survey variables are one "
                              f"number or text per row ({len(nested)} such column(s))")
    try:
        if row_limit is None or row_limit >= n_rows:
            table = pf.read(columns=cols, use_pandas_metadata=False)
        else:
            batches, got = [], 0
            for batch in pf.iter_batches(batch_size=row_limit, columns=cols, use_pandas_metadata=False):
                batches.append(batch)
                got += batch.num_rows
                if got >= row_limit:
                    break
            table = pa.Table.from_batches(batches, schema=pa.schema(
                [schema.field(c) for c in cols], metadata=schema.metadata)).slice(0, row_limit)
        df = table.to_pandas()
    except MemoryError:
        raise
    except Exception as e:
        raise _unreadable(path, ext, e) from None
    if not isinstance(df.index, pd.RangeIndex) or df.index.start != 0 or df.index.name is not None:
        back = [n for n in df.index.names if n is not None and n in cols and n not in df.columns]
        df = df.reset_index(level=back) if back else df
        df = df.reset_index(drop=True)
    df = _in_order(df, cols)
    _check_rows(path, ext, len(df), n_rows, row_limit)

    column_metadata: dict[str, dict[str, str]] = {}
    labels: dict[str, str] = {}
    for c in cols:
        md = schema.field(c).metadata
        if not md:
            continue
        decoded = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in md.items()}
        column_metadata[c] = decoded
        label = decoded.get("label") or decoded.get("description")
        if label:
            labels[c] = label
    meta = Metadata(path=path, format=FORMATS[ext], n_rows=n_rows, columns=list(df.columns),
                    file_columns=file_columns, variable_labels=labels, column_metadata=column_metadata)
    return df, meta
