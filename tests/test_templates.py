"""The spec templates in specs/templates/ (CSEW-style and ICVS/LACSI-style) on synthetic files
shaped like those surveys (tests/templates/make_files.py).

Each template is copied, unchanged, into a temporary folder next to its generated .sav file (the
templates point at ``csew-style.sav`` / ``icvs-style.sav`` in their own folder).  Every figure is
recomputed here from the generated codes with plain numpy/pandas: the ONS 98th-percentile cap,
"too many to remember" at the cap, screener prevalence, the 0/1 coding of perception items,
domain labels, the row accounting, and design-based means and Taylor SEs.

The last tests cover what the first version of the loader lacked (skip patterns counted as 0,
the feeling-safe follow-up for respondents who never go out, respondent-level reporting to
police per crime type, caps pooled over types and fixed caps per type).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from survey.cli import main as cli_main
from survey.errors import SurveyWarning
from survey.ingest import IngestError, load
from survey.spec import SpecError, load_yaml, parse_spec, read_spec

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "specs" / "templates"


def _import_make_files():
    path = Path(__file__).parent / "templates" / "make_files.py"
    spec = importlib.util.spec_from_file_location("template_make_files", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


mf = _import_make_files()

# ------------------------------------------------------------------------------------------
# hand computations (plain numpy / pandas)
# ------------------------------------------------------------------------------------------


def weighted_percentile_cap(x: np.ndarray, w: np.ndarray, p: float) -> float:
    """The smallest count whose weighted cumulative share among victims (x > 0) reaches p%."""
    victims = x > 0
    xs, ws = x[victims], w[victims]
    total = ws.sum()
    for value in np.unique(xs):  # increasing
        if ws[xs <= value].sum() / total >= p / 100:
            return float(value)
    raise AssertionError("no victims")


def wmean(y, w) -> float:
    y, w = np.asarray(y, float), np.asarray(w, float)
    ok = ~np.isnan(y)
    return float((w[ok] * y[ok]).sum() / w[ok].sum())


def taylor_se_mean(y, w, strata, psu) -> float:
    """Linearized SE of a weighted mean: with-replacement PSUs within strata (ultimate cluster);
    rows with a missing y are a domain (score 0)."""
    y, w = np.asarray(y, float), np.asarray(w, float)
    ok = ~np.isnan(y)
    W = w[ok].sum()
    m = (w[ok] * y[ok]).sum() / W
    z = np.where(ok, w * (np.nan_to_num(y) - m) / W, 0.0)
    frame = pd.DataFrame({"h": np.asarray(strata), "j": np.asarray(psu), "z": z})
    tot = frame.groupby(["h", "j"])["z"].sum().reset_index()
    var = 0.0
    for _, g in tot.groupby("h"):
        n_h = len(g)
        var += n_h / (n_h - 1) * ((g["z"] - g["z"].mean()) ** 2).sum()
    return float(np.sqrt(var))


def steps(data, step: str) -> pd.DataFrame:
    acc = data.accounting
    return acc[acc["step"] == step]


def one_row(data, step: str, contains: str = "") -> pd.Series:
    rows = steps(data, step)
    rows = rows[rows["detail"].str.contains(contains, regex=False)]
    assert len(rows) == 1, f"expected one '{step}' row mentioning '{contains}':\n{data.accounting}"
    return rows.iloc[0]


def _copy_template(name: str, folder: Path) -> Path:
    target = folder / name
    shutil.copy(TEMPLATES / name, target)
    return target


def _variant(spec_path: Path, edit):
    """The template with an edit (a function of the parsed YAML), validated."""
    raw = load_yaml(spec_path.read_text(encoding="utf-8"))
    edit(raw)
    return parse_spec(raw, str(spec_path))


# ------------------------------------------------------------------------------------------
# generator
# ------------------------------------------------------------------------------------------


def test_generator_is_deterministic_and_round_trips(tmp_path):
    pd.testing.assert_frame_equal(mf.csew_frame(), mf.csew_frame())
    pd.testing.assert_frame_equal(mf.icvs_frame(), mf.icvs_frame())
    assert not mf.csew_frame().equals(mf.csew_frame(seed=1))
    written = mf.make_csew(tmp_path)
    back, meta = pyreadstat.read_sav(str(tmp_path / mf.CSEW_FILE), user_missing=True)
    pd.testing.assert_frame_equal(back, written, check_dtype=False)  # codes as written (99 kept)
    assert meta.missing_ranges["nburg"] == [{"lo": 99.0, "hi": 99.0}]
    assert meta.variable_value_labels["walkdark"][1.0] == "Very safe"
    written = mf.make_icvs(tmp_path)
    back, meta = pyreadstat.read_sav(str(tmp_path / mf.ICVS_FILE))
    pd.testing.assert_frame_equal(back, written, check_dtype=False)
    assert meta.variable_value_labels["safedark"][5.0] == "Never goes out alone after dark"
    # the skip pattern: asked only after a "yes"
    assert written.loc[written.burg5 != 1, ["burg12", "burgpol"]].isna().all().all()
    assert written.loc[written.burg12 != 1, "burgn"].isna().all()
    assert (mf.icvs_frame(skipped="zero").loc[written.burg12 != 1, "burgn"] == 0).all()


# ==========================================================================================
# CSEW-style
# ==========================================================================================
CSEW_TYPES = {  # crime type: (count item, weight of its unit)
    "burglary": ("nburg", "hhdwgt"),
    "theft_from_vehicle": ("ntfv", "hhdwgt"),
    "criminal_damage": ("ndamage", "hhdwgt"),
    "assault": ("nassault", "indivwgt"),
    "robbery": ("nrobbery", "indivwgt"),
}


@pytest.fixture(scope="module")
def csew(tmp_path_factory):
    folder = tmp_path_factory.mktemp("csew")
    raw = mf.make_csew(folder)
    spec_path = _copy_template("csew-style.yaml", folder)
    return spec_path, raw, load(spec_path)


def csew_expected(raw: pd.DataFrame, ctype: str):
    """Hand: (cap, capped counts with 97 at the cap and 99 missing, number capped)."""
    var, wcol = CSEW_TYPES[ctype]
    x = raw[var].to_numpy(float)
    refused, too_many = x == 99, x == 97
    plain = np.where(refused | too_many, 0.0, x)  # "too many" and refusals: not in the distribution
    cap = weighted_percentile_cap(plain, raw[wcol].to_numpy(float), 98)
    n = np.where(refused, np.nan, np.where(too_many, cap, np.minimum(x, cap)))
    return cap, n, int((plain > cap).sum())


def test_csew_template_validates(csew, capsys):
    spec_path, _, _ = csew
    spec = read_spec(spec_path)
    v = spec.victimization
    assert v.source == "respondent"
    assert (v.cap.rule, v.cap.value, v.cap.by) == ("percentile", 98, "type")
    assert v.type_names() == list(CSEW_TYPES)
    assert all(t.count.dont_know == [97] and t.count.dont_know_value == "cap" for t in v.types)
    assert spec.design.weights == {"household": "hhdwgt", "person": "indivwgt"}
    assert [p.name for p in spec.perception] == ["safe_dark", "worry_burglary", "worry_violence"]
    assert cli_main(["validate", str(spec_path)]) == 0
    assert "ok: every row is accounted for" in capsys.readouterr().out


def test_csew_row_accounting(csew):
    _, raw, data = csew
    n = len(raw)
    assert n == 600 and len(data.respondents) == n
    assert steps(data, "read")["rows"].tolist() == [n, n]  # the file as adults and as households
    assert steps(data, "link")["rows"].tolist() == [n]
    assert steps(data, "respondents")["rows"].tolist() == [n]
    for ctype, (var, _) in CSEW_TYPES.items():
        cap, _, _ = csew_expected(raw, ctype)
        too_many = int((raw[var] == 97).sum())
        assert too_many > 0
        row = one_row(data, "dont know", f"{var}:")
        assert row["rows"] == too_many and row["detail"].endswith(f"counted as {cap:g}")
        refused = int((raw[var] == 99).sum())
        miss = steps(data, "missing count")
        miss = miss[miss["detail"].str.startswith(f"{var}:")]
        assert miss["rows"].sum() == refused  # 2 for nburg and nassault, no row for the others
    assert steps(data, "missing count")["rows"].sum() == 4
    for item, var in (("safe_dark", "walkdark"), ("worry_burglary", "wburgl"), ("worry_violence", "wattack")):
        assert one_row(data, "perception missing", f"{item}:")["rows"] == int((raw[var] == 9).sum())
    assert one_row(data, "domain missing", "age_band")["rows"] == int(raw["age"].isna().sum()) == 3


@pytest.mark.parametrize("ctype", list(CSEW_TYPES))
def test_csew_cap_is_the_weighted_98th_percentile(csew, ctype):
    _, raw, data = csew
    var, _ = CSEW_TYPES[ctype]
    cap, expected, n_capped = csew_expected(raw, ctype)
    got = data.respondents[f"n__{ctype}"].to_numpy()
    np.testing.assert_array_equal(got, expected)  # capped counts, 97 at the cap, 99 missing
    assert np.nanmax(got) == cap
    assert (got[(raw[var] == 97).to_numpy()] == cap).all()
    assert np.isnan(got[(raw[var] == 99).to_numpy()]).all()
    victim = data.respondents[f"victim__{ctype}"].to_numpy()
    np.testing.assert_array_equal(victim, np.where(np.isnan(expected), np.nan, expected > 0))
    # the accounting records the cap used and how many respondents it cut
    assert f"{ctype} cap {cap:g} ({n_capped} respondents capped)" in one_row(data, "cap")["detail"]


def test_csew_cap_binds(csew):
    _, raw, _ = csew
    caps = {t: csew_expected(raw, t) for t in CSEW_TYPES}
    # the synthetic tails are long enough for the cap to cut real counts, below the maximum
    assert sum(c[2] for c in caps.values()) >= 5
    cap, _, n_capped = caps["burglary"]
    assert n_capped >= 1 and cap < raw.loc[raw.nburg < 97, "nburg"].max()


def test_csew_groups(csew):
    _, _, data = csew
    r = data.respondents
    hh = r["n__burglary"] + r["n__theft_from_vehicle"] + r["n__criminal_damage"]
    np.testing.assert_array_equal(r["n__household_crime"], hh)
    # a victim of any member type; unknown when any member is unknown (as the group's count)
    a, b = r.n__assault.to_numpy(), r.n__robbery.to_numpy()
    any_yes = (np.nan_to_num(a) > 0) | (np.nan_to_num(b) > 0)
    want = np.where(np.isnan(a) | np.isnan(b), np.nan, any_yes.astype(float))
    np.testing.assert_array_equal(r["victim__violence"], want)


def test_csew_perception_coding(csew):
    _, raw, data = csew
    r = data.respondents
    for item, var, positive in (("safe_dark", "walkdark", [1, 2]), ("worry_burglary", "wburgl", [1]),
                                ("worry_violence", "wattack", [1])):
        code = raw[var]
        expected = np.where(code == 9, np.nan, code.isin(positive).astype(float))
        np.testing.assert_array_equal(r[f"perc__{item}"], expected)
    # the question is put to those who never walk alone after dark too: they stay in the base
    assert r.loc[raw.nevwalk == 1, "perc__safe_dark"].notna().sum() == ((raw.nevwalk == 1) & (raw.walkdark != 9)).sum()


def test_csew_domain_labels(csew):
    _, raw, data = csew
    r = data.respondents
    assert list(r["sex"].cat.categories) == ["Male", "Female"]  # from the file's value labels
    assert (r["sex"].astype(str) == raw["sex"].map({1: "Male", 2: "Female"})).all()
    assert list(r["region"].cat.categories) == ["North", "Midlands", "London", "South"]
    assert (r["region"].astype(str) == raw["region"].map({1: "North", 2: "Midlands", 3: "London", 4: "South"})).all()
    tenure = raw["tenure"].map({1: "Owner occupied", 2: "Owner occupied", 3: "Social renter", 4: "Private renter"})
    assert (r["tenure"].astype(str) == tenure).all()
    assert list(r["age_band"].cat.categories) == ["16-24", "25-34", "35-44", "45-54", "55-64", "65-74", "75+"]
    for age, band in zip(raw["age"], r["age_band"]):
        if np.isnan(age):
            assert pd.isna(band)
        else:
            lo = max(b for b in (16, 25, 35, 45, 55, 65, 75) if b <= age)
            assert band == (f"{lo}-{lo + 9 if lo > 16 else 24}" if lo < 75 else "75+"), (age, band)
    assert (r["walks_after_dark"].astype(str) == raw["nevwalk"].map({1: "Never", 2: "Sometimes or often"})).all()


def test_csew_design_estimates(csew):
    _, raw, data = csew
    r = data.respondents
    dh, dp = data.design("household"), data.design("person")
    est = dh.mean("n__burglary").iloc[0]
    _, n_burg, _ = csew_expected(raw, "burglary")
    assert est.estimate == pytest.approx(wmean(n_burg, raw.hhdwgt), rel=1e-12)
    assert est.se == pytest.approx(taylor_se_mean(n_burg, raw.hhdwgt, raw.stratum, raw.pointno), rel=1e-9)
    assert est.n == 598 and est.n_missing == 2
    assert est.df == 40 - 8  # PSUs - strata
    tot = dh.total("n__burglary").iloc[0]
    assert tot.estimate == pytest.approx(np.nansum(n_burg * raw.hhdwgt), rel=1e-12)
    _, n_asl, _ = csew_expected(raw, "assault")
    est = dp.mean("n__assault").iloc[0]
    assert est.estimate == pytest.approx(wmean(n_asl, raw.indivwgt), rel=1e-12)
    assert est.se == pytest.approx(taylor_se_mean(n_asl, raw.indivwgt, raw.stratum, raw.pointno), rel=1e-9)
    # prevalence by tenure (a domain of the full design), feeling safe by sex
    by = dh.mean("victim__burglary", by="tenure").set_index("tenure")["estimate"]
    for lab in ["Owner occupied", "Social renter", "Private renter"]:
        sel = (r["tenure"] == lab).to_numpy()
        assert by[lab] == pytest.approx(wmean(r.victim__burglary[sel], raw.hhdwgt[sel]), rel=1e-12)
    safe = np.where(raw.walkdark == 9, np.nan, raw.walkdark.isin([1, 2]))
    by = dp.mean("perc__safe_dark", by="sex").set_index("sex")["estimate"]
    for code, lab in ((1, "Male"), (2, "Female")):
        sel = (raw.sex == code).to_numpy()
        assert by[lab] == pytest.approx(wmean(safe[sel], raw.indivwgt[sel]), rel=1e-12)
    with pytest.warns(SurveyWarning, match="age_band"):  # the 3 respondents with no age
        by_age = dp.mean("perc__worry_violence", by="age_band")
    assert by_age["n"].sum() == (raw.wattack != 9).sum() - (raw.age.isna() & (raw.wattack != 9)).sum()


def test_csew_uncapped_variant(csew):
    """Uncapped figures as the template's note says: cap off, "too many" given the capped cap."""
    spec_path, raw, _ = csew
    caps = {t: csew_expected(raw, t)[0] for t in CSEW_TYPES}

    def uncap(d):
        d["victimization"]["cap"] = {"rule": "none"}
        for t in d["victimization"]["types"]:
            t["count"]["dont_know_value"] = caps[t["name"]]

    data = load(_variant(spec_path, uncap), spec_path=spec_path)
    assert steps(data, "cap").empty
    for ctype, (var, _) in CSEW_TYPES.items():
        x = raw[var].to_numpy(float)
        expected = np.where(x == 99, np.nan, np.where(x == 97, caps[ctype], x))
        np.testing.assert_array_equal(data.respondents[f"n__{ctype}"], expected)
    assert np.nanmax(data.respondents["n__assault"]) == raw.loc[raw.nassault < 97, "nassault"].max()

    # with no cap rule, "too many to remember takes the cap" is an error, not a silent 0 or 97
    def no_cap_only(d):
        d["victimization"]["cap"] = {"rule": "none"}

    with pytest.raises(IngestError, match="takes the cap"):
        load(_variant(spec_path, no_cap_only), spec_path=spec_path)


