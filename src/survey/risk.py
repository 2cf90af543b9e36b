"""Machine-learning risk models of victimization, fitted with survey weights (docs/methods.md#machine-learning-models).

``RiskModel`` wraps a scikit-learn pipeline (one-hot encoding of categorical predictors,
standardization of numeric ones for the logistic model, then an L2-penalized logistic
regression, a histogram gradient boosting or a random forest) and fits it with the survey
weights as ``sample_weight``.  Its honest evaluation is by cross-validation whose folds are made
of whole PSUs (:func:`psu_folds`), spread over the folds within every stratum, so that
neighbours never sit on both sides of a split.  The out-of-fold predictions give weighted
metrics and calibration, overall and by subgroup (sex, age band, minority...), to expose
differential performance.

>>> from survey.ingest import load
>>> from survey.risk import RiskModel
>>> data = load("specs/synthetic.yaml")
>>> m = RiskModel("gradient_boosting", features=["age", "sex", "tenure", "urban"],
...               target="victim__assault", subgroups=["sex", "age_band"], seed=1).fit(data)
>>> m.metrics_                        # weighted AUC, Brier, log loss, overall and by subgroup
>>> m.permutation_importance()        # held-out folds, weighted; association, not cause
>>> m.partial_dependence("age")       # weighted average prediction over a grid of ages
>>> m.save("outputs/risk/assault")    # pipeline (joblib), metrics CSVs, model.json

There is no R equivalent in ``survey``; the weighted metrics are the population quantities the
unweighted ones estimate in a simple random sample.

Weights.  Survey weights enter every fit as ``sample_weight``, rescaled to mean 1 over the rows
of that fit, so that the penalty ``C`` and the leaf sizes keep their usual meaning; the metrics
use the survey weights themselves (``weighted_n`` estimates the population counted).

Tables (tidy DataFrames with these documented columns)

``metrics_`` (:data:`METRIC_COLUMNS`), one row for ``subgroup="overall"`` and one per level of
    every subgroup variable (categorical levels with no case included):
    ``n`` rows, ``weighted_n`` sum of the weights, ``events`` rows with the outcome,
    ``observed`` weighted prevalence, ``mean_predicted`` weighted mean out-of-fold prediction,
    ``auc`` weighted ROC AUC (probability that a random weighted event is ranked above a random
    weighted non-event, ties counted one half), ``brier`` weighted mean of (p - y)^2,
    ``log_loss`` weighted mean of -(y log p + (1 - y) log(1 - p)), ``note`` why a value is
    missing or unstable (no cases, no events, fewer than :data:`MIN_EVENTS` events).
``calibration_`` (:data:`CALIBRATION_COLUMNS`): per subgroup level and bin of the out-of-fold
    prediction (bins of the overall predictions, weighted quantiles by default) the ``n``,
    ``weighted_n``, weighted ``mean_predicted`` and weighted ``observed`` prevalence.
``importance_`` (:data:`IMPORTANCE_COLUMNS`) from :meth:`RiskModel.permutation_importance` and
    the tables of :meth:`RiskModel.partial_dependence` (:data:`PD_COLUMNS`) carry :data:`NOTE`
    in a ``note`` column and in ``attrs["note"]``.
``accounting_`` (step, rows, detail): every row of the input, and why it is or is not fitted.

Bad input is never silent: a constant predictor is a :class:`ConstantPredictorError`; missing
predictor values drop the rows from the fit with a :class:`MissingValuesWarning` naming each
predictor and its count (``n_dropped_``; or ``impute=True``); a predictor that separates the
outcome gives a :class:`SeparationWarning` naming it (and the level); a subgroup level with no
case, no event or no non-event gives a metrics row with NaN and a note, and a
:class:`SubgroupWarning`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance as _sk_permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import get_scorer, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ._atomic import replace_dir
from .design import Design, ReplicateDesign
from .errors import SurveyError, SurveyWarning, WeightError, column_not_found

__all__ = [
    "RiskModel", "psu_folds", "weighted_auc", "weighted_brier", "weighted_log_loss", "calibration_edges",
    "calibration_table", "RiskModelError", "ConstantPredictorError", "SeparationWarning",
    "MissingValuesWarning", "SubgroupWarning", "NOTE", "MODELS", "METRIC_COLUMNS", "CALIBRATION_COLUMNS",
    "IMPORTANCE_COLUMNS", "PD_COLUMNS", "ACCOUNTING_COLUMNS",
]

NOTE = "Importance measures association with the outcome in this model, not a causal effect."
MODELS = ("logistic", "gradient_boosting", "random_forest")
MISSING_LEVEL = "(missing)"
MIN_EVENTS = 10  # fewer events than this in a subgroup: the metrics row says "unstable"
SCORINGS = ("roc_auc", "neg_brier_score", "neg_log_loss")

METRIC_COLUMNS = ["subgroup", "group", "n", "weighted_n", "events", "observed", "mean_predicted", "auc", "brier",
                  "log_loss", "note"]
CALIBRATION_COLUMNS = ["subgroup", "group", "bin", "bin_low", "bin_high", "n", "weighted_n", "mean_predicted",
                       "observed"]
IMPORTANCE_COLUMNS = ["feature", "importance_mean", "importance_sd", "rank", "scoring", "baseline_score", "on",
                      "n_repeats", "note"]
PD_COLUMNS = ["feature", "value", "average_prediction", "n", "weighted_n", "note"]
ACCOUNTING_COLUMNS = ["step", "rows", "detail"]

# model defaults (model_params override them); early stopping is off for gradient boosting
# because its internal validation split would ignore the PSUs
_DEFAULTS = {
    "logistic": dict(C=1.0, max_iter=2000),
    "gradient_boosting": dict(learning_rate=0.05, max_iter=200, max_leaf_nodes=15, min_samples_leaf=40,
                              l2_regularization=1.0, early_stopping=False),
    "random_forest": dict(n_estimators=200, min_samples_leaf=20, max_features="sqrt"),
}
_ESTIMATORS = {"logistic": LogisticRegression, "gradient_boosting": HistGradientBoostingClassifier,
               "random_forest": RandomForestClassifier}


# =============================================================================================
# Errors and warnings
# =============================================================================================
class RiskModelError(SurveyError, ValueError):
    """A risk model cannot be fitted or used as asked (names the variable and the row count)."""


class ConstantPredictorError(RiskModelError):
    """A predictor takes a single value over the rows fitted."""


class SeparationWarning(SurveyWarning):
    """A predictor (or a level of it) separates the outcome: all events or no event."""


class MissingValuesWarning(SurveyWarning):
    """Rows with a missing predictor or outcome were dropped from the fit (or imputed)."""


class SubgroupWarning(SurveyWarning):
    """A subgroup level has no case, no event or no non-event: its AUC is undefined."""


# =============================================================================================
# Weighted metrics (plain functions, tested against hand formulas)
# =============================================================================================
def _arrays(y, p, w):
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=float)
    if not (y.shape == p.shape == w.shape):
        raise RiskModelError(f"outcome, predictions and weights differ in length ({y.size}, {p.size}, {w.size})")
    return y, p, w


def weighted_auc(y, p, w=None) -> float:
    """Weighted ROC AUC: the weighted share of (event, non-event) pairs ranked in the right order,
    ties counting one half (sklearn's ``roc_auc_score`` with ``sample_weight``).  NaN when
    there is no weighted event or no weighted non-event."""
    y, p, w = _arrays(y, p, w)
    pos = w > 0
    if not (np.any(y[pos] == 1) and np.any(y[pos] == 0)):
        return float("nan")
    return float(roc_auc_score(y[pos], p[pos], sample_weight=w[pos]))


def weighted_brier(y, p, w=None) -> float:
    """Weighted Brier score: sum w (p - y)^2 / sum w (NaN without weight)."""
    y, p, w = _arrays(y, p, w)
    sw = w.sum()
    return float(np.sum(w * (p - y) ** 2) / sw) if sw > 0 else float("nan")


def weighted_log_loss(y, p, w=None) -> float:
    """Weighted log loss: -sum w (y log p + (1 - y) log(1 - p)) / sum w, p clipped to
    [eps, 1 - eps] (NaN without weight)."""
    y, p, w = _arrays(y, p, w)
    sw = w.sum()
    if sw <= 0:
        return float("nan")
    eps = np.finfo(float).eps
    q = np.clip(p, eps, 1 - eps)
    return float(-np.sum(w * (y * np.log(q) + (1 - y) * np.log1p(-q))) / sw)


def _wquantile(x: np.ndarray, w: np.ndarray, q) -> np.ndarray:
    """Weighted quantiles (the smallest x whose cumulative weight share reaches q)."""
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.cumsum(w[order])
    idx = np.searchsorted(cw, np.asarray(q, dtype=float) * cw[-1], side="left")
    return xs[np.clip(idx, 0, xs.size - 1)]


def calibration_edges(p, w=None, bins: int = 10, strategy: str = "quantile") -> np.ndarray:
    """Bin edges for a calibration curve: ``bins`` bins of equal weight (``quantile``, the
    default, suited to rare outcomes) or of equal width on [0, 1] (``uniform``); tied quantiles
    are merged, so there may be fewer bins.  The first edge is 0 and the last 1."""
    if strategy not in ("quantile", "uniform"):
        raise RiskModelError(f"calibration strategy must be 'quantile' or 'uniform', not '{strategy}'")
    if int(bins) < 1:
        raise RiskModelError(f"calibration bins must be at least 1, not {bins}")
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, int(bins) + 1)
    _, p, w = _arrays(p, p, w)
    ok = (w > 0) & np.isfinite(p)
    inner = _wquantile(p[ok], w[ok], np.linspace(0, 1, int(bins) + 1)[1:-1]) if ok.any() else np.array([])
    return np.unique(np.concatenate([[0.0], inner[(inner > 0) & (inner < 1)], [1.0]]))


def calibration_table(y, p, w=None, bins: int = 10, strategy: str = "quantile", edges=None) -> pd.DataFrame:
    """Weighted calibration curve: per bin of the prediction (see :func:`calibration_edges`, or
    the given ``edges``) the rows ``n``, ``weighted_n``, the weighted ``mean_predicted`` and the
    weighted ``observed`` prevalence.  Empty bins are left out, so ``weighted_n`` sums to the
    total weight and ``weighted_n * observed`` to the weighted events."""
    y, p, w = _arrays(y, p, w)
    if edges is None:
        edges = calibration_edges(p, w, bins, strategy)
    edges = np.asarray(edges, dtype=float)
    b = np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, edges.size - 2)
    k = edges.size - 1
    n = np.bincount(b, minlength=k)
    sw = np.bincount(b, weights=w, minlength=k)
    swp = np.bincount(b, weights=w * p, minlength=k)
    swy = np.bincount(b, weights=w * y, minlength=k)
    keep = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        out = pd.DataFrame({"bin": np.arange(1, k + 1), "bin_low": edges[:-1], "bin_high": edges[1:], "n": n,
                            "weighted_n": sw, "mean_predicted": swp / sw, "observed": swy / sw})
    return out[keep].reset_index(drop=True)


# =============================================================================================
# PSU folds
# =============================================================================================
def _key(values, what: str) -> np.ndarray:
    """Integer codes of an array (or of the rows of a 2-d array) with no missing value."""
    if isinstance(values, pd.DataFrame):
        frame = values
    else:
        arr = np.asarray(values, dtype=object)
        frame = pd.DataFrame(arr if arr.ndim == 2 else {0: arr})
    miss = int(frame.isna().any(axis=1).sum())
    if miss:
        raise RiskModelError(f"{what}: {miss} of {len(frame)} rows are missing")
    if frame.shape[1] == 1:
        return pd.factorize(frame.iloc[:, 0], sort=True)[0].astype(np.int64)
    return frame.groupby(list(frame.columns), sort=True).ngroup().to_numpy().astype(np.int64)


def psu_folds(strata, psu, n_splits: int = 5, seed: int = 0) -> np.ndarray:
    """Cross-validation fold (0 .. n_splits - 1) of every row, assigning whole PSUs to folds.

    ``strata``: stratum of each row (or None: one stratum); ``psu``: PSU of each row (or None:
    every row is its own PSU, as in :class:`survey.Design`).  A PSU is identified by (stratum,
    PSU), so ids only unique within strata work too.  Within every stratum the PSUs, in a random
    order drawn from ``seed``, are dealt over the folds in rounds of ``n_splits`` (each round puts
    its PSUs in different folds, the biggest PSU first into the fold with fewest rows so far), so
    each stratum's PSUs are spread over the folds (counts differ by at most one) and the folds
    hold about the same number of rows.  No PSU is ever split between folds.
    """
    n_splits = int(n_splits)
    if n_splits < 2:
        raise RiskModelError(f"n_splits must be at least 2, not {n_splits}")
    if psu is None:
        if strata is None:
            raise RiskModelError("psu_folds needs the PSUs or the strata of the rows")
        psu = np.arange(len(strata))
    psu_arr = psu if isinstance(psu, pd.DataFrame) else np.asarray(psu, dtype=object)
    n = len(psu_arr)
    s_code = np.zeros(n, dtype=np.int64) if strata is None else _key(strata, "strata")
    if s_code.size != n:
        raise RiskModelError(f"strata has {s_code.size} values and psu {n}")
    p_raw = _key(psu_arr, "PSU")
    unit = _key(np.column_stack([s_code, p_raw]), "PSU")
    n_units = int(unit.max()) + 1 if n else 0
    if n_units < n_splits:
        raise RiskModelError(f"only {n_units} PSUs for {n_splits} cross-validation folds: use fewer folds")
    size = np.bincount(unit, minlength=n_units)
    unit_stratum = np.zeros(n_units, dtype=np.int64)
    unit_stratum[unit] = s_code
    rng = np.random.default_rng(seed)
    fold_of_unit = np.full(n_units, -1, dtype=np.int64)
    load = np.zeros(n_splits)
    tiebreak = rng.permutation(n_splits)  # which fold wins a tie on rows
    for s in rng.permutation(np.unique(unit_stratum)):
        units = rng.permutation(np.flatnonzero(unit_stratum == s))
        for start in range(0, units.size, n_splits):
            chunk = units[start:start + n_splits]
            chunk = chunk[np.argsort(-size[chunk], kind="stable")]
            free = list(range(n_splits))
            for u in chunk:
                f = min(free, key=lambda j: (load[j], tiebreak[j]))
                free.remove(f)
                fold_of_unit[u] = f
                load[f] += size[u]
    return fold_of_unit[unit]


# =============================================================================================
# helpers
# =============================================================================================
def _level(x) -> str:
    if isinstance(x, (float, np.floating)) and float(x).is_integer():
        return str(int(x))
    return str(x)


def _is_design(obj) -> bool:
    return isinstance(obj, (Design, ReplicateDesign, Mapping))


def _is_survey_data(obj) -> bool:
    return hasattr(obj, "respondents") and hasattr(obj, "design") and hasattr(obj, "spec")


def _jsonable(o):
    if isinstance(o, Mapping):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, float) and not np.isfinite(o):
        return None
    if isinstance(o, (str, int, float, bool)) or o is None:
        return o
    return repr(o)


def _fmt_n(n) -> str:
    return f"{int(n):,}"


def _values(frame: pd.DataFrame, spec, what: str, n: int):
    """A column name (or list of names) of ``frame``, or an array of ``n`` values."""
    if spec is None:
        return None
    if isinstance(spec, str):
        if spec not in frame.columns:
            raise column_not_found(spec, frame.columns, what)
        return frame[spec].to_numpy()
    if isinstance(spec, (list, tuple)) and spec and all(isinstance(s, str) for s in spec):
        for s in spec:
            if s not in frame.columns:
                raise column_not_found(s, frame.columns, what)
        return frame[list(spec)] if len(spec) > 1 else frame[spec[0]].to_numpy()
    arr = np.asarray(spec)
    if arr.shape[0] != n:
        raise RiskModelError(f"{what} has {arr.shape[0]} values for {n} rows")
    return arr


def _take(values, mask):
    if values is None:
        return None
    if isinstance(values, pd.DataFrame):
        return values.loc[mask].reset_index(drop=True)
    return np.asarray(values)[mask]


# =============================================================================================
# The model
# =============================================================================================
class RiskModel(BaseEstimator):
    """A weighted machine-learning risk model with PSU-grouped cross-validation.

    Parameters
    ----------
    model: ``logistic`` (L2-penalized logistic regression, numerics standardized, first level of
        each categorical dropped), ``gradient_boosting`` (HistGradientBoostingClassifier) or
        ``random_forest`` (RandomForestClassifier); trees get every level one-hot encoded.
    features: predictor columns.
    target: the 0/1 outcome column (e.g. ``victim__burglary``).
    categorical: columns to treat as categorical even if numeric (codes); pandas categoricals,
        strings and objects are categorical anyway.
    subgroups: variables for metrics by subgroup (sex, age band, minority...); None: with a
        ``SurveyData``, its spec domains that apply to the target's unit, otherwise none.
    n_splits: cross-validation folds (whole PSUs, see :func:`psu_folds`).
    seed: the one seed of the folds, the models and permutation importance.
    calibration_bins / calibration_strategy: bins of the calibration curve (``quantile`` or
        ``uniform``).
    impute: False (rows with a missing predictor are dropped from the fit, counted in
        ``n_dropped_`` and named in a warning) or True (median for numerics, plus a missing
        indicator; a ``(missing)`` level for categoricals).
    n_jobs: threads for the trees (``random_forest`` n_jobs, OpenMP threads of
        ``gradient_boosting``); 1 by default, since OpenMP on a busy machine can be far slower
        than one thread; -1 uses every core.  Results do not depend on it.
    model_params: parameters of the scikit-learn estimator (e.g. ``{"C": 0.5}`` or
        ``{"n_estimators": 500}``), over the defaults in ``_DEFAULTS``.  A dict rather than
        ``**kwargs``: scikit-learn's contract (``get_params``, ``clone``, ``set_params``) only
        knows named parameters.

    Fitted attributes: ``pipeline_`` (fitted on every row), ``cv_models_`` (one per fold),
    ``oof_`` (fold, y, weight, predicted per row fitted), ``metrics_``, ``calibration_``,
    ``accounting_``, ``n_input_``, ``n_``, ``n_dropped_`` (respondent rows not fitted: zero
    weight, missing outcome or predictor), ``n_missing_`` (missing values per variable),
    ``events_``, ``weighted_n_``, ``feature_names_in_``, ``categorical_``, ``numeric_``,
    ``categories_``, ``unit_``, ``subgroups_``, ``n_psu_``, ``coefficients_`` (logistic).
    """

    def __init__(self, model="logistic", features=None, target="victim__burglary", categorical=None,
                 subgroups=None, n_splits=5, seed=0, calibration_bins=10, calibration_strategy="quantile",
                 impute=False, n_jobs=1, model_params=None):
        self.model = model
        self.features = features
        self.target = target
        self.categorical = categorical
        self.subgroups = subgroups
        self.n_splits = n_splits
        self.seed = seed
        self.calibration_bins = calibration_bins
        self.calibration_strategy = calibration_strategy
        self.impute = impute
        self.n_jobs = n_jobs
        self.model_params = model_params

    # ----- parameters -------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.model not in MODELS:
            raise RiskModelError(f"model must be one of {', '.join(MODELS)}, not '{self.model}'")
        if not self.features or isinstance(self.features, str):
            raise RiskModelError("features must be a non-empty list of column names")
        feats = list(self.features)
        dup = sorted({f for f in feats if feats.count(f) > 1})
        if dup:
            raise RiskModelError(f"features list {', '.join(repr(d) for d in dup)} more than once")
        if self.target in feats:
            raise RiskModelError(f"the target '{self.target}' is also in features")
        if isinstance(self.n_splits, bool) or not isinstance(self.n_splits, (int, np.integer)) or self.n_splits < 2:
            raise RiskModelError(f"n_splits must be an integer of at least 2, not {self.n_splits!r}")
        if int(self.calibration_bins) < 1:
            raise RiskModelError(f"calibration_bins must be at least 1, not {self.calibration_bins}")
        if self.calibration_strategy not in ("quantile", "uniform"):
            raise RiskModelError(f"calibration_strategy must be 'quantile' or 'uniform', not "
                                 f"'{self.calibration_strategy}'")
        extra = [c for c in (self.categorical or []) if c not in feats]
        if extra:
            raise RiskModelError(f"categorical column(s) {', '.join(repr(c) for c in extra)} not in features")
        params = dict(self.model_params or {})
        if "random_state" in params:
            raise RiskModelError("model_params: give the seed as seed=, not random_state")
        valid = set(_ESTIMATORS[self.model]().get_params())
        bad = sorted(set(params) - valid)
        if bad:
            raise RiskModelError(f"model_params: {', '.join(repr(b) for b in bad)} not a parameter of "
                                 f"{_ESTIMATORS[self.model].__name__}")

    def _estimator(self):
        params = {**_DEFAULTS[self.model], **(self.model_params or {})}
        if self.model != "logistic":
            params["random_state"] = int(self.seed)
        if self.model == "random_forest":
            params.setdefault("n_jobs", self.n_jobs)
        return _ESTIMATORS[self.model](**params)

    def _pipeline(self) -> Pipeline:
        parts = []
        if self.numeric_:
            steps = []
            if self.impute:
                steps.append(("impute", SimpleImputer(strategy="median", add_indicator=True)))
            if self.model == "logistic":
                steps.append(("scale", StandardScaler()))
            parts.append(("num", Pipeline(steps) if steps else "passthrough", list(self.numeric_)))
        if self.categorical_:
            steps = []
            if self.impute:
                steps.append(("impute", SimpleImputer(strategy="constant", fill_value=MISSING_LEVEL)))
            steps.append(("onehot", OneHotEncoder(
                categories=[list(self.categories_[c]) for c in self.categorical_],
                drop="first" if self.model == "logistic" else None, handle_unknown="ignore",
                sparse_output=False)))
            parts.append(("cat", Pipeline(steps), list(self.categorical_)))
        pre = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
        return Pipeline([("pre", pre), ("model", self._estimator())])

    def _threads(self):
        """Limit OpenMP/BLAS threads to ``n_jobs`` (None or -1: no limit)."""
        from contextlib import nullcontext

        from threadpoolctl import threadpool_limits

        if self.n_jobs is None or int(self.n_jobs) < 1:
            return nullcontext()
        return threadpool_limits(limits=int(self.n_jobs))

    # ----- input ------------------------------------------------------------------------------
    def _unit_of_target(self, data) -> str | None:
        name = str(self.target)
        if "__" not in name:
            return None
        crime = name.split("__", 1)[1]
        if crime in data.crime_types or crime in data.crime_groups:
            return data.unit_of(crime)
        return None

    def _resolve(self, data, design, y, sample_weight, strata, psu):
        """frame, in-scope mask, weights, strata, psu, y, unit, accounting rows."""
        acc: list[tuple[str, int, str]] = []
        unit = None
        if _is_survey_data(data):
            frame = data.respondents
            unit = self._unit_of_target(data)
            scope = frame["_respondent"].to_numpy(dtype=bool) if "_respondent" in frame.columns else np.ones(
                len(frame), dtype=bool)
            acc.append(("input", len(frame), f"rows of the design file ({unit or 'default'} weights)"))
            if (~scope).any():
                acc.append(("not respondents", int((~scope).sum()), "non-respondent rows kept for design only"))
            if design is None and sample_weight is None:
                design = data.design(unit)
        elif isinstance(data, pd.DataFrame):
            frame = data
            scope = np.ones(len(frame), dtype=bool)
            acc.append(("input", len(frame), "rows of the data frame"))
        else:
            raise RiskModelError(f"data must be a SurveyData or a pandas DataFrame, not {type(data).__name__}")
        n = len(frame)
        w = None
        if isinstance(design, (Design, ReplicateDesign)):
            if design.n != n:
                raise RiskModelError(f"the design has {design.n} rows and the data {n}")
            dom = design._in_domain()
            out = scope & ~dom
            if out.any():
                acc.append(("outside domain", int(out.sum()), "rows outside the design's domain"))
            scope = scope & dom
            w = np.asarray(design.w, dtype=float)
            if isinstance(design, Design):
                strata = strata if strata is not None else (
                    design.data[design.strata].to_numpy() if isinstance(design.strata, str) else
                    (design.data[list(design.strata)] if design.strata else None))
                ps = design.psu[0] if isinstance(design.psu, (list, tuple)) else design.psu
                psu = psu if psu is not None else (design.data[ps].to_numpy() if ps else None)
            elif psu is None:
                raise RiskModelError("a replicate-weight design carries no PSU for the cross-validation folds: "
                                     "give psu= (and strata=) columns")
        elif isinstance(design, Mapping):
            unknown = set(design) - {"weights", "sample_weight", "strata", "psu"}
            if unknown:
                raise RiskModelError(f"design mapping keys must be weights, strata, psu; not {sorted(unknown)}")
            sample_weight = sample_weight if sample_weight is not None else design.get(
                "weights", design.get("sample_weight"))
            strata = strata if strata is not None else design.get("strata")
            psu = psu if psu is not None else design.get("psu")
        elif design is not None:
            raise RiskModelError(f"design must be a Design, a mapping of column names or None, not "
                                 f"{type(design).__name__}")
        if sample_weight is not None:
            w = _values(frame, sample_weight, "weight", n)
            name = sample_weight if isinstance(sample_weight, str) else "sample_weight"
            w = pd.to_numeric(pd.Series(np.asarray(w).ravel()), errors="coerce").to_numpy(dtype=float)
            for bad, what in ((np.isnan(w) & scope, "missing or non-numeric"), (np.isinf(w) & scope, "infinite"),
                              ((w < 0) & scope, "negative")):
                if bad.any():
                    raise WeightError(f"weight '{name}': {int(bad.sum())} of {int(scope.sum())} rows are {what}")
        if w is None:
            warnings.warn("no survey weights given: every row weighs 1", SurveyWarning, stacklevel=3)
            w = np.ones(n)
        strata = _values(frame, strata, "strata", n)
        psu = _values(frame, psu, "PSU", n)
        if y is not None:
            yv = pd.Series(np.asarray(y).ravel(), index=frame.index) if not isinstance(y, pd.Series) else y
            if len(yv) != n:
                raise RiskModelError(f"y has {len(yv)} values for {n} rows")
            yv = pd.Series(yv.to_numpy(), index=frame.index)
            self._target_name = getattr(y, "name", None) or str(self.target)
        else:
            if self.target not in frame.columns:
                raise column_not_found(self.target, frame.columns, "target")
            yv = frame[self.target]
            self._target_name = str(self.target)
        return frame, scope, w, strata, psu, yv, unit, acc

    def _categorical_set(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        for f in self.features:
            if f not in frame.columns:
                raise column_not_found(f, frame.columns, "predictor")
        given = set(self.categorical or [])
        cat, num = [], []
        for f in self.features:
            s = frame[f]
            if f in given or not (pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)):
                cat.append(f)
            else:
                num.append(f)
        return cat, num

    def _matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The predictor table the pipeline takes: numerics as float, categoricals as strings
        (NaN kept)."""
        missing = [f for f in self.features if f not in frame.columns]
        if missing:
            raise column_not_found(missing[0], frame.columns, "predictor")
        cols = {}
        for f in self.features:
            s = frame[f]
            if f in self.categorical_:
                cols[f] = s.astype(object).map(lambda x: np.nan if pd.isna(x) else _level(x)).to_numpy(dtype=object)
            else:
                if pd.api.types.is_bool_dtype(s.dtype):
                    s = s.astype(float)
                if not pd.api.types.is_numeric_dtype(s.dtype):
                    raise RiskModelError(f"predictor '{f}' is not numeric ({s.dtype}); list it in categorical=")
                cols[f] = s.to_numpy(dtype=float, na_value=np.nan)
        return pd.DataFrame(cols, index=frame.index, columns=list(self.features))

    def _prepare_rows(self, frame, scope, w, yv, acc, fitting: bool):
        """Drop (and count) zero-weight rows and rows with a missing outcome or predictor."""
        n_missing: dict[str, int] = {}
        zero = scope & (w <= 0)
        if zero.any():
            acc.append(("zero weight", int(zero.sum()), "respondent rows with weight 0, not fitted"))
        keep = scope & (w > 0)
        y_num = pd.to_numeric(yv, errors="coerce")
        if pd.api.types.is_bool_dtype(yv.dtype):
            y_num = yv.astype(float)
        y_arr = y_num.to_numpy(dtype=float, na_value=np.nan)
        bad = keep & ~np.isnan(y_arr) & ~np.isin(y_arr, (0.0, 1.0))
        bad |= keep & yv.notna().to_numpy() & np.isnan(y_arr)
        if bad.any():
            vals = ", ".join(sorted({_level(v) for v in yv[bad].head(50)})[:5])
            raise RiskModelError(f"target '{self._target_name}' must be 0/1: {int(bad.sum())} of {int(keep.sum())} "
                                 f"rows hold other values ({vals})")
        y_miss = keep & np.isnan(y_arr)
        if y_miss.any():
            n_missing[self._target_name] = int(y_miss.sum())
            warnings.warn(f"target '{self._target_name}' is missing for {_fmt_n(y_miss.sum())} of "
                          f"{_fmt_n(keep.sum())} rows: dropped from the fit", MissingValuesWarning, stacklevel=3)
            acc.append(("missing target", int(y_miss.sum()), f"'{self._target_name}' missing, not fitted"))
            keep &= ~y_miss
        X = self._matrix(frame)
        miss = X.isna().to_numpy() & keep[:, None]
        per = {f: int(miss[:, j].sum()) for j, f in enumerate(self.features) if miss[:, j].any()}
        if per:
            n_missing.update(per)
            rows = miss.any(axis=1)
            detail = ", ".join(f"'{f}' {_fmt_n(c)}" for f, c in per.items())
            if self.impute:
                warnings.warn(f"missing predictor values imputed in {_fmt_n(rows.sum())} of {_fmt_n(keep.sum())} "
                              f"rows ({detail})", MissingValuesWarning, stacklevel=3)
                acc.append(("imputed predictors", int(rows.sum()), f"missing values imputed: {detail}"))
            else:
                warnings.warn(f"{_fmt_n(rows.sum())} of {_fmt_n(keep.sum())} rows dropped from the fit for missing "
                              f"predictor values ({detail}); impute=True imputes them instead",
                              MissingValuesWarning, stacklevel=3)
                acc.append(("missing predictors", int(rows.sum()), f"dropped from the fit: {detail}"))
                keep &= ~rows
        if not keep.any():
            raise RiskModelError(f"no row left to fit out of {len(frame):,} (see the accounting: "
                                 + "; ".join(f"{s} {r}" for s, r, _ in acc) + ")")
        return keep, X, y_arr, n_missing

    # ----- checks -----------------------------------------------------------------------------
    def _check_constant(self, X: pd.DataFrame) -> None:
        for f in self.features:
            vals = X[f].dropna().unique()
            if len(vals) <= 1:
                v = _level(vals[0]) if len(vals) else "missing"
                raise ConstantPredictorError(f"predictor '{f}' is constant: all {len(X):,} rows fitted have "
                                             f"the value {v}; remove it from features")

    def _check_separation(self, X: pd.DataFrame, y: np.ndarray) -> list[str]:
        """Warn about predictors (or levels) that separate the outcome; returns the predictors
        that separate it completely on their own."""
        tgt = self._target_name
        complete = []
        C = (self.model_params or {}).get("C", _DEFAULTS["logistic"]["C"])
        for f in self.features:
            x = X[f]
            ok = x.notna().to_numpy()
            if f in self.categorical_:
                tab = pd.DataFrame({"x": x[ok].to_numpy(), "y": y[ok]}).groupby("x")["y"].agg(["size", "sum"])
                pure = tab[(tab["sum"] == 0) | (tab["sum"] == tab["size"])]
                if len(pure) and len(pure) == len(tab):
                    complete.append(f)
                    warnings.warn(f"predictor '{f}' separates '{tgt}' perfectly: each of its levels holds only "
                                  f"events or only non-events (is it derived from the outcome?)",
                                  SeparationWarning, stacklevel=3)
                elif len(pure) and self.model == "logistic":
                    lv = "; ".join(f"'{k}': {int(r['sum'])} events in {int(r['size'])} rows" for k, r in
                                   pure.head(6).iterrows())
                    more = f" and {len(pure) - 6} more" if len(pure) > 6 else ""
                    warnings.warn(f"predictor '{f}': quasi-complete separation at level(s) {lv}{more}; the logistic "
                                  f"coefficient of such a level is set by the L2 penalty (C={C}), not by the data; "
                                  "consider merging levels", SeparationWarning, stacklevel=3)
            else:
                xv = x.to_numpy(dtype=float)
                x1, x0 = xv[ok & (y == 1)], xv[ok & (y == 0)]
                if not (x1.size and x0.size):
                    continue
                if x1.min() > x0.max() or x1.max() < x0.min():
                    rule = (f"'{f}' > {x0.max():g}" if x1.min() > x0.max() else f"'{f}' < {x0.min():g}")
                    complete.append(f)
                    warnings.warn(f"predictor '{f}' separates '{tgt}' perfectly: every event and no non-event has "
                                  f"{rule} (is it derived from the outcome?)", SeparationWarning, stacklevel=3)
                elif self.model == "logistic" and (x1.min() >= x0.max() or x1.max() <= x0.min()):
                    warnings.warn(f"predictor '{f}': quasi-complete separation of '{tgt}' (events and non-events "
                                  "overlap at a single value only)", SeparationWarning, stacklevel=3)
        return complete

    # ----- fit --------------------------------------------------------------------------------
    def fit(self, data, design=None, *, y=None, sample_weight=None, strata=None, psu=None):
        """Fit by PSU-grouped cross-validation (out-of-fold metrics), then on every row.

        ``data``: a ``SurveyData`` (its respondent rows, weighted for the target's unit with
        ``data.design(unit)``; strata and PSU from the spec) or a DataFrame with ``design``: a
        :class:`survey.Design` on the same rows, or a mapping ``{"weights": col, "strata": col,
        "psu": col}``; or the keywords ``sample_weight``, ``strata``, ``psu`` (column names or
        arrays).  ``y``: the outcome (default: the ``target`` column).  For scikit-learn's
        calling convention ``fit(X, y, sample_weight=...)``, a second positional argument that is
        not a design is taken as ``y``.  Returns ``self``.
        """
        if design is not None and not _is_design(design):
            if y is not None:
                raise RiskModelError("give the outcome once: as y= or as the second argument")
            y, design = design, None
        self._check_params()
        frame, scope, w, strata_v, psu_v, yv, unit, acc = self._resolve(data, design, y, sample_weight, strata, psu)
        self.categorical_, self.numeric_ = self._categorical_set(frame)
        keep, X_all, y_all, n_missing = self._prepare_rows(frame, scope, w, yv, acc, fitting=True)
        X = X_all.loc[keep]
        yk = y_all[keep].astype(np.int64)
        wk = w[keep]
        self._check_constant(X)
        self.categories_ = {}
        for f in self.categorical_:
            s = frame.loc[keep, f]
            if isinstance(s.dtype, pd.CategoricalDtype):
                observed = set(X[f].dropna())
                levels = [_level(c) for c in s.cat.categories if _level(c) in observed]
            else:
                levels = sorted(X[f].dropna().unique(), key=lambda v: (_num_key(v), v))
            if self.impute and X[f].isna().any():
                levels.append(MISSING_LEVEL)
            self.categories_[f] = levels
        n = int(keep.sum())
        events = int(yk.sum())
        if events == 0 or events == n:
            raise RiskModelError(f"target '{self._target_name}' has {'no' if events == 0 else 'only'} events among "
                                 f"the {n:,} rows fitted: nothing to model")
        separating = self._check_separation(X, yk)

        strata_k = _take(strata_v, keep)
        psu_k = _take(psu_v, keep)
        if psu_k is None:
            warnings.warn("no PSU given: every row is its own PSU in the cross-validation folds", SurveyWarning,
                          stacklevel=2)
            psu_k = np.arange(n)
        folds = psu_folds(strata_k, psu_k, int(self.n_splits), int(self.seed))
        self.n_psu_ = int(len(np.unique(_key(np.column_stack([
            np.zeros(n, dtype=np.int64) if strata_k is None else _key(strata_k, "strata"),
            np.arange(n) if psu_k is None else _key(psu_k, "PSU")]), "PSU"))))
        for k in range(int(self.n_splits)):
            tr = folds != k
            ev = int(yk[tr].sum())
            if ev == 0 or ev == int(tr.sum()):
                raise RiskModelError(f"cross-validation fold {k + 1}: the training rows hold "
                                     f"{'no' if ev == 0 else 'only'} events of '{self._target_name}' "
                                     f"({events} events in all); use fewer folds")

        pipe = self._pipeline()
        oof = np.empty(n)
        self.cv_models_ = []
        with self._threads():
            for k in range(int(self.n_splits)):
                tr, te = folds != k, folds == k
                est = clone(pipe)
                est.fit(X.loc[tr], yk[tr], model__sample_weight=wk[tr] / wk[tr].mean())
                oof[te] = est.predict_proba(X.loc[te])[:, 1]
                self.cv_models_.append(est)
            self.pipeline_ = clone(pipe).fit(X, yk, model__sample_weight=wk / wk.mean())
        if self.model == "logistic" and not separating:
            p_fit = self.pipeline_.predict_proba(X)[:, 1]
            if p_fit[yk == 1].min() > p_fit[yk == 0].max():
                warnings.warn(f"the predictors together separate '{self._target_name}' perfectly in the fit data "
                              f"({', '.join(self.features)}): coefficients are set by the penalty",
                              SeparationWarning, stacklevel=2)

        self.feature_names_in_ = np.asarray(list(self.features), dtype=object)
        self.n_features_in_ = len(self.features)
        self.unit_ = unit
        self.n_input_ = int(len(frame))
        self.n_ = n
        self.n_dropped_ = int((scope & ~keep).sum())
        self.n_missing_ = n_missing
        self.events_ = events
        self.weighted_n_ = float(wk.sum())
        acc.append(("fitted", n, f"{events:,} events of '{self._target_name}'; {self.n_psu_:,} PSUs in "
                                 f"{int(self.n_splits)} folds"))
        self.accounting_ = pd.DataFrame(acc, columns=ACCOUNTING_COLUMNS)
        self.oof_ = pd.DataFrame({"fold": folds + 1, "y": yk, "weight": wk, "predicted": oof},
                                 index=frame.index[keep])
        # subgroups
        sub = self._subgroup_names(data, frame)
        self.subgroups_ = sub
        groups = {s: frame.loc[keep, s] for s in sub}
        self.metrics_, self.calibration_ = self._evaluate(yk, oof, wk, groups)
        self.coefficients_ = self._coefficients() if self.model == "logistic" else None
        self.importance_ = None
        self.partial_dependence_ = {}
        self._fit_data = {"X": X, "y": yk, "w": wk, "folds": folds}
        return self

    def _subgroup_names(self, data, frame) -> list[str]:
        if self.subgroups is not None:
            names = [self.subgroups] if isinstance(self.subgroups, str) else list(self.subgroups)
        elif _is_survey_data(data):
            names = [d for d, spec in data.spec.domains.items()
                     if d in frame.columns and (spec.units is None or self.unit_ is None or self.unit_ in spec.units)]
        else:
            names = []
        for s in names:
            if s not in frame.columns:
                raise column_not_found(s, frame.columns, "subgroup")
        return names

    # ----- evaluation -------------------------------------------------------------------------
    def _metrics_row(self, subgroup, group, y, p, w) -> dict:
        n = int(y.size)
        events = int(y.sum()) if n else 0
        sw = float(w.sum()) if n else 0.0
        row = {"subgroup": subgroup, "group": group, "n": n, "weighted_n": sw, "events": events,
               "observed": float(np.sum(w * y) / sw) if sw > 0 else np.nan,
               "mean_predicted": float(np.sum(w * p) / sw) if sw > 0 else np.nan,
               "auc": weighted_auc(y, p, w) if n else np.nan,
               "brier": weighted_brier(y, p, w) if n else np.nan,
               "log_loss": weighted_log_loss(y, p, w) if n else np.nan, "note": ""}
        if n == 0:
            row["note"] = "no cases in this group: metrics undefined"
        elif events == 0:
            row["note"] = "no events in this group: AUC undefined"
        elif events == n:
            row["note"] = "no non-events in this group: AUC undefined"
        elif events < MIN_EVENTS:
            row["note"] = f"fewer than {MIN_EVENTS} events: unstable"
        return row

    def _evaluate(self, y, p, w, groups: dict[str, pd.Series]):
        edges = calibration_edges(p, w, int(self.calibration_bins), self.calibration_strategy)
        rows = [self._metrics_row("overall", "all", y, p, w)]
        cal = [calibration_table(y, p, w, edges=edges).assign(subgroup="overall", group="all")]
        undefined = []
        for s, values in groups.items():
            if isinstance(values.dtype, pd.CategoricalDtype):
                levels = list(values.cat.categories)
            else:
                levels = sorted(values.dropna().unique(), key=lambda v: (_num_key(v), str(v)))
            v = values.to_numpy(dtype=object)
            na = pd.isna(values).to_numpy()
            cells = [(_level(lv), (~na) & (v == lv)) for lv in levels]
            if na.any():
                cells.append((MISSING_LEVEL, na))
            for label, m in cells:
                r = self._metrics_row(s, label, y[m], p[m], w[m])
                rows.append(r)
                if np.isnan(r["auc"]):
                    undefined.append(f"{s}={label} ({r['note'].split(':')[0]})")
                if m.any():
                    cal.append(calibration_table(y[m], p[m], w[m], edges=edges).assign(subgroup=s, group=label))
        if undefined:
            warnings.warn(f"subgroup metrics undefined for {len(undefined)} group(s): {', '.join(undefined)}",
                          SubgroupWarning, stacklevel=3)
        metrics = pd.DataFrame(rows, columns=METRIC_COLUMNS)
        calibration = pd.concat(cal, ignore_index=True)[CALIBRATION_COLUMNS]
        return metrics, calibration

    def _coefficients(self) -> pd.DataFrame:
        names = self.pipeline_[:-1].get_feature_names_out()
        lr = self.pipeline_[-1]
        coef = np.concatenate([lr.intercept_, lr.coef_.ravel()])
        terms = ["(Intercept)"] + [str(t) for t in names]
        ref = {f: self.categories_[f][0] for f in self.categorical_}
        note = []
        for t in terms[1:]:
            f = next((c for c in self.categorical_ if t.startswith(f"{c}_")), None)
            note.append(f"vs {f} = {ref[f]}" if f else "per standard deviation")
        return pd.DataFrame({"term": terms, "coefficient": coef, "odds_ratio": np.exp(coef),
                             "note": ["baseline odds"] + note})

    # ----- prediction -------------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "pipeline_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this RiskModel is not fitted yet: call fit() first")

    def _predict_frame(self, data) -> tuple[pd.DataFrame, np.ndarray]:
        self._check_fitted()
        frame = data.respondents if _is_survey_data(data) else data
        if not isinstance(frame, pd.DataFrame):
            raise RiskModelError(f"data must be a SurveyData or a pandas DataFrame, not {type(data).__name__}")
        X = self._matrix(frame)
        for f in self.categorical_:
            known = set(self.categories_[f])
            unk = X[f].notna() & ~X[f].isin(known)
            if unk.any():
                vals = ", ".join(sorted(set(X.loc[unk, f]))[:5])
                warnings.warn(f"predictor '{f}': {int(unk.sum()):,} rows hold level(s) not seen in the fit ({vals}); "
                              "they are encoded as the reference (logistic) or as no level (trees)",
                              SurveyWarning, stacklevel=3)
        ok = np.ones(len(X), dtype=bool) if self.impute else ~X.isna().any(axis=1).to_numpy()
        if not ok.all():
            per = ", ".join(f"'{f}' {int(c):,}" for f, c in X.isna().sum().items() if c)
            warnings.warn(f"{int((~ok).sum()):,} of {len(X):,} rows have missing predictors ({per}): their "
                          "prediction is NaN", MissingValuesWarning, stacklevel=3)
        return X, ok

    def predict_proba(self, data) -> np.ndarray:
        """Probabilities (n x 2: no event, event) for every row of ``data`` (DataFrame or
        SurveyData), from the model fitted on every row; NaN where a predictor is missing."""
        X, ok = self._predict_frame(data)
        out = np.full((len(X), 2), np.nan)
        with warnings.catch_warnings(), self._threads():
            warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)
            if ok.any():
                out[ok] = self.pipeline_.predict_proba(X.loc[ok])
        return out

    def predict_risk(self, data) -> pd.Series:
        """Predicted probability of the outcome per row (a Series on the data's index)."""
        p = self.predict_proba(data)[:, 1]
        frame = data.respondents if _is_survey_data(data) else data
        return pd.Series(p, index=frame.index, name="predicted")

    def predict(self, data) -> np.ndarray:
        """0/1 at a probability of 0.5 (for scikit-learn compatibility; risks are rare, so use
        :meth:`predict_risk` for anything substantive)."""
        return (self.predict_proba(data)[:, 1] >= 0.5).astype(float)

    def score(self, X, y=None, sample_weight=None) -> float:
        """Weighted AUC of the fitted model on ``X`` (outcome ``y`` or the target column)."""
        p = self.predict_proba(X)[:, 1]
        frame = X.respondents if _is_survey_data(X) else X
        yv = np.asarray(frame[self.target] if y is None else y, dtype=float)
        w = np.ones(len(p)) if sample_weight is None else np.asarray(
            frame[sample_weight] if isinstance(sample_weight, str) else sample_weight, dtype=float)
        ok = ~np.isnan(p) & ~np.isnan(yv)
        return weighted_auc(yv[ok], p[ok], w[ok])

    # ----- interpretation -----------------------------------------------------------------------
    def _interpret_data(self, data, design, sample_weight):
        """(X, y, w) of the fit, or of new data."""
        if data is None:
            fd = getattr(self, "_fit_data", None)
            if fd is None:
                raise RiskModelError("this model keeps no fit data (a saved model does not store microdata): "
                                     "pass data=")
            return fd["X"], fd["y"], fd["w"]
        frame, scope, w, _, _, yv, _, acc = self._resolve(data, design, None, sample_weight, None, None)
        keep, X_all, y_all, _ = self._prepare_rows(frame, scope, w, yv, acc, fitting=False)
        return X_all.loc[keep], y_all[keep].astype(np.int64), w[keep]

    def permutation_importance(self, data=None, *, on="held_out", scoring="roc_auc", n_repeats=5, seed=None,
                               design=None, sample_weight=None) -> pd.DataFrame:
        """Weighted permutation importance of each predictor (sklearn's
        ``permutation_importance`` with ``sample_weight``): the drop in ``scoring`` (``roc_auc``,
        ``neg_brier_score`` or ``neg_log_loss``) when the predictor's values are shuffled.

        ``on="held_out"`` (default): each fold's model on its own held-out PSUs, pooled over
        folds (``importance_sd`` over folds x repeats); ``on="fit"``: the final model on the fit
        rows.  With ``data`` (and its design or ``sample_weight``): the final model on those
        rows.  ``seed`` defaults to the model's seed.  Returns (and stores as ``importance_``)
        :data:`IMPORTANCE_COLUMNS`, rank 1 the most important.  Importance measures association
        with the outcome in this model, not a causal effect.
        """
        self._check_fitted()
        if scoring not in SCORINGS:
            raise RiskModelError(f"scoring must be one of {', '.join(SCORINGS)}, not '{scoring}'")
        if on not in ("held_out", "fit"):
            raise RiskModelError(f"on must be 'held_out' or 'fit', not '{on}'")
        seed = int(self.seed if seed is None else seed)
        n_repeats = int(n_repeats)
        if data is not None:
            on = "data"
        elif on == "held_out" and not getattr(self, "cv_models_", None):
            raise RiskModelError("held-out importance needs the fold models, which a saved model does not keep: "
                                 "use on='fit' with data=, or refit")
        X, y, w = self._interpret_data(data, design, sample_weight)
        if on == "held_out":
            folds = self._fit_data["folds"]
            jobs = [(self.cv_models_[k], folds == k) for k in range(int(self.n_splits))]
        else:
            jobs = [(self.pipeline_, np.ones(len(y), dtype=bool))]
        imps, base = [], []
        skipped = []
        with warnings.catch_warnings(), self._threads():
            warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)
            for k, (est, m) in enumerate(jobs):
                if scoring == "roc_auc" and (y[m].min() == y[m].max()):
                    skipped.append(k + 1)
                    continue
                r = _sk_permutation_importance(est, X.loc[m], y[m], scoring=scoring, n_repeats=n_repeats,
                                               random_state=seed + k, sample_weight=w[m])
                imps.append(r.importances)
                base.append(get_scorer(scoring)(est, X.loc[m], y[m], sample_weight=w[m]))
        if skipped:
            warnings.warn(f"permutation importance: fold(s) {', '.join(map(str, skipped))} hold a single class of "
                          f"'{self._target_name}' and were left out", SubgroupWarning, stacklevel=2)
        if not imps:
            raise RiskModelError("permutation importance: no fold holds both events and non-events")
        allimp = np.concatenate(imps, axis=1)
        out = pd.DataFrame({"feature": list(self.features), "importance_mean": allimp.mean(axis=1),
                            "importance_sd": allimp.std(axis=1, ddof=1) if allimp.shape[1] > 1 else np.nan})
        out = out.sort_values(["importance_mean", "feature"], ascending=[False, True], kind="stable")
        out["rank"] = np.arange(1, len(out) + 1)
        out["scoring"] = scoring
        out["baseline_score"] = float(np.mean(base))
        out["on"] = on
        out["n_repeats"] = n_repeats
        out["note"] = NOTE
        out = out[IMPORTANCE_COLUMNS].reset_index(drop=True)
        out.attrs["note"] = NOTE
        self.importance_ = out
        return out

    def partial_dependence(self, feature, data=None, *, grid=None, grid_resolution=20,
                           percentiles=(0.05, 0.95), design=None, sample_weight=None) -> pd.DataFrame:
        """Weighted partial dependence of the predicted risk on one predictor: for each grid value,
        the weighted mean prediction of the final model over the fit rows (or ``data``) with the
        predictor set to that value.  The grid: ``grid``; or every level of a categorical; or
        every value of a numeric with at most ``grid_resolution`` values, else that many weighted
        quantiles between ``percentiles``.  Returns :data:`PD_COLUMNS` (stored in
        ``partial_dependence_[feature]``).  It describes the model, not a causal effect.
        """
        self._check_fitted()
        if feature not in self.features:
            raise column_not_found(feature, list(self.features), "predictor of the model")
        X, _, w = self._interpret_data(data, design, sample_weight)
        if grid is not None:
            values = list(grid)
        elif feature in self.categorical_:
            values = list(self.categories_[feature])
        else:
            x = X[feature].to_numpy(dtype=float)
            ok = ~np.isnan(x)
            uniq = np.unique(x[ok])
            if uniq.size <= int(grid_resolution):
                values = list(uniq)
            else:
                lo, hi = percentiles
                values = list(np.unique(_wquantile(x[ok], w[ok], np.linspace(lo, hi, int(grid_resolution)))))
        rows = []
        sw = float(w.sum())
        with warnings.catch_warnings(), self._threads():
            warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)
            for v in values:
                Xv = X.copy()
                Xv[feature] = _level(v) if feature in self.categorical_ else float(v)
                p = self.pipeline_.predict_proba(Xv)[:, 1]
                ok = ~np.isnan(p)
                rows.append({"feature": feature, "value": v, "average_prediction": float(np.sum(w[ok] * p[ok]) /
                                                                                          w[ok].sum()),
                             "n": int(ok.sum()), "weighted_n": sw, "note": NOTE})
        out = pd.DataFrame(rows, columns=PD_COLUMNS)
        out.attrs["note"] = NOTE
        self.partial_dependence_[feature] = out
        return out

    # ----- persistence ------------------------------------------------------------------------
    def _summary(self) -> dict:
        overall = self.metrics_.iloc[0]
        return {
            "format": "survey.risk/1",
            "model": self.model, "target": self._target_name, "unit": self.unit_,
            "params": _jsonable(self.get_params()), "seed": int(self.seed),
            "features": list(self.features), "categorical": list(self.categorical_), "numeric": list(self.numeric_),
            "categories": self.categories_, "subgroups": list(self.subgroups_),
            "n_input": self.n_input_, "n": self.n_, "n_dropped": self.n_dropped_, "n_missing": self.n_missing_,
            "events": self.events_, "weighted_n": self.weighted_n_, "n_psu": self.n_psu_,
            "n_splits": int(self.n_splits),
            "metrics_overall": _jsonable({k: overall[k] for k in ("auc", "brier", "log_loss", "observed",
                                                                  "mean_predicted")}),
            "accounting": _jsonable(self.accounting_.to_dict(orient="records")),
            "versions": {"sklearn": sklearn.__version__, "numpy": np.__version__, "pandas": pd.__version__,
                         "python": platform.python_version(), "survey": _survey_version()},
            "note": NOTE,
        }

    def save(self, path) -> Path:
        """Write the fitted model into the folder ``path``, atomically (a temporary sibling folder
        renamed onto it): ``model.joblib`` (this object with its fitted pipeline; no microdata,
        no fold models), ``metrics.csv``, ``calibration.csv``, ``accounting.csv``,
        ``importance.csv`` and ``partial_dependence.csv`` when computed, and ``model.json``
        (parameters, seed, versions, row accounting, overall metrics).  Returns ``path``."""
        import joblib

        self._check_fitted()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
            slim = self.__class__.__new__(self.__class__)
            slim.__dict__.update({k: v for k, v in self.__dict__.items()
                                  if k not in ("_fit_data", "cv_models_", "oof_")})
            joblib.dump(slim, tmp / "model.joblib")
            self.metrics_.to_csv(tmp / "metrics.csv", index=False)
            self.calibration_.to_csv(tmp / "calibration.csv", index=False)
            self.accounting_.to_csv(tmp / "accounting.csv", index=False)
            files = ["model.joblib", "metrics.csv", "calibration.csv", "accounting.csv"]
            if self.importance_ is not None:
                self.importance_.to_csv(tmp / "importance.csv", index=False)
                files.append("importance.csv")
            if self.partial_dependence_:
                pd.concat(list(self.partial_dependence_.values()), ignore_index=True).astype(
                    {"value": str}).to_csv(tmp / "partial_dependence.csv", index=False)
                files.append("partial_dependence.csv")
            if self.coefficients_ is not None:
                self.coefficients_.to_csv(tmp / "coefficients.csv", index=False)
                files.append("coefficients.csv")
            summary = self._summary() | {"files": files + ["model.json"]}
            (tmp / "model.json").write_text(json.dumps(summary, indent=2) + "\n")
            replace_dir(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    @classmethod
    def load(cls, path) -> RiskModel:
        """Read a model written by :meth:`save` (joblib: load only files you trust).  Warns when
        the scikit-learn version differs from the one that fitted it."""
        import joblib

        folder = Path(path)
        if not (folder / "model.joblib").exists():
            raise RiskModelError(f"{folder}: no model.joblib (not a folder written by RiskModel.save)")
        meta = json.loads((folder / "model.json").read_text()) if (folder / "model.json").exists() else {}
        fitted_with = meta.get("versions", {}).get("sklearn")
        if fitted_with and fitted_with != sklearn.__version__:
            warnings.warn(f"{folder}: fitted with scikit-learn {fitted_with}, loaded with {sklearn.__version__}",
                          SurveyWarning, stacklevel=2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)  # sklearn's own version warning, reported above
            obj = joblib.load(folder / "model.joblib")
        if not isinstance(obj, cls):
            raise RiskModelError(f"{folder}/model.joblib holds a {type(obj).__name__}, not a {cls.__name__}")
        obj._fit_data = None
        obj.cv_models_ = []
        return obj


def _num_key(v):
    try:
        return (0, float(v))
    except (TypeError, ValueError):
        return (1, 0.0)


def _survey_version() -> str:
    try:
        from . import __version__

        return __version__
    except ImportError:  # pragma: no cover
        return "unknown"
