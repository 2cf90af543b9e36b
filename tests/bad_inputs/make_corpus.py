"""Write the bad-input corpus: a tiny valid survey and one folder per broken case.

    python tests/bad_inputs/make_corpus.py            # (re)writes tests/bad_inputs/
    python tests/bad_inputs/make_corpus.py OUT_DIR    # writes the same corpus elsewhere

Deterministic: no clock, no random generator state, no absolute paths.  SPSS files get a fixed
creation date and time in their header (ReadStat stamps the current time), so running this
twice gives byte-identical files; ``tests/test_bad_inputs.py`` regenerates the corpus into a
temporary folder and checks that the committed files are the same.

Layout::

    _data/households.sav     30 households, 2 strata x 2 PSUs, value labels (valid)
    _data/incidents.sav      20 incidents (valid)
    valid/spec.yaml          the valid spec (exit 0); every case starts from it
    <case>/spec.yaml         the spec of one bad case, its defect described in its first lines
    <case>/<file>            the broken data file(s) of that case, named after the defect

The expected message of each case is checked in ``tests/test_bad_inputs.py``; ``README.md``
(written here too) lists the cases.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent

# ---------------------------------------------------------------------------------------------
# the valid survey
# ---------------------------------------------------------------------------------------------
HH_LABELS = {
    "hhid": "Household identifier",
    "stratum": "Stratum",
    "psu": "Primary sampling unit (within stratum)",
    "wt": "Household weight",
    "resp": "Interview outcome",
    "tenure": "Tenure",
    "region": "Region",
    "safedark": "How safe do you feel walking alone after dark?",
}
HH_VALUE_LABELS = {
    "resp": {0: "Non-interview", 1: "Interviewed"},
    "tenure": {1: "Owned", 2: "Rented", 3: "No cash rent"},
    "region": {1: "North", 2: "South"},
    "safedark": {1: "Very safe", 2: "Fairly safe", 3: "A bit unsafe", 4: "Very unsafe",
                 8: "Don't know", 9: "Refused"},
}
INC_LABELS = {
    "incid": "Incident identifier",
    "hhid": "Household identifier",
    "crimecode": "Type of crime",
    "police": "Reported to the police",
    "year": "Year of the incident",
    "month": "Month of the incident",
}
INC_VALUE_LABELS = {
    "crimecode": {1: "Burglary", 2: "Theft from the household", 3: "Motor vehicle theft"},
    "police": {1: "Yes", 2: "No", 8: "Don't know"},
}


def households() -> pd.DataFrame:
    """30 households: strata 1 (hh 1-15) and 2 (hh 16-30), PSUs 1 and 2 in each; hh 5 and 20
    are non-interviews (weight 0)."""
    hhid = np.arange(1, 31)
    stratum = np.where(hhid <= 15, 1, 2)
    psu = np.where((hhid - 1) % 15 < 8, 1, 2)
    resp = np.where(np.isin(hhid, [5, 20]), 0, 1)
    wt = np.where(resp == 1, 100.0 + 12.5 * (hhid % 7), 0.0)
    return pd.DataFrame({
        "hhid": hhid.astype(float),
        "stratum": stratum.astype(float),
        "psu": psu.astype(float),
        "wt": wt,
        "resp": resp.astype(float),
        "tenure": (1 + hhid % 3).astype(float),
        "region": (1 + (hhid // 4) % 2).astype(float),
        "safedark": np.array([1, 2, 3, 4, 2, 1, 8, 2, 3, 9] * 3, dtype=float),
    })


def incidents() -> pd.DataFrame:
    """20 incidents of interviewed households; incident 20 is from 2023 (excluded, counted)."""
    incid = np.arange(1, 21)
    hhid = np.array([1, 2, 2, 3, 6, 7, 9, 11, 12, 14, 16, 17, 18, 18, 21, 23, 25, 27, 29, 30])
    return pd.DataFrame({
        "incid": incid.astype(float),
        "hhid": hhid.astype(float),
        "crimecode": (1 + incid % 3).astype(float),
        "police": np.array([1, 2, 2, 8, 1, 2, 1, 2, 2, 1] * 2, dtype=float),
        "year": np.where(incid == 20, 2023, 2024).astype(float),
        "month": (1 + (incid * 5) % 12).astype(float),
    })


VALID_SPEC = """\
schema_version: 1
survey: tiny
title: Tiny synthetic victimization survey (bad-input corpus)
period: "2024"
source: tests/bad_inputs/make_corpus.py
licence: CC0
files:
  households:
    path: ../_data/households.sav
    unit: household
    keys: [hhid]
    respondents: "resp == 1"
  incidents:
    path: ../_data/incidents.sav
    unit: incident
    keys: [incid]
    link: {to: households, on: [hhid], unmatched: error}
