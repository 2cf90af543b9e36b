"""The streamed indicator table on Dask (survey.stream_indicators.indicator_table(dask=True)):
each row group derived and accumulated on a worker, the partial sums merged; the table equals
the single-machine streamed table and the in-memory one (itself checked against R and hand
computations) to 1e-12 in the estimates and 1e-9 in the SEs, with the same rows, bases, df and
flags; what needs rows of several row groups together says so in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from survey import stream_indicators as SI
from survey.indicators import indicator_table
from survey.ingest import load
from tests.test_stream_indicators import CLOSE, EXACT, KEYS, SAME, _respondents, _spec

pytest.importorskip("dask")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("stream_dask")
    path = d / "respondents.parquet"
    _respondents(n=2000, seed=5).to_parquet(path, row_group_size=300)  # 7 row groups, the last short
    out = {}
    for kind in ("taylor", "replicate", "nopsu"):
        sp = d / f"{kind}.yaml"
        sp.write_text(yaml.safe_dump(_spec(path, kind if kind == "nopsu" else kind == "replicate")))
        out[kind] = sp
    return out


def _same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(got) == len(want) > 30
    assert list(got.columns) == list(want.columns)
    assert got[KEYS].astype(str).values.tolist() == want[KEYS].astype(str).values.tolist()
    for c in EXACT:
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=c)
    for c in CLOSE:
        np.testing.assert_allclose(got[c].to_numpy(float), want[c].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=c)
    for c in SAME:
        a, b = got[c], want[c]
        if pd.api.types.is_numeric_dtype(b) and not pd.api.types.is_bool_dtype(b):
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9, equal_nan=True, err_msg=c)
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), c


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("kind", ["taylor", "replicate", "nopsu"])
def test_dask_table_equals_streamed_and_in_memory(files, kind):
    spec = files[kind]
    want = indicator_table(load(spec), indicators=list(SI.STREAM_FAMILIES))
    one = SI.indicator_table(spec, chunk_rows=250)
    got = SI.indicator_table(spec, chunk_rows=250, dask=True, scheduler="synchronous")
    _same(one, want)
    _same(got, want)
    _same(got, one)
    # the domains' own df are in play (cells' PSUs, or the rank of their replicate weights)
    assert got["df"].nunique() >= 2
    assert "on Dask (7 partitions" in got.attrs["engine"]
    # the accounting: the same lines and counts as one machine (the read line says how)
    a, b = pd.DataFrame(got.attrs["accounting"]), pd.DataFrame(one.attrs["accounting"])
    assert a["step"].tolist() == b["step"].tolist()
    assert a["rows"].tolist() == b["rows"].tolist()
    assert a["detail"].iloc[1:].tolist() == b["detail"].iloc[1:].tolist()
    assert a["rows"].iloc[0] == 2000
    assert sorted(got.attrs["notes"]) == sorted(one.attrs["notes"])


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
def test_dask_table_on_a_local_cluster(files):
    distributed = pytest.importorskip("distributed")
    spec = files["replicate"]
    doms = ["sex", "region", "sex_by_region"]
    want = indicator_table(load(spec), domains=doms, indicators=list(SI.STREAM_FAMILIES))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as c, distributed.Client(c):
        got = SI.indicator_table(spec, dask=True, domains=doms)
    _same(got, want)
    assert "on Dask (7 partitions" in got.attrs["engine"]


@pytest.mark.filterwarnings("ignore::survey.SurveyWarning")
@pytest.mark.parametrize("by", ["type", "all"])
def test_percentile_cap_on_dask(files, tmp_path, by):
    """The cap's first pass (the weighted histogram of the counts) per row group on Dask too."""
    base = yaml.safe_load(files["taylor"].read_text())
    spec = dict(base, victimization=dict(base["victimization"], cap={"rule": "percentile", "value": 90, "by": by}))
    sp = tmp_path / f"pct_{by}.yaml"
    sp.write_text(yaml.safe_dump(spec))
    data = load(sp)
    caps = [r for r in data.accounting.to_dict(orient="records") if r["step"] == "cap"]
    assert caps and "(0 respondents capped)" not in caps[0]["detail"]  # the percentile bites
    fams = ["incidence", "victimizations", "repeat_incidents", "concentration"]
    want = indicator_table(data, indicators=fams)
    got = SI.indicator_table(sp, indicators=fams, dask=True, scheduler="synchronous")
    _same(got, want)
    fixed = SI.indicator_table(files["taylor"], indicators=["victimizations"], dask=True, scheduler="synchronous")
    assert not np.allclose(fixed["estimate"].to_numpy(float)[:2],
                           got.loc[got["indicator"] == "victimizations", "estimate"].to_numpy(float)[:2])
    acc = pd.DataFrame(got.attrs["accounting"])
    want_acc = data.accounting
    assert (acc.loc[acc["step"] == "cap", "detail"].tolist() == want_acc.loc[want_acc["step"] == "cap", "detail"]
            .tolist())


def test_what_does_not_run_on_dask_says_so(files, tmp_path):
    base = yaml.safe_load(files["taylor"].read_text())
    cases = [("combine", lambda s: s["files"]["respondents"].update(combine={"key": ["hhid"], "weights": "sum"}),
              "combine")]
    for name, change, what in cases:
        s = yaml.safe_load(yaml.safe_dump(base))
        change(s)
        p = tmp_path / f"{name}.yaml"
        p.write_text(yaml.safe_dump(s))
        with pytest.raises(SI.StreamIndicatorError, match=rf"does not run on Dask: .*{what}") as e:
            SI.indicator_table(p, dask=True, scheduler="synchronous")
        assert "\n" not in str(e.value)
    from tests.test_stream_indicators import _incident_survey

    sp = _incident_survey(tmp_path, n=300)
    with pytest.raises(SI.StreamIndicatorError, match=r"does not run on Dask: victimization.source is incidents"):
        SI.indicator_table(sp, dask=True, scheduler="synchronous")