def test_csew_cap_by_all_is_one_cap(csew):
    spec_path, _, _ = csew

    def by_all(d):
        d["victimization"]["cap"]["by"] = "all"

    data = load(_variant(spec_path, by_all), spec_path=spec_path)
    caps = {t: np.nanmax(data.respondents[f"n__{t}"]) for t in CSEW_TYPES}
    assert len(set(caps.values())) == 1, caps


def test_csew_fixed_caps_per_type(csew):
    spec_path, raw, _ = csew
    pooled = {"burglary": 6, "theft_from_vehicle": 5, "criminal_damage": 7, "assault": 12, "robbery": 3}

    def fixed(d):  # proposed: cap: {rule: fixed, values: {<type>: <cap>}}
        d["victimization"]["cap"] = {"rule": "fixed", "values": pooled}

    data = load(_variant(spec_path, fixed), spec_path=spec_path)
    for ctype, (var, _) in CSEW_TYPES.items():
        x = raw[var].to_numpy(float)
        expected = np.where(x == 99, np.nan, np.where(x == 97, pooled[ctype], np.minimum(x, pooled[ctype])))
        np.testing.assert_array_equal(data.respondents[f"n__{ctype}"], expected)


# ==========================================================================================
# ICVS/LACSI-style
# ==========================================================================================
ICVS_TYPES = {  # crime type: (item prefix, weight of its unit)
    "burglary": ("burg", "hhwgt"),
    "car_theft": ("car", "hhwgt"),
    "robbery": ("rob", "perwgt"),
    "assault": ("asl", "perwgt"),
}


