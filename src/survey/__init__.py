"""Crime victimization survey workbench: design-based estimation in the spirit of R ``survey``.

>>> import survey as sv
>>> d = sv.Design(df, weights="pw", strata="stype", fpc="fpc")
>>> d.mean("api00", by="stype")
"""

from .contrast import contrast, difference
from .design import REPLICATE_METHODS, Design, ReplicateDesign
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
from .estimate import CI_METHODS, RESULT_COLUMNS, proportion_ci
from .replicates import as_replicate


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