design:
  file: households
  weights: wt
  strata: stratum
  psu: psu
  nest: true
  lonely_psu: fail
victimization:
  source: incidents
  file: incidents
  crime_code: crimecode
  types:
    - {name: burglary, label: Burglary, iccs: "0501", unit: household, codes: [1]}
    - {name: theft, label: Household theft, iccs: "0502", unit: household, codes: [2, 3]}
  groups:
    property: [burglary, theft]
  exclude:
    - {name: outside_period, where: "year != 2024", label: Outside the reference period (2024)}
  reported: {variable: police, yes: [1], no: [2], unknown: [8]}
perception:
  - {name: safe_dark, label: Feeling safe walking alone after dark, variable: safedark,
     indicator: feeling_safe, positive: [1, 2], missing: [8, 9]}
domains:
  tenure: {variable: tenure, label: Tenure, recode: {Owner: [1], Renter: [2, 3]}}
  region: {variable: region, label: Region, labels: {1: North, 2: South}}
"""


# ---------------------------------------------------------------------------------------------
# writers (deterministic)
# ---------------------------------------------------------------------------------------------
def sav_bytes(df: pd.DataFrame, labels: dict, value_labels: dict) -> bytes:
    """An SPSS .sav file as bytes, with a fixed creation date and time in its header."""
    import tempfile

    import pyreadstat

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "f.sav"
        pyreadstat.write_sav(df, str(p), column_labels={c: labels.get(c) for c in df.columns},
                             variable_value_labels={c: v for c, v in value_labels.items() if c in df.columns})
        raw = bytearray(p.read_bytes())
    # header: "$FL2", product (60), layout, case size, compression, weight index, cases (4 each),
    # bias (8), then the creation date "dd mmm yy" (9) and time "hh:mm:ss" (8) at byte 92
    assert raw[:4] == b"$FL2"
    raw[92:109] = b"01 Jan 2500:00:00"
    return bytes(raw)


def hh_sav(df: pd.DataFrame) -> bytes:
    return sav_bytes(df, HH_LABELS, HH_VALUE_LABELS)


def inc_sav(df: pd.DataFrame) -> bytes:
    return sav_bytes(df, INC_LABELS, INC_VALUE_LABELS)


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode()


def parquet_bytes(df: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({c: pa.array(df[c].to_numpy()) for c in df.columns})  # no pandas metadata
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="none")
    return buf.getvalue()


def noise(n: int, seed: str) -> bytes:
    """n pseudo-random bytes from sha256 (the same on every platform and Python version)."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest()
        i += 1
    return out[:n]


def variant(text: str, *changes: tuple[str, str]) -> str:
    """The valid spec with each ``old`` replaced by ``new`` (each ``old`` must occur once)."""
    for old, new in changes:
        assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in the spec"
        text = text.replace(old, new)
    return text


def header(name: str, what: str) -> str:
    return f"# bad-input case '{name}': {what}\n# (generated by tests/bad_inputs/make_corpus.py)\n"


# ---------------------------------------------------------------------------------------------
# the cases: name -> (description, spec text or None, {file name: bytes or None for a folder})
# ---------------------------------------------------------------------------------------------
HH = ("path: ../_data/households.sav", "path: {}")
INC = ("path: ../_data/incidents.sav", "path: {}")


def _hh(new: str) -> tuple[str, str]:
    return (HH[0], HH[1].format(new))