@pytest.fixture(scope="module")
def icvs(tmp_path_factory):
    """Skipped count items coded 0, as the template asks (see its header)."""
    folder = tmp_path_factory.mktemp("icvs")
    raw = mf.make_icvs(folder, skipped="zero")
    spec_path = _copy_template("icvs-style.yaml", folder)
    return spec_path, raw, load(spec_path)


def icvs_counts(raw: pd.DataFrame, prefix: str) -> np.ndarray:
    """Hand: victimizations in the last 12 months (0 unless the follow-up is yes; 98 -> 1)."""
    times = raw[f"{prefix}n"].to_numpy(float)
    return np.where(raw[f"{prefix}12"] == 1, np.where(times == 98, 1.0, times), 0.0)


def sdg_feeling_safe(raw: pd.DataFrame) -> np.ndarray:
    """docs/methods.md#perception-indicators: very/fairly safe among all who answered; those who never go out answer how
    safe they would feel (the follow-up)."""
    answer = np.where(raw.safedark == 5, raw.safewould, raw.safedark)
    return np.where(np.isin(answer, [1, 2]), 1.0, np.where(np.isin(answer, [3, 4]), 0.0, np.nan))


def test_icvs_template_validates(icvs, capsys):
    spec_path, _, _ = icvs
    spec = read_spec(spec_path)
    v = spec.victimization
    assert v.source == "respondent" and v.cap.rule == "none"
    names = list(ICVS_TYPES)
    assert v.type_names() == names + [f"{t}_5y" for t in names]
    for t in v.types:
        assert t.victim is not None and t.victim.yes == [1]
    assert v.reported is None  # not expressible at the respondent level yet (gap 3)
    safe = spec.perception[0]
    assert (safe.sdg, safe.positive, safe.missing) == ("16.1.4", [1, 2], [9])
    assert (safe.follow_up.codes, safe.follow_up.variable) == ([5], "safewould")
    assert cli_main(["validate", str(spec_path)]) == 0
    capsys.readouterr()


