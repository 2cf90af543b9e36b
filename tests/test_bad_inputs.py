"""Bad input: one clear error, nothing lost.

Every case of the corpus in ``tests/bad_inputs/`` (written by ``tests/bad_inputs/make_corpus.py``)
must make ``survey validate SPEC`` exit with code 2 and exactly one stderr line
``survey: error: ...`` naming the file (the spec for spec errors), the variable and the counts,
with no traceback; ``survey.ingest.load`` must raise the matching ``SurveyError`` subclass with
the same one-line message.  The few cases that are allowed (``valid`` and the counted
exclusions) must exit 0 and show up in the row accounting.

Most CLI checks call ``survey.cli.main`` in-process (fast); a handful run the real command as
subprocesses (started together) to check the exit code and stderr of the process itself.
Cases marked ``xfail(strict=True)`` are bugs in ``src/``: the test states the behaviour wanted.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from survey.cli import main
from survey.errors import ColumnNotFoundError, LonelyPSUError, SurveyError
from survey.ingest import IngestError, load
from survey.io import FileFormatError, FileReadError
from survey.spec import SpecError

CORPUS = Path(__file__).parent / "bad_inputs"


@dataclass(frozen=True)
class Case:
    """One folder of the corpus and what its message must contain.

    error: the SurveyError subclass ``load`` raises (None: the case must succeed).
    file: the file the message must name (the spec path tail for spec errors).
    variable: the variable (or spec key) the message must name.
    counts: regexes for the counts (``\\b3\\b``, per-code counts ``7: 3``).
    extra: other regexes the message must match (case-insensitive), e.g. "did you mean 'wt'".
    xfail: reason, when src/ does not do this yet (strict xfail).
    """

    name: str
    error: type[SurveyError] | None
    file: str | None = None
    variable: str | None = None
    counts: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    xfail: str | None = None
    accounting: dict[str, int] = field(default_factory=dict)  # succeeding cases: step -> rows

    @property
    def spec(self) -> Path:
        return CORPUS / self.name / "spec.yaml"

    def param(self):
        marks = [pytest.mark.xfail(strict=True, reason=self.xfail)] if self.xfail else []
        return pytest.param(self, id=self.name, marks=marks)


def _spec(name: str) -> str:
    return f"{name}/spec.yaml"


CASES = [
    # --- succeeds ------------------------------------------------------------------------------
    Case("valid", None, accounting={"read": 30 + 20, "exclude: outside_period": 1, "incidents counted": 19}),
    Case("missing_weights_nonrespondents", None, accounting={"respondents": 28, "weights": 2}),
    Case("incidents_unmatched_exclude", None,
         accounting={"exclude: outside_period": 1, "exclude: unmatched": 3, "incidents counted": 16}),
    # --- the spec file -------------------------------------------------------------------------
    Case("spec_missing", SpecError, _spec("spec_missing"), extra=("not found",)),
    Case("spec_is_directory", SpecError, _spec("spec_is_directory"), extra=("directory",)),
    Case("spec_not_utf8", SpecError, _spec("spec_not_utf8"), extra=("utf-8",)),
    Case("spec_empty", SpecError, _spec("spec_empty"), extra=("empty|mapping",)),
    Case("spec_top_level_list", SpecError, _spec("spec_top_level_list"), extra=("mapping",)),
    Case("yaml_syntax_error", SpecError, _spec("yaml_syntax_error"), extra=("YAML", r"line 20\b")),
    Case("unknown_top_level_key", SpecError, _spec("unknown_top_level_key"), "victimisation",
         extra=("did you mean 'victimization'",)),
    Case("unknown_nested_key", SpecError, _spec("unknown_nested_key"), "lonley_psu",
         extra=("did you mean 'lonely_psu'", r"\bdesign\b")),
    Case("missing_required_key", SpecError, _spec("missing_required_key"), "files.households.unit",
         extra=("missing",)),
    Case("wrong_type", SpecError, _spec("wrong_type"), "files.households.keys", extra=("list",)),
    Case("bad_choice", SpecError, _spec("bad_choice"), "lonely_psu", extra=("'fail'",)),
    Case("schema_version_2", SpecError, _spec("schema_version_2"), "schema_version"),
    Case("design_file_unknown", SpecError, _spec("design_file_unknown"), "design.file", extra=("'household'",)),
    Case("code_in_two_types", SpecError, _spec("code_in_two_types"), "burglary", extra=(r"code 2\b", "theft")),
    Case("group_unknown_type", SpecError, _spec("group_unknown_type"), "thfet", extra=("property",)),
    Case("exclusion_bad_syntax", SpecError, _spec("exclusion_bad_syntax"), "victimization.exclude.0.where",
         extra=("year !=", "not valid")),
    Case("respondents_bad_syntax", SpecError, _spec("respondents_bad_syntax"), "files.households.respondents",
         extra=("resp = = 1", "not valid")),
    Case("expression_attribute_access", SpecError, _spec("expression_attribute_access"),
         "victimization.exclude.0.where", extra=("a call at column 1", "not allowed")),
    Case("expression_call", SpecError, _spec("expression_call"), "files.households.respondents",
         extra=("a call", "not allowed")),
    Case("expression_lambda", SpecError, _spec("expression_lambda"), "victimization.exclude.0.where",
         extra=("not allowed",)),
    # --- the data files ------------------------------------------------------------------------
    Case("data_missing", FileReadError, "households_missing.sav", extra=("not found",)),
    Case("data_is_directory", FileReadError, "data_is_directory/households.sav", extra=("directory",)),
    Case("data_truncated", FileFormatError, "households_truncated.sav", extra=("truncated",)),
    Case("data_truncated_header", FileFormatError, "households_cut_header.sav", extra=("truncated|corrupt",)),
    Case("data_random_bytes", FileFormatError, "households_noise.sav", extra=("corrupt",)),
    Case("data_corrupt_after_magic", FileFormatError, "households_corrupt.sav", extra=("corrupt",)),
    Case("csv_renamed_sav", FileFormatError, "households_csv.sav", extra=("SPSS", "CSV")),
    Case("parquet_renamed_dta", FileFormatError, "households_parquet.dta", extra=("Stata", "Parquet")),
    Case("sav_renamed_csv", FileFormatError, "households_sav.csv", extra=("CSV", "SPSS")),
    Case("data_empty", FileFormatError, "households_empty.sav", extra=("empty",)),
    Case("unknown_extension", FileFormatError, "households.tsv", extra=(r"unknown file type", r"\.tsv")),
    Case("incidents_truncated", FileFormatError, "incidents_truncated.sav", extra=("truncated",)),
    Case("csv_ragged", FileFormatError, "households_ragged.csv", extra=(r"line 5\b",)),
    # --- variables named by the spec, not in the file -----------------------------------------
    Case("weight_not_in_file", ColumnNotFoundError, "households.sav", "wgt", extra=("did you mean 'wt'",)),
    Case("weight_wrong_case", ColumnNotFoundError, "households.sav", "WT", extra=("did you mean 'wt'",)),
    Case("strata_not_in_file", ColumnNotFoundError, "households.sav", "strata",
         extra=("did you mean 'stratum'",)),
    Case("crime_code_not_in_file", ColumnNotFoundError, "incidents.sav", "crime_code",
         extra=("did you mean 'crimecode'",)),
    Case("domain_variable_not_in_file", ColumnNotFoundError, "households.sav", "regoin",
         extra=("did you mean 'region'",)),
    Case("exclusion_missing_column", ColumnNotFoundError, "incidents.sav", "yaer", extra=("did you mean 'year'",)),
    # --- weights, design and keys among respondents ------------------------------------------
    Case("negative_weights", IngestError, "households_negative_weights.sav", "wt", (r"\b3\b",),
         extra=("negative",)),
    Case("missing_weights", IngestError, "households_missing_weights.sav", "wt", (r"\b2\b",), extra=("missing",)),
    Case("missing_strata", IngestError, "households_missing_strata.sav", "stratum", (r"\b4\b",)),
    Case("missing_psu", IngestError, "households_missing_psu.sav", "psu", (r"\b2\b",)),
    Case("lonely_psu", LonelyPSUError, "households_lonely_psu.sav", "'stratum'", (r"\b1\b",),
         extra=(r"\b2(\.0)?\b",)),
    Case("duplicate_keys", IngestError, "households_duplicate_keys.sav", "hhid", (r"\b4\b",)),
    Case("missing_keys", IngestError, "households_missing_key.sav", "hhid", (r"\b1\b",)),
    Case("respondents_none", IngestError, "households.sav", "resp", (r"\b30\b",)),
    Case("persons_unmatched", IngestError, "persons_unmatched.sav", "hhid", (r"\b2\b",)),
    # --- incidents -----------------------------------------------------------------------------
    Case("incidents_unmatched", IngestError, "incidents_unmatched.sav", "hhid", (r"\b3\b",)),
    Case("incidents_of_nonrespondents", IngestError, "incidents_nonrespondents.sav", "resp", (r"\b2\b",),
         extra=("non-respondent", "households")),
    Case("duplicate_incident_keys", IngestError, "incidents_duplicate_keys.sav", "incid", (r"\b4\b",)),
    Case("crime_code_in_no_type", IngestError, "incidents_unknown_codes.sav", "crimecode",
         (r"\b4\b", r"\b7: 3\b", r"\b9: 1\b")),
    Case("reported_code_outside", IngestError, "incidents_police_5.sav", "police", (r"\b2\b", r"\b5: 2\b")),
    Case("period_excludes_all", IngestError, "incidents_2023.sav", "year", (r"\b20\b",),
         extra=("outside_period",)),
    # --- codes outside the declared value sets -----------------------------------------------
    Case("domain_code_without_label", IngestError, "households_region_3.sav", "region",
         (r"\b3\b", r"\b3: 3\b")),
    Case("domain_recode_missing_code", IngestError, "households_tenure_4.sav", "tenure",
         (r"\b2\b", r"\b4: 2\b")),
    Case("perception_code_outside_labels", IngestError, "households_safedark_5.sav", "safedark",
         (r"\b2\b", r"\b5: 2\b")),
]
BAD = [c for c in CASES if c.error is not None]
GOOD = [c for c in CASES if c.error is None]
BY_NAME = {c.name: c for c in CASES}
# run as real subprocesses (the rest through survey.cli.main in-process)
SUBPROCESS = ["valid", "spec_missing", "crime_code_in_no_type"]


def problems(case: Case, msg: str) -> list[str]:
    """What the message of a bad case lacks (empty when it is right)."""
    out = []
    if "\n" in msg.strip():
        out.append("more than one line")
    if "Traceback" in msg:
        out.append("a traceback")
    if case.file and case.file not in msg:
        out.append(f"the file {case.file!r}")
    if case.variable and not re.search(rf"(?<!\w){re.escape(case.variable)}(?![\w])", msg):
        out.append(f"the variable {case.variable!r}")
    for rx in case.counts:
        if not re.search(rx, msg):
            out.append(f"the count /{rx}/")
    for rx in case.extra:
        if not re.search(rx, msg, re.I):
            out.append(f"/{rx}/")
    return out


def check_stderr(case: Case, code: int, err: str) -> None:
    assert code == 2, f"exit code {code}, stderr: {err!r}"
    assert "Traceback" not in err, err
    assert err.endswith("\n") and err.count("\n") == 1, f"not exactly one line: {err!r}"
    assert err.startswith("survey: error: "), err
    missing = problems(case, err)
    assert not missing, f"the message lacks {', '.join(missing)}: {err.strip()}"


# ---------------------------------------------------------------------------------------------
# the corpus
# ---------------------------------------------------------------------------------------------
def _corpus_files(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.name != "make_corpus.py"}


def _same(a: Path, b: Path) -> bool:
    x, y = a.read_bytes(), b.read_bytes()
    if x == y:
        return True
    if x[:4] == y[:4] == b"PAR1":  # Parquet records the writer's version: compare contents
        import pyarrow.parquet as pq

        return pq.read_table(a).equals(pq.read_table(b))
    return False


def test_corpus_is_reproducible(tmp_path):
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.write(tmp_path)
    committed, fresh = _corpus_files(CORPUS), _corpus_files(tmp_path)
    assert sorted(committed) == sorted(fresh), "run `python tests/bad_inputs/make_corpus.py` (and delete stale files)"
    differ = [k for k in committed if not _same(committed[k], fresh[k])]
    assert not differ, f"committed corpus files differ from make_corpus.py's output: {differ}"


def test_every_case_has_a_test():
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders == set(BY_NAME) | {"data_unreadable"}, folders ^ (set(BY_NAME) | {"data_unreadable"})
    assert len(BAD) >= 25
    assert len(CASES) == len(BY_NAME)


# ---------------------------------------------------------------------------------------------
# survey validate (in-process) and the Python API
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [c.param() for c in BAD if c.name not in SUBPROCESS])
def test_validate_bad(case, capsys):
    code = main(["validate", str(case.spec)])
    check_stderr(case, code, capsys.readouterr().err)


@pytest.mark.parametrize("case", [c.param() for c in GOOD if c.name not in SUBPROCESS])
def test_validate_good(case, capsys):
    code = main(["validate", str(case.spec)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    assert "ok: every row is accounted for" in out


@pytest.mark.parametrize("case", [c.param() for c in BAD])
def test_api_bad(case):
    with pytest.raises(SurveyError) as info:
        load(case.spec).design()  # as `survey validate`: the design is built on first use
    assert isinstance(info.value, case.error), f"{type(info.value).__name__}: {info.value}"
    missing = problems(case, str(info.value))
    assert not missing, f"the message lacks {', '.join(missing)}: {info.value}"


@pytest.mark.parametrize("case", [c.param() for c in GOOD])
def test_api_good_is_accounted(case):
    data = load(case.spec)
    data.design()
    acc = data.accounting.groupby("step")["rows"].sum()
    for step, rows in case.accounting.items():
        assert acc.get(step) == rows, f"{step}: {acc.get(step)} rows, expected {rows}\n{data.accounting}"
    if data.incidents is not None:  # every incident read is excluded, ignored or counted, once
        read = int(data.accounting.query("step == 'read' and file == 'incidents'")["rows"].sum())
        gone = int(data.accounting.query("file == 'incidents' and step.str.startswith('exclude')")["rows"].sum())
        assert read == gone + len(data.incidents)


# ---------------------------------------------------------------------------------------------
# the real command
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def subprocess_runs():
    """Start `python -m survey.cli validate` for the SUBPROCESS cases at once; collect them."""
    env = {k: v for k, v in os.environ.items() if k != "SURVEY_DEBUG"}  # warnings stay on: stderr as users see it
    procs = {name: subprocess.Popen([sys.executable, "-m", "survey.cli", "validate", str(BY_NAME[name].spec)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for name in SUBPROCESS}
    runs = {}
    for name, p in procs.items():
        out, err = p.communicate(timeout=120)
        runs[name] = (p.returncode, out, err)
    return runs


@pytest.mark.parametrize("name", SUBPROCESS)
def test_validate_subprocess(name, subprocess_runs):
    case = BY_NAME[name]
    code, out, err = subprocess_runs[name]
    if case.error is None:
        assert code == 0, err
        assert "ok: every row is accounted for" in out
        assert "Traceback" not in err
    else:
        check_stderr(case, code, err)


def test_unreadable_data_file(tmp_path, capsys):
    """chmod 000: root reads it anyway (CI runs as root), so this only runs as another user."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading the file")
    shutil.copytree(CORPUS / "data_unreadable", tmp_path / "data_unreadable")
    shutil.copytree(CORPUS / "_data", tmp_path / "_data")
    target = tmp_path / "data_unreadable" / "households_unreadable.sav"
    target.chmod(0)
    try:
        case = Case("data_unreadable", FileReadError, "households_unreadable.sav", extra=("permission",))
        code = main(["validate", str(tmp_path / "data_unreadable" / "spec.yaml")])
        check_stderr(case, code, capsys.readouterr().err)
        with pytest.raises(FileReadError, match="permission"):
            load(tmp_path / "data_unreadable" / "spec.yaml")
    finally:
        target.chmod(0o644)


def test_data_unreadable_case_is_valid_when_readable():
    """The committed file of the chmod case is a valid survey file (only the mode breaks it)."""
    data = load(CORPUS / "data_unreadable" / "spec.yaml")
    assert len(data.respondents) == 30
