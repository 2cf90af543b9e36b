"""Crime victimization survey workbench: design-based estimation in the spirit of R ``survey``.

>>> import survey as sv
>>> d = sv.Design(df, weights="pw", strata="stype", fpc="fpc")
>>> d.mean("api00", by="stype")

The estimation names (``Design``, ``contrast``, ...) are imported on first use, so that
``import survey.<module>`` (e.g. the dashboards, the command line) does not load scipy.
"""

import sys as _sys
import types as _types

from .errors import (
    ColumnNotFoundError,
    DesignError,
    DomainError,
    EstimationError,
    LonelyPSUError,
    ReplicateWeightError,
    SurveyError,
    SurveyWarning,
    WeightError,
)

_LAZY = {
    "contrast": "contrast", "difference": "contrast",
    "REPLICATE_METHODS": "design", "Design": "design", "ReplicateDesign": "design",
    "CI_METHODS": "estimate", "RESULT_COLUMNS": "estimate", "proportion_ci": "estimate",
    "as_replicate": "replicates",
}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


class _Package(_types.ModuleType):
    """``survey.contrast`` is the function (as with an eager ``from .contrast import contrast``),
    also after the submodule ``survey.contrast`` was imported (the import system then sets the
    package attribute to the module: ignored here)."""

    @property
    def contrast(self):
        from .contrast import contrast

        return contrast

    @contrast.setter
    def contrast(self, value):
        pass


_sys.modules[__name__].__class__ = _Package


def load(spec, **kw):
    """Load a survey through its spec (see ``survey.ingest.load``)."""
    from .ingest import load as _load

    return _load(spec, **kw)

__all__ = [
    "Design", "ReplicateDesign", "as_replicate", "contrast", "difference", "proportion_ci", "load",
    "REPLICATE_METHODS", "CI_METHODS", "RESULT_COLUMNS",
    "SurveyError", "ColumnNotFoundError", "WeightError", "DesignError", "LonelyPSUError",
    "ReplicateWeightError", "DomainError", "EstimationError", "SurveyWarning",
]
__version__ = "0.1.0"