def test_icvs_row_accounting(icvs):
    _, raw, data = icvs
    n = len(raw)
    assert n == 500
    assert steps(data, "read")["rows"].tolist() == [n, n]
    assert steps(data, "respondents")["rows"].tolist() == [n]
    # a count is unknown where the victim status is: "don't know" on either screener
    unknown = raw.burg5.eq(8) | raw.burg12.eq(8)
    assert one_row(data, "missing count", "burgn:")["rows"] == int(unknown.sum())
    assert one_row(data, "skip pattern", "burg12:")["rows"] == int((raw.burg5 == 2).sum())
    for prefix in ("burg", "car", "rob", "asl"):
        row = one_row(data, "dont know", f"{prefix}n:")
        assert row["rows"] == int((raw[f"{prefix}n"] == 98).sum()) > 0
        assert row["detail"].endswith("counted as 1")
    expected_missing = {
        "safe_dark": np.isnan(sdg_feeling_safe(raw)).sum(),  # after the follow-up
        "safe_dark_would": (~raw.safewould.isin([1, 2, 3, 4])).sum(),  # asked of safedark == 5 only
        "worry_burglary": (raw.worryburg == 9).sum(),
        "likely_burglary": (raw.likburg == 8).sum(),
    }
    for item, rows in expected_missing.items():
        assert one_row(data, "perception missing", f"{item}:")["rows"] == rows
    assert steps(data, "domain missing").empty
    assert one_row(data, "perception follow-up", "safe_dark:")["rows"] == int((raw.safedark == 5).sum())


