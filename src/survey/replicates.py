"""Build replicate weights from a Taylor design (as R's ``as.svrepdesign``).

Methods: ``JK1`` (delete one PSU, strata ignored), ``JKn`` (delete one PSU within its stratum),
``BRR`` and ``Fay`` (half samples from a Hadamard matrix; exactly 2 PSUs per stratum) and
``bootstrap`` (Rao-Wu rescaling bootstrap of n_h - 1 PSUs per stratum).  Jackknife replicates
honour the stage-1 fpc through ``rscales`` (1 - f), as R does.
"""

from __future__ import annotations

import numpy as np

from .design import Design, ReplicateDesign
from .errors import DesignError, ReplicateWeightError

AS_REPLICATE_METHODS = ("JK1", "JKn", "BRR", "Fay", "bootstrap")


def hadamard(order: int) -> np.ndarray:
    """Sylvester Hadamard matrix of a power-of-two order."""
    if order < 1 or order & (order - 1):
        raise ValueError(f"Sylvester Hadamard order must be a power of 2, not {order}")
    h = np.ones((1, 1), dtype=np.int8)
    while h.shape[0] < order:
        h = np.block([[h, h], [h, -h]])
    return h


def as_replicate(design: Design, method: str | None = None, rho: float = 0.5, replicates: int = 50,
                 seed: int | None = None, mse: bool = False) -> ReplicateDesign:
    """Replicate-weight version of a Taylor ``design``.

    method: default ``JK1`` for an unstratified design and ``JKn`` for a stratified one (as R).
    rho: Fay coefficient (``Fay``).  replicates, seed: number of bootstrap replicates and the
    random seed.  Calibration is not carried over: calibrate the replicate design instead.
    """
    if not isinstance(design, Design):
        raise DesignError("as_replicate takes a Taylor Design")
    st = design.stages[0]
    if method is None:
        method = "JK1" if st.n_groups == 1 else "JKn"
    if method not in AS_REPLICATE_METHODS:
        raise ReplicateWeightError(f"method must be one of {', '.join(AS_REPLICATE_METHODS)}, not '{method}'")
    w = design.w
    unit = st.unit  # PSU per row
    stratum_of_unit = st.group
    n_psu = st.n_units
    size = st.size[stratum_of_unit]  # PSUs in the stratum of each PSU
    frac = st.fraction[stratum_of_unit]

    if method == "JK1":
        n = n_psu
        mult = np.full((n_psu, n_psu), n / (n - 1.0))
        np.fill_diagonal(mult, 0.0)
        repw = w[:, None] * mult[unit]
        rscales = 1.0 - frac  # one replicate per PSU
        kw = dict(method="JK1", scale=(n - 1.0) / n, rscales=rscales)
    elif method == "JKn":
        keep = np.flatnonzero(size > 1)  # a lonely PSU gets no replicate
        mult = np.ones((n_psu, keep.size))
        for r, j in enumerate(keep):
            same = stratum_of_unit == stratum_of_unit[j]
            mult[same, r] = size[j] / (size[j] - 1.0)
            mult[j, r] = 0.0
        repw = w[:, None] * mult[unit]
        rscales = (size[keep] - 1.0) / size[keep] * (1.0 - frac[keep])
        kw = dict(method="JKn", scale=1.0, rscales=rscales)
    elif method in ("BRR", "Fay"):
        bad = np.flatnonzero(st.size != 2)
        if bad.size:
            raise ReplicateWeightError(
                f"{method} needs exactly 2 PSUs per stratum; {bad.size} strata differ "
                f"(e.g. {st.labels[bad[0]]} with {st.size[bad[0]]})")
        H = st.n_groups
        order = 1
        while order < H + 1:
            order *= 2
        had = hadamard(order)[:, 1:H + 1]  # replicates x strata, the all-ones column left out
        # first PSU of each stratum (lowest code) is "half 1"
        first = np.full(H, -1)
        for u in range(n_psu):
            if first[stratum_of_unit[u]] < 0:
                first[stratum_of_unit[u]] = u
        is_first = np.zeros(n_psu, dtype=bool)
        is_first[first] = True
        r_ = 0.0 if method == "BRR" else float(rho)
        sign = np.where(is_first[:, None], had.T[stratum_of_unit], -had.T[stratum_of_unit])  # psu x reps
        mult = np.where(sign > 0, 2.0 - r_, r_)
        repw = w[:, None] * mult[unit]
        kw = dict(method=method, rho=r_ if method == "Fay" else None)
    else:  # bootstrap
        rng = np.random.default_rng(seed)
        mult = np.zeros((n_psu, replicates))
        for h in range(st.n_groups):
            units = np.flatnonzero(stratum_of_unit == h)
            nh = units.size
            if nh < 2:
                mult[units, :] = 1.0
                continue
            draws = rng.integers(0, nh, size=(nh - 1, replicates))
            counts = np.zeros((nh, replicates))
            for r in range(replicates):
                counts[:, r] = np.bincount(draws[:, r], minlength=nh)
            mult[units, :] = counts * nh / (nh - 1.0)
        repw = w[:, None] * mult[unit]
        kw = dict(method="bootstrap")
    mat = np.empty((design.n, repw.shape[1] + 1))
    mat[:, 0] = w
    mat[:, 1:] = repw
    cols = tuple(f"repw{i + 1}" for i in range(repw.shape[1]))
    return ReplicateDesign(design.data, weights=None, replicate_weights=cols, mse=mse, _repw=mat,
                           _domain=design.domain, **kw)
