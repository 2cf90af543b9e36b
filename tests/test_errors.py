"""Bad input gets one clear SurveyError naming the variable and the row count."""

import numpy as np
import pytest

import survey as sv


def test_unknown_column_suggests(apistrat):
    with pytest.raises(sv.ColumnNotFoundError, match=r"'stpye'.*did you mean 'stype'"):
        sv.Design(apistrat, weights="pw", strata="stpye")
    d = sv.Design(apistrat, weights="pw", strata="stype", fpc="fpc")
    with pytest.raises(sv.ColumnNotFoundError, match="'api000'.*did you mean 'api00'"):
        d.mean("api000")
    with pytest.raises(sv.ColumnNotFoundError, match="'styp'"):
        d.mean("api00", by="styp")


@pytest.mark.parametrize(
    "values, pattern",
    [
        (lambda w: np.where(np.arange(len(w)) < 3, -1.0, w), r"weight 'w': 3 of 200 rows are negative"),
        (lambda w: np.where(np.arange(len(w)) < 4, np.nan, w), r"weight 'w': 4 of 200 rows are missing"),
        (lambda w: np.zeros(len(w)), r"weight 'w': all 200 rows are zero"),
        (lambda w: np.where(np.arange(len(w)) < 1, np.inf, w), r"weight 'w': 1 of 200 rows are infinite"),
    ],
)
def test_bad_weights(apistrat, values, pattern):
    df = apistrat.assign(w=values(apistrat["pw"].to_numpy()))
    with pytest.raises(sv.WeightError, match=pattern):
        sv.Design(df, weights="w", strata="stype")


def test_non_numeric_weight(apistrat):
    df = apistrat.assign(w=apistrat["pw"].astype(str).where(apistrat.index > 1, "heavy"))
    with pytest.raises(sv.EstimationError, match=r"'w' is not numeric: 2 of 200 rows"):
        sv.Design(df, weights="w")


def test_zero_weights_are_kept_not_errors(apistrat):
    # NCVS-style non-interviews: weight 0 rows stay in the design
    df = apistrat.assign(w=np.where(apistrat.index < 5, 0.0, apistrat.pw))
    d = sv.Design(df, weights="w", strata="stype")
    assert d.n == 200
    assert d.mean("api00")["n"].iloc[0] == 195


def test_missing_design_variables(apiclus1):
    df = apiclus1.assign(dnum=apiclus1.dnum.where(apiclus1.index > 6))
    with pytest.raises(sv.DesignError, match=r"PSU variable 'dnum': 7 of 183 rows are missing"):
        sv.Design(df, weights="pw", psu="dnum")
    df = apiclus1.assign(s=np.where(apiclus1.index < 2, None, "a"))
    with pytest.raises(sv.DesignError, match=r"strata variable 's': 2 of 183 rows are missing"):
        sv.Design(df, weights="pw", strata="s")


def test_lonely_psu_fail_names_stratum(apiclus1):
    with pytest.raises(sv.LonelyPSUError, match=r"1 stratum\(s\) with a single stage-1 unit: 413"):
        sv.Design(apiclus1, weights="pw", strata="dnum")


def test_psu_not_nested(apistrat):
    with pytest.raises(sv.DesignError, match="appear in more than one stratum.*nest=True"):
        sv.Design(apistrat, weights="pw", strata="stype", psu="dnum")
    assert sv.Design(apistrat, weights="pw", strata="stype", psu="dnum", nest=True).df > 0


def test_fpc_errors(apistrat):
    df = apistrat.assign(f=np.where(apistrat.index == 0, 1, apistrat.fpc))
    with pytest.raises(sv.DesignError, match="fpc 'f' differs within 1 stage-1 group"):
        sv.Design(df, weights="pw", strata="stype", fpc="f")
    df = apistrat.assign(f=10.0)
    with pytest.raises(sv.DesignError, match="population size 10 is smaller than the"):
        sv.Design(df, weights="pw", strata="stype", fpc="f")


def test_replicate_weight_errors(apistrat):
    with pytest.raises(sv.ReplicateWeightError, match=r"pattern '\^rw\[0-9\]\+\$' matches none of the"):
        sv.ReplicateDesign(apistrat, weights="pw", replicate_weights="^rw[0-9]+$", method="JK1")
    with pytest.raises(sv.ColumnNotFoundError, match="replicate weight; 1 of 2 missing"):
        sv.ReplicateDesign(apistrat.assign(rw1=1.0), weights="pw", replicate_weights=["rw1", "rw2"], method="JK1")
    df = apistrat.assign(rw1=apistrat.pw, rw2=apistrat.pw.where(apistrat.index > 2))
    with pytest.raises(sv.ReplicateWeightError, match=r"'rw2': 3 of 200 rows are missing"):
        sv.ReplicateDesign(df, weights="pw", replicate_weights=["rw1", "rw2"], method="JK1")
    with pytest.raises(sv.ReplicateWeightError, match="needs rho"):
        sv.ReplicateDesign(df.fillna(1.0), weights="pw", replicate_weights=["rw1", "rw2"], method="Fay")
    with pytest.raises(sv.ReplicateWeightError, match="method must be one of"):
        sv.ReplicateDesign(df.fillna(1.0), weights="pw", replicate_weights=["rw1", "rw2"], method="jackknife")


def test_by_all_missing_and_partly_missing(apistrat):
    d = sv.Design(apistrat.assign(g=np.nan), weights="pw", strata="stype")
    with pytest.raises(sv.DomainError, match=r"by variable 'g': all 200 rows are missing"):
        d.mean("api00", by="g")
    df = apistrat.assign(g=apistrat.awards.where(apistrat.index >= 10))
    d = sv.Design(df, weights="pw", strata="stype")
    with pytest.warns(sv.SurveyWarning, match="10 rows in the domain have a missing value"):
        r = d.mean("api00", by="g")
    assert r.attrs["n_by_missing"] == 10
    assert r["n"].sum() == 190


def test_missing_analysis_values_counted(apiclus2):
    d = sv.Design(apiclus2, psu=["dnum", "snum"], fpc=["fpc1", "fpc2"])
    r = d.total("enroll")
    assert r["n_missing"].iloc[0] == 6 and r["n"].iloc[0] == 120
    with pytest.raises(sv.EstimationError, match=r"'enroll': 6 rows in the domain are missing"):
        d.total("enroll", na_rm=False)


def test_categorical_variable_in_mean(apistrat):
    d = sv.Design(apistrat.assign(stype=apistrat.stype.astype("category")), weights="pw")
    with pytest.raises(sv.EstimationError, match="categorical.*use proportion"):
        d.mean("stype")


def test_bad_options(apistrat):
    with pytest.raises(sv.DesignError, match="lonely_psu must be one of"):
        sv.Design(apistrat, weights="pw", lonely_psu="drop")
    d = sv.Design(apistrat, weights="pw", strata="stype")
    with pytest.raises(sv.EstimationError, match="ci_method must be one of"):
        d.proportion("sch.wide", ci_method="likelihood")
    with pytest.raises(sv.DesignError, match="selects none"):
        d.subset(np.zeros(200, dtype=bool))
    with pytest.raises(sv.DesignError, match="either weights= or probs="):
        sv.Design(apistrat.assign(p=1 / apistrat.pw), weights="pw", probs="p")


def test_errors_are_one_line(apistrat):
    try:
        sv.Design(apistrat, weights="nope")
    except sv.SurveyError as e:
        assert "\n" not in str(e) and str(e).startswith("variable 'nope'")
    else:
        pytest.fail("no error")