@pytest.mark.parametrize("ctype", list(ICVS_TYPES))
def test_icvs_12_month_prevalence_from_screener(icvs, ctype):
    _, raw, data = icvs
    prefix, wcol = ICVS_TYPES[ctype]
    r = data.respondents
    # "don't know" (8) on the 12-month item or on the 5-year screener: unknown, out of the base;
    # 12-month blank because the 5-year answer was "no": the skip pattern, not a victim
    unknown = (raw[f"{prefix}12"] == 8) | (raw[f"{prefix}5"] == 8)
    victim = np.where(unknown, np.nan, (raw[f"{prefix}12"] == 1).astype(float))
    np.testing.assert_array_equal(r[f"victim__{ctype}"], victim)
    counts = np.where(unknown, np.nan, icvs_counts(raw, prefix))
    np.testing.assert_array_equal(r[f"n__{ctype}"], counts)
    unit = "household" if wcol == "hhwgt" else "person"
    d = data.design(unit)
    prev = d.mean(f"victim__{ctype}").iloc[0]
    known = ~unknown.to_numpy()
    assert prev.estimate == pytest.approx(wmean(victim[known], raw[wcol][known]), rel=1e-12)
    assert prev.n == known.sum()
    # the SE of a domain mean (known status) on the full design, by hand
    z = np.where(known, victim - prev.estimate, 0.0) * raw[wcol] / raw[wcol][known].sum()
    psu = pd.DataFrame({"h": raw.strat, "c": raw.cluster, "z": z}).groupby(["h", "c"]).z.sum().reset_index()
    g = psu.groupby("h").z
    var = ((psu.z - g.transform("mean")) ** 2 * (g.transform("size") / (g.transform("size") - 1))).sum()
    assert prev.se == pytest.approx(np.sqrt(var), rel=1e-9)
    assert prev.df == raw.cluster.nunique() - raw.strat.nunique()
    inc = d.mean(f"n__{ctype}").iloc[0]  # incidence per respondent; x 1000 for the rate
    assert inc.estimate == pytest.approx(wmean(counts[known], raw[wcol][known]), rel=1e-12)
    assert 0 < prev.estimate < inc.estimate