def _inc(new: str) -> tuple[str, str]:
    return (INC[0], INC[1].format(new))


def cases() -> dict[str, tuple[str, str | None, dict[str, bytes | None]]]:
    hh, inc = households(), incidents()
    S = VALID_SPEC
    out: dict[str, tuple[str, str | None, dict[str, bytes | None]]] = {}

    def case(name: str, what: str, spec: str | None, files: dict[str, bytes | None] | None = None):
        assert name not in out, name
        out[name] = (what, spec, files or {})

    def hh_with(**cols) -> pd.DataFrame:
        df = hh.copy()
        for col, changes in cols.items():
            for i, value in changes.items():  # i: 0-based row
                df.loc[i, col] = value
        return df

    def inc_with(**cols) -> pd.DataFrame:
        df = inc.copy()
        for col, changes in cols.items():
            for i, value in changes.items():
                df.loc[i, col] = value
        return df

    hh_sav_ok = hh_sav(hh)
    case("valid", "nothing wrong: validate exits 0 (the contrast for every other case)", S)

    # --- the spec file itself ----------------------------------------------------------------
    case("spec_missing", "the spec file does not exist (only this note is here)", None,
         {"NOTE.txt": b"spec.yaml is deliberately absent: `survey validate spec_missing/spec.yaml`\n"})
    case("spec_is_directory", "spec.yaml is a directory", None, {"spec.yaml": None})
    case("spec_not_utf8", "the spec is Latin-1, not UTF-8 (an e-acute in the title)", None,
         {"spec.yaml": variant(S, ("title: Tiny", "title: Tr\u00e8s tiny")).encode("latin-1")})
    case("spec_empty", "the spec file is empty", None, {"spec.yaml": b""})
    case("spec_top_level_list", "the spec is a YAML list, not a mapping", "- survey: tiny\n- files: {}\n")
    case("yaml_syntax_error", "a flow mapping is not closed (line 20 of spec.yaml)",
         variant(S, ("link: {to: households, on: [hhid], unmatched: error}",
                     "link: {to: households, on: [hhid], unmatched: error")))
    case("unknown_top_level_key", "'victimisation' (British spelling) for 'victimization'",
         variant(S, ("\nvictimization:\n", "\nvictimisation:\n")))
    case("unknown_nested_key", "design.lonley_psu: a typo of lonely_psu",
         variant(S, ("  lonely_psu: fail", "  lonley_psu: fail")))
    case("missing_required_key", "files.households has no 'unit'",
         variant(S, ("    unit: household\n", "")))
    case("wrong_type", "files.households.keys is a string, not a list",
         variant(S, ("keys: [hhid]", "keys: hhid")))
    case("bad_choice", "design.lonely_psu is not one of the policies",
         variant(S, ("lonely_psu: fail", "lonely_psu: fial")))
    case("schema_version_2", "schema_version 2 is not supported",
         variant(S, ("schema_version: 1", "schema_version: 2")))
    case("design_file_unknown", "design.file names no file of the spec ('household' for 'households')",
         variant(S, ("  file: households\n", "  file: household\n")))
    case("code_in_two_types", "crime code 2 is declared in burglary and theft",
         variant(S, ("codes: [1]}", "codes: [1, 2]}")))
    case("group_unknown_type", "group 'property' names a crime type that does not exist",
         variant(S, ("property: [burglary, theft]", "property: [burglary, thfet]")))

    # --- the data files: missing, unreadable, wrong format -------------------------------------
    case("data_missing", "files.households.path names a file that does not exist",
         variant(S, _hh("households_missing.sav")))
    case("data_is_directory", "files.households.path is a directory", variant(S, _hh("households.sav")),
         {"households.sav": None})
    case("data_unreadable", "a valid file that the test makes unreadable (chmod 000; skipped as root)",
         variant(S, _hh("households_unreadable.sav")), {"households_unreadable.sav": hh_sav_ok})
    case("data_truncated", "households.sav cut in its data records (the header announces 30 rows)",
         variant(S, _hh("households_truncated.sav")),
         {"households_truncated.sav": hh_sav_ok[:len(hh_sav_ok) - 600]})
    case("data_truncated_header", "households.sav cut inside its dictionary (first 300 bytes)",
         variant(S, _hh("households_cut_header.sav")), {"households_cut_header.sav": hh_sav_ok[:300]})
    case("data_random_bytes", "a .sav file of 4 KB of random bytes",
         variant(S, _hh("households_noise.sav")), {"households_noise.sav": noise(4096, "noise")})
    case("data_corrupt_after_magic", "a .sav file with a valid '$FL2' start and random bytes after",
         variant(S, _hh("households_corrupt.sav")),
         {"households_corrupt.sav": hh_sav_ok[:4] + noise(2000, "corrupt")})
    case("csv_renamed_sav", "a CSV file named .sav", variant(S, _hh("households_csv.sav")),
         {"households_csv.sav": csv_bytes(hh)})
    case("parquet_renamed_dta", "a Parquet file named .dta", variant(S, _hh("households_parquet.dta")),
         {"households_parquet.dta": parquet_bytes(hh)})
    case("sav_renamed_csv", "an SPSS file named .csv", variant(S, _hh("households_sav.csv")),
         {"households_sav.csv": hh_sav_ok})
    case("data_empty", "a .sav file of 0 bytes", variant(S, _hh("households_empty.sav")),
         {"households_empty.sav": b""})
    case("unknown_extension", "a tab-separated file with a .tsv extension",
         variant(S, _hh("households.tsv")),
         {"households.tsv": hh.to_csv(index=False, sep="\t", lineterminator="\n").encode()})
    case("csv_ragged", "a CSV file whose line 5 has a decimal comma in the weight (150,0): 9 fields, not 8",
         variant(S, _hh("households_ragged.csv")),
         {"households_ragged.csv": csv_bytes(hh).replace(b"\n4.0,1.0,1.0,150.0,", b"\n4.0,1.0,1.0,150,0,", 1)})
    case("incidents_truncated", "incidents.sav cut in its data records",
         variant(S, _inc("incidents_truncated.sav")),
         {"incidents_truncated.sav": (b := inc_sav(inc))[:len(b) - 300]})

    # --- variables named by the spec, not in the file ----------------------------------------
    case("weight_not_in_file", "design.weights 'wgt' is not in households.sav (it has 'wt')",
         variant(S, ("weights: wt", "weights: wgt")))
    case("weight_wrong_case", "design.weights 'WT' is not in households.sav (it has 'wt': only the case differs)",
         variant(S, ("weights: wt", "weights: WT")))
    case("strata_not_in_file", "design.strata 'strata' is not in households.sav (it has 'stratum')",
         variant(S, ("strata: stratum", "strata: strata")))
    case("crime_code_not_in_file", "victimization.crime_code 'crime_code' is not in incidents.sav",
         variant(S, ("crime_code: crimecode", "crime_code: crime_code")))
    case("domain_variable_not_in_file", "domains.region.variable 'regoin' is not in households.sav",
         variant(S, ("{variable: region,", "{variable: regoin,")))

    # --- weights and design among respondents -------------------------------------------------
    case("negative_weights", "3 interviewed households have a negative weight",
         variant(S, _hh("households_negative_weights.sav")),
         {"households_negative_weights.sav": hh_sav(hh_with(wt={0: -1.0, 9: -50.0, 25: -0.5}))})
    case("missing_weights", "2 interviewed households have a missing (system-missing) weight",
         variant(S, _hh("households_missing_weights.sav")),
         {"households_missing_weights.sav": hh_sav(hh_with(wt={2: np.nan, 17: np.nan}))})
    case("missing_weights_nonrespondents",
         "the 2 non-interviews have a missing weight: allowed (weight 0), counted in the accounting",
         variant(S, _hh("households_nonresp_missing_weights.sav")),
         {"households_nonresp_missing_weights.sav": hh_sav(hh_with(wt={4: np.nan, 19: np.nan}))})
    case("missing_strata", "4 households have no stratum",
         variant(S, _hh("households_missing_strata.sav")),
         {"households_missing_strata.sav": hh_sav(hh_with(stratum={1: np.nan, 3: np.nan, 16: np.nan,
                                                                   22: np.nan}))})
    case("missing_psu", "2 households have no PSU",
         variant(S, _hh("households_missing_psu.sav")),
         {"households_missing_psu.sav": hh_sav(hh_with(psu={7: np.nan, 28: np.nan}))})
    case("lonely_psu", "stratum 2 has a single PSU and lonely_psu is 'fail'",
         variant(S, _hh("households_lonely_psu.sav")),
         {"households_lonely_psu.sav": hh_sav(hh_with(psu={i: 1.0 for i in range(15, 30)}))})
    case("duplicate_keys", "households 7 and 12 appear twice (4 rows share a key)",
         variant(S, _hh("households_duplicate_keys.sav")),
         {"households_duplicate_keys.sav": hh_sav(hh_with(hhid={7: 7.0, 12: 12.0}))})
    case("missing_keys", "1 household has no hhid",
         variant(S, _hh("households_missing_key.sav")),
         {"households_missing_key.sav": hh_sav(hh_with(hhid={29: np.nan}))})
    case("respondents_none", "the respondents rule selects no row ('resp == 2')",
         variant(S, ('respondents: "resp == 1"', 'respondents: "resp == 2"')))

    persons = pd.DataFrame({"hhid": np.repeat(np.arange(1.0, 31.0), 2), "pid": np.tile([1.0, 2.0], 30),
                            "age": np.arange(60) % 70 + 16.0})
    persons.loc[[10, 41], "hhid"] = [801.0, 802.0]
    case("persons_unmatched", "2 persons (of 60) have an hhid (801, 802) that is in no household",
         variant(S, ("  incidents:\n    path:", "  persons:\n    path: persons_unmatched.sav\n    unit: person\n"
                     "    keys: [hhid, pid]\n    link: {to: households, on: [hhid]}\n  incidents:\n    path:")),
         {"persons_unmatched.sav": sav_bytes(persons, {"hhid": "Household identifier", "pid": "Person number",
                                                       "age": "Age"}, {})})

    # --- incidents ---------------------------------------------------------------------------
    unmatched = inc_with(hhid={3: 901.0, 8: 902.0, 15: 903.0})
    case("incidents_unmatched", "3 incidents have an hhid (901-903) that is in no household",
         variant(S, _inc("incidents_unmatched.sav")), {"incidents_unmatched.sav": inc_sav(unmatched)})
    case("incidents_unmatched_exclude",
         "the same 3 incidents with link.unmatched: exclude: allowed, counted in the accounting",
         variant(S, _inc("incidents_unmatched.sav"), ("unmatched: error", "unmatched: exclude")),
         {"incidents_unmatched.sav": inc_sav(unmatched)})
    case("incidents_of_nonrespondents", "2 incidents belong to non-interviewed households (5 and 20)",
         variant(S, _inc("incidents_nonrespondents.sav")),
         {"incidents_nonrespondents.sav": inc_sav(inc_with(hhid={4: 5.0, 12: 20.0}))})
    case("duplicate_incident_keys", "incidents 3 and 11 appear twice (4 rows share an incid)",
         variant(S, _inc("incidents_duplicate_keys.sav")),
         {"incidents_duplicate_keys.sav": inc_sav(inc_with(incid={3: 3.0, 11: 11.0}))})
    case("crime_code_in_no_type", "codes 7 (3 incidents) and 9 (1 incident) are in no crime type",
         variant(S, _inc("incidents_unknown_codes.sav")),
         {"incidents_unknown_codes.sav": inc_sav(inc_with(crimecode={0: 7.0, 5: 7.0, 10: 7.0, 13: 9.0}))})
    case("reported_code_outside", "police code 5 (2 incidents) is not in yes/no/unknown",
         variant(S, _inc("incidents_police_5.sav")),
         {"incidents_police_5.sav": inc_sav(inc_with(police={1: 5.0, 6: 5.0}))})
    case("period_excludes_all", "every incident is from 2023: the 2024 reference-period rule excludes all 20",
         variant(S, _inc("incidents_2023.sav")),
         {"incidents_2023.sav": inc_sav(inc.assign(year=2023.0))})
    case("exclusion_missing_column", "the exclusion rule uses 'yaer', not a column of incidents.sav",
         variant(S, ('where: "year != 2024"', 'where: "yaer != 2024"')))
    case("exclusion_bad_syntax", "the exclusion rule is not a valid expression ('year !=')",
         variant(S, ('where: "year != 2024"', 'where: "year !="')))
    case("respondents_bad_syntax", "the respondents rule is not a valid expression ('resp = = 1')",
         variant(S, ('respondents: "resp == 1"', 'respondents: "resp = = 1"')))
    # --- conditions that would run code (specs are data: refused when the spec is read) -------
    case("expression_attribute_access", "the exclusion rule reaches os.system through attribute access",
         variant(S, ('where: "year != 2024"',
                     "where: \"year.__class__.__init__.__globals__['sys'].modules['os'].system('touch pwned')\"")))
    case("expression_call", "the respondents rule calls __import__",
         variant(S, ('respondents: "resp == 1"', "respondents: \"__import__('os').system('touch pwned') == 0\"")))
    case("expression_lambda", "the series-free exclusion rule is a lambda",
         variant(S, ('where: "year != 2024"', 'where: "(lambda: 1)() == 1"')))

    # --- codes outside the declared value sets -----------------------------------------------
    case("domain_code_without_label", "region code 3 (3 households) has no label in domains.region.labels",
         variant(S, _hh("households_region_3.sav")),
         {"households_region_3.sav": hh_sav(hh_with(region={2: 3.0, 14: 3.0, 26: 3.0}))})
    case("domain_recode_missing_code", "tenure code 4 (2 households) is in no recode group",
         variant(S, _hh("households_tenure_4.sav")),
         {"households_tenure_4.sav": hh_sav(hh_with(tenure={10: 4.0, 21: 4.0}))})
    case("perception_code_outside_labels", "safedark code 5 (2 households) is outside its value labels",
         variant(S, _hh("households_safedark_5.sav")),
         {"households_safedark_5.sav": hh_sav(hh_with(safedark={6: 5.0, 16: 5.0}))})
    return out


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def write(out: Path = HERE) -> list[Path]:
    """Write the corpus under ``out``; return the paths written (folders as ``<dir>/.gitkeep``)."""
    out = Path(out)
    written: list[Path] = []

    def put(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)

    put(out / ".gitattributes", b"* -text\n")  # keep the bytes exact on every checkout
    put(out / "_data" / "households.sav", hh_sav(households()))
    put(out / "_data" / "incidents.sav", inc_sav(incidents()))
    readme = [
        "# Bad-input corpus",
        "",
        "Generated by `make_corpus.py` (deterministic; `tests/test_bad_inputs.py` checks that the",
        "committed files are what it writes). `_data/` holds a tiny valid survey (30 households in",
        "2 strata x 2 PSUs with value labels, 20 incidents); each other folder is one case: its",
        "`spec.yaml` (a copy of `valid/spec.yaml` with one change) and the broken file(s).",
        "Every bad case must give one `survey: error:` line naming the file, the variable and the",
        "counts, and exit code 2; `valid`, `missing_weights_nonrespondents` and",
        "`incidents_unmatched_exclude` must succeed.",
        "",
        "| case | defect |",
        "| --- | --- |",
    ]
    for name, (what, spec, files) in cases().items():
        folder = out / name
        if spec is not None:
            put(folder / "spec.yaml", (header(name, what) + spec).encode())
        for fname, data in files.items():
            if data is None:  # a folder where a file is expected
                put(folder / fname / ".gitkeep", b"")
            else:
                put(folder / fname, data)
        readme.append(f"| `{name}` | {what} |")
    put(out / "README.md", ("\n".join(readme) + "\n").encode())
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    paths = write(target)
    print(f"wrote {len(paths)} files under {target}")
