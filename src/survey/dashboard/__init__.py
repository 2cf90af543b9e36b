"""Voilà dashboards for policymakers (issue 7): overview, victimization explorer, fear of crime,
repeat victimization, risk and protective factors.

They read only the published aggregate outputs of batch runs (:mod:`survey.dashboard.data`),
translate every label through :mod:`survey.i18n` and are plain ipywidgets apps
(:mod:`survey.dashboard.apps`); each notebook in ``dashboards/`` is one call::

    from survey.dashboard import show
    app = show("overview", root=OUTPUTS, language=LANGUAGE)

DOM contract (CSS classes, relied on by the browser tests): root box ``svy-dashboard`` and
``svy-dashboard-<name>``; ``svy-title`` (an ``<h2>``); dropdowns ``svy-filter-run``,
``svy-filter-period``, ``svy-filter-crime``, ``svy-filter-indicator``, ``svy-filter-domain``,
``svy-filter-language`` with (label, code) options; ``svy-chart`` (an ``Output`` holding plotly
mime bundles); ``svy-table`` (``<td class="svy-suppressed">`` / ``svy-flagged``);
``svy-download`` (a data: URI CSV of exactly the rows shown, notes first as ``# `` lines, then
a ``<button class="svy-png">`` per chart: the survey-lab template saves that chart as a PNG; the
charts have no plotly mode bar, whose buttons were Tab stops before the content);
``svy-notes``; ``svy-status`` (``<span class="svy-render" data-count="N">``, incremented at
every render); ``svy-filters`` (the box of dropdowns, not printed); ``svy-key-points-box``
(``<section class="svy-key-points">``: the statistically significant findings of the view, in
words, each with its interval); ``svy-chart-text`` (``<p class="svy-chart-caption">``: a text
alternative of each chart).

What the reader sees is reader-facing only: data labels in the reader's language (the run's
``translations.csv``, then the catalogs), no run id, file name or path; flagged cells are
hollow hatched bars with † (tables: † and the reason, with SE, CV and sample cases), hatched map
areas (an SVG pattern fill, with a legend entry); suppressed cells and cells with no sample case
are words (grey map areas without a value), never a 0; the previous wave is a triangle on the
bars (single and crossed breakdowns) pointing the way the estimate moved.  GeoJSON holes stay
unpainted (rings wound against their outer ring, filled with the non-zero rule).  Maps (a spec's tile grid, or its GeoJSON areas
published as ``areas.geojson``) colour from zero, or - the explorer's ``svy-filter-scale`` - on
a diverging scale centred on the national estimate.  Crossed breakdowns ("Female × 16-24") are
grouped bars (a third margin: panels) and a heat table (``svy-extra``, ``table.svy-heat-table``).
"""

from .apps import APPS, Dashboard, FearApp, OverviewApp, RepeatApp, RiskApp, VictimizationApp, build, show
from .data import DashboardInputError, Publication, PublicationError, publication

__all__ = ["APPS", "Dashboard", "DashboardInputError", "FearApp", "OverviewApp", "Publication", "PublicationError",
           "RepeatApp", "RiskApp", "VictimizationApp", "build", "publication", "show"]