@pytest.mark.parametrize("ctype", list(ICVS_TYPES))
def test_icvs_5_year_prevalence(icvs, ctype):
    _, raw, data = icvs
    prefix, wcol = ICVS_TYPES[ctype]
    r = data.respondents
    # 2 no: not a victim; 8 don't know: out of the base (never "not a victim")
    five = np.where(raw[f"{prefix}5"] == 8, np.nan, (raw[f"{prefix}5"] == 1).astype(float))
    np.testing.assert_array_equal(r[f"victim__{ctype}_5y"], five)
    assert r[f"n__{ctype}_5y"].isna().all()  # prevalence-only type: no count
    both = r[[f"victim__{ctype}", f"victim__{ctype}_5y"]].dropna()
    assert (both.iloc[:, 0] <= both.iloc[:, 1]).all()  # 12 months within 5 years
    unit = "household" if wcol == "hhwgt" else "person"
    est = data.design(unit).mean(f"victim__{ctype}_5y").iloc[0]
    known = ~np.isnan(five)
    assert est.estimate == pytest.approx(wmean(five[known], raw[wcol][known]), rel=1e-12)


def test_icvs_groups(icvs):
    _, raw, data = icvs
    r = data.respondents
    # a victim of the group if a victim of any member; unknown if any member is unknown (the
    # group's base: those who answered for every member)
    unk12 = {p: (raw[f"{p}12"] == 8) | (raw[f"{p}5"] == 8) for p in ("burg", "car", "rob", "asl")}
    yes12 = (raw.burg12 == 1) | (raw.car12 == 1)
    any12 = np.where(unk12["burg"] | unk12["car"], np.nan, yes12.astype(float))
    np.testing.assert_array_equal(r["victim__household_property"], any12)
    yes5 = (raw.rob5 == 1) | (raw.asl5 == 1)
    any5 = np.where((raw.rob5 == 8) | (raw.asl5 == 8), np.nan, yes5.astype(float))
    np.testing.assert_array_equal(r["victim__contact_5y"], any5)
    est = data.design("person").mean("victim__contact_5y").iloc[0]
    known = ~np.isnan(any5)
    assert est.estimate == pytest.approx(wmean(any5[known], raw.perwgt[known]), rel=1e-12)
    n_contact = np.where(unk12["rob"] | unk12["asl"], np.nan, icvs_counts(raw, "rob") + icvs_counts(raw, "asl"))
    np.testing.assert_array_equal(r["n__contact"], n_contact)


