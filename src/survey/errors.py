"""Errors raised by the workbench.

Every error is a :class:`SurveyError` whose message names what a statistician needs to act on:
the file (when there is one), the variable and the number of rows concerned.  The CLI turns
them into one line and a non-zero exit code.
"""

from __future__ import annotations


class SurveyError(Exception):
    """Base class of every error the workbench raises on purpose."""


class ColumnNotFoundError(SurveyError, KeyError):
    """A variable named in a design, spec or estimator call is not in the data."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class WeightError(SurveyError, ValueError):
    """Negative, missing, non-numeric or all-zero weights."""


class DesignError(SurveyError, ValueError):
    """Inconsistent design information (missing strata/PSU, PSUs not nested, bad fpc...)."""


class LonelyPSUError(DesignError):
    """A stratum has a single PSU and the lonely-PSU policy is ``fail``."""


class ReplicateWeightError(SurveyError, ValueError):
    """Replicate weight columns not found, or inconsistent with the method."""


class DomainError(SurveyError, ValueError):
    """A domain (``by``) variable is unusable, e.g. only missing values."""


class EstimationError(SurveyError, ValueError):
    """An estimator cannot be computed (empty domain, non-numeric variable...)."""


class SurveyWarning(UserWarning):
    """Something was excluded or adjusted; the count is in the message."""


def column_not_found(name: str, columns, what: str = "data", source: str | None = None) -> ColumnNotFoundError:
    """Build a ColumnNotFoundError with a close-match suggestion."""
    import difflib

    cols = [str(c) for c in columns]
    exact_case = [c for c in cols if c.lower() == str(name).lower()]
    if exact_case:
        close = exact_case[:1]
    else:  # compare case-insensitively, suggest the real spelling
        lower = {c.lower(): c for c in cols}
        close = [lower[m] for m in difflib.get_close_matches(str(name).lower(), list(lower), n=1)]
    hint = f"; did you mean '{close[0]}'?" if close else ""
    where = f" in {source}" if source else ""
    return ColumnNotFoundError(
        f"variable '{name}' ({what}) not found{where} ({len(cols)} columns){hint}"
    )