def test_icvs_perception_coding(icvs):
    _, raw, data = icvs
    r = data.respondents
    # never goes out (5): the follow-up answer, as SDG 16.1.4 (docs/methods.md#perception-indicators)
    np.testing.assert_array_equal(r["perc__safe_dark"], sdg_feeling_safe(raw))
    would = np.where(raw.safewould.isin([1, 2, 3, 4]), raw.safewould.isin([1, 2]).astype(float), np.nan)
    np.testing.assert_array_equal(r["perc__safe_dark_would"], would)
    worry = np.where(raw.worryburg == 9, np.nan, (raw.worryburg == 1).astype(float))
    np.testing.assert_array_equal(r["perc__worry_burglary"], worry)
    likely = np.where(raw.likburg == 8, np.nan, raw.likburg.isin([1, 2]).astype(float))
    np.testing.assert_array_equal(r["perc__likely_burglary"], likely)
    est = data.design("person").mean("perc__worry_burglary").iloc[0]
    assert est.estimate == pytest.approx(wmean(worry, raw.perwgt), rel=1e-12)


def test_icvs_sdg_feeling_safe_with_follow_up(icvs):
    """SDG 16.1.4 as docs/methods.md#perception-indicators defines it: the follow-up answers for those who never go out."""
    _, raw, data = icvs
    sdg = sdg_feeling_safe(raw)
    np.testing.assert_array_equal(data.respondents.perc__safe_dark, sdg)
    est = data.design("person").mean("perc__safe_dark").iloc[0]
    assert est.estimate == pytest.approx(wmean(sdg, raw.perwgt), rel=1e-12)
    goers = np.where(raw.safedark.isin([5, 9]), np.nan, raw.safedark.isin([1, 2]).astype(float))
    assert est.estimate != pytest.approx(wmean(goers, raw.perwgt), abs=1e-3)  # the follow-up matters


def test_icvs_domain_labels(icvs):
    _, raw, data = icvs
    r = data.respondents
    assert list(r["region"].cat.categories) == ["Capital", "North", "South"]
    assert (r["region"].astype(str) == raw.region.map({1: "Capital", 2: "North", 3: "South"})).all()
    town = raw.townsize.map({1: "Rural or small town", 2: "Rural or small town", 3: "Medium town",
                             4: "Large city", 5: "Large city"})
    assert (r["town_size"].astype(str) == town).all()
    bands = pd.cut(raw.age, [16, 25, 35, 45, 55, 65, np.inf], right=False,
                   labels=["16-24", "25-34", "35-44", "45-54", "55-64", "65+"])
    assert (r["age_band"].astype(str) == bands.astype(str)).all()
    by = data.design("household").mean("victim__burglary", by="town_size").set_index("town_size")["estimate"]
    victim = (raw.burg12 == 1).astype(float)
    known = ~((raw.burg12 == 8) | (raw.burg5 == 8))  # "don't know": out of the base
    for lab in ["Rural or small town", "Medium town", "Large city"]:
        sel = ((town == lab) & known).to_numpy()
        assert by[lab] == pytest.approx(wmean(victim[sel], raw.hhwgt[sel]), rel=1e-12)


# --- formerly gaps, now supported --------------------------------------------------------------------------------


def test_icvs_system_missing_skips(tmp_path):
    raw = mf.make_icvs(tmp_path, skipped="sysmis")
    data = load(_copy_template("icvs-style.yaml", tmp_path))
    unknown = (raw.burg12 == 8) | (raw.burg5 == 8)
    victim = np.where(unknown, np.nan, (raw.burg12 == 1).astype(float))
    np.testing.assert_array_equal(data.respondents["victim__burglary"], victim)
    np.testing.assert_array_equal(data.respondents["n__burglary"],
                                  np.where(unknown, np.nan, icvs_counts(raw.fillna({"burgn": 0}), "burg")))


def test_icvs_feeling_safe_follow_up(icvs):
    spec_path, raw, _ = icvs

    def follow_up(d):  # proposed: follow_up: {codes: [5], variable: safewould}
        item = d["perception"][0]
        item["missing"] = [9]
        item["follow_up"] = {"codes": [5], "variable": "safewould"}

    data = load(_variant(spec_path, follow_up), spec_path=spec_path)
    np.testing.assert_array_equal(data.respondents["perc__safe_dark"], sdg_feeling_safe(raw))


def test_icvs_reported_per_type(icvs):
    spec_path, raw, _ = icvs

    def reported(d):  # proposed: CrimeType.reported, for 5-year victims (last incident)
        for t in d["victimization"]["types"]:
            if t["name"] == "burglary_5y":
                t["reported"] = {"variable": "burgpol", "yes": [1], "no": [2], "unknown": [8]}

    data = load(_variant(spec_path, reported), spec_path=spec_path)
    rep = np.where(raw.burgpol == 1, 1.0, np.where(raw.burgpol == 2, 0.0, np.nan))  # among 5-year victims
    np.testing.assert_array_equal(data.respondents["vrep__burglary_5y"], rep)


def test_icvs_reported_not_silently_ignored(icvs):
    spec_path, _, _ = icvs

    def reported(d):
        d["victimization"]["reported"] = {"variable": "burgpol", "yes": [1], "no": [2], "unknown": [8]}

    try:
        data = load(_variant(spec_path, reported), spec_path=spec_path)
    except SpecError:
        return  # rejected: fine
    assert any(c.startswith(("rep__", "vrep__")) for c in data.respondents.columns), "reported was ignored"
