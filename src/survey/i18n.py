"""Translation catalogs and number formatting for the dashboards (English, French, Spanish).

Every label, title, axis name, note, indicator name and definition, unit and reason word shown
by the dashboards comes from a flat JSON catalog per language (``survey/locales/<lang>.json``);
the three catalogs have exactly the same keys and the same ``{placeholders}`` (a test checks).

>>> from survey.i18n import translate, Translator, format_number
>>> translate("app.overview.title", "fr")
'Vue d’ensemble de la criminalité et de la sécurité'
>>> Translator("es").crime("burglary", survey="synthetic")
'Robo en la vivienda'
>>> format_number(1234.5, "fr", 1)
'1\u202f234,5'

Data values that are not in the catalogs (region names of a survey, say) are shown as they
come in the data (the fallback of :meth:`Translator.value` and friends).  An unknown language is
an :class:`UnknownLanguageError`.  Number formatting is done here (no Babel dependency): English
``1,234.5``, French ``1 234,5`` (narrow no-break space, U+202F, and a space before ``%``),
Spanish ``1.234,5``.
"""

from __future__ import annotations

import json
import math
import re
import string
from functools import cache
from pathlib import Path

from .errors import SurveyError

LANGUAGES = ("en", "fr", "es")
"""The languages with a complete catalog, English first (the reference catalog)."""

LOCALES = Path(__file__).parent / "locales"
NNBSP = "\u202f"  # narrow no-break space (French thousands separator and before %)

_SEPARATORS = {  # thousands, decimal, space before % and units, CI separator
    "en": (",", ".", "", ", "),
    "fr": (NNBSP, ",", NNBSP, NNBSP + "; "),
    "es": (".", ",", NNBSP, "; "),
}


class UnknownLanguageError(SurveyError, ValueError):
    """A language with no catalog."""


class MissingKeyError(SurveyError, KeyError):
    """A catalog key that does not exist (a programming error: every key is in every catalog)."""

    def __str__(self) -> str:  # KeyError quotes its argument
        return str(self.args[0])


def check_language(lang) -> str:
    """``lang`` if it is one of :data:`LANGUAGES`, else an :class:`UnknownLanguageError`."""
    if not isinstance(lang, str) or lang not in LANGUAGES:
        shown = lang if isinstance(lang, str) and len(lang) <= 20 else type(lang).__name__
        raise UnknownLanguageError(f"unknown language {shown!r}: the catalogs are {', '.join(LANGUAGES)}")
    return lang


@cache
def catalog(lang: str) -> dict[str, str]:
    """The catalog of one language (read once)."""
    check_language(lang)
    with open(LOCALES / f"{lang}.json", encoding="utf-8") as f:
        return json.load(f)


def placeholders(text: str) -> set[str]:
    """The ``{names}`` a catalog string takes."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def has_key(key: str) -> bool:
    return key in catalog("en")


def translate(key: str, lang: str = "en", **fmt) -> str:
    """The catalog string ``key`` in ``lang``, formatted with ``fmt``."""
    cat = catalog(lang)
    if key not in cat:
        raise MissingKeyError(f"no catalog key {key!r} (language {lang})")
    text = cat[key]
    return text.format(**fmt) if fmt else text


# ---------------------------------------------------------------------------------------------
# numbers
# ---------------------------------------------------------------------------------------------
def _missing(x) -> bool:
    try:
        return x is None or math.isnan(float(x))
    except (TypeError, ValueError):
        return True


def format_number(x, lang: str = "en", decimals: int = 1) -> str:
    """``x`` with ``decimals`` decimals and the language's separators; '' when missing."""
    thousands, decimal, _, _ = _SEPARATORS[check_language(lang)]
    if _missing(x):
        return ""
    x = float(x)
    if math.isinf(x):
        return ("-" if x < 0 else "") + "∞"
    s = f"{abs(x):,.{int(decimals)}f}"
    if float(s.replace(",", "")) == 0:
        x = 0.0  # no "-0.0"
    s = s.replace(",", "\0").replace(".", decimal).replace("\0", thousands)
    return ("-" if x < 0 else "") + s


def format_percent(x, lang: str = "en", decimals: int = 1) -> str:
    """A value already in percent: ``12.3%`` (en), ``12,3 %`` (fr, es; narrow no-break space)."""
    s = format_number(x, lang, decimals)
    return s and s + _SEPARATORS[lang][2] + "%"


def format_ci(low, high, lang: str = "en", decimals: int = 1) -> str:
    """A confidence interval: ``[1.6, 2.7]`` (en), ``[1,6 ; 2,7]`` (fr, narrow no-break space before ;), ``[1,6; 2,7]`` (es)."""
    if _missing(low) or _missing(high):
        return ""
    sep = _SEPARATORS[check_language(lang)][3]
    return f"[{format_number(low, lang, decimals)}{sep}{format_number(high, lang, decimals)}]"


def format_p(p, lang: str = "en") -> str:
    """A p-value: 3 decimals, ``< 0.001`` below."""
    if _missing(p):
        return ""
    if float(p) < 0.001:
        return "< " + format_number(0.001, lang, 3)
    return format_number(p, lang, 3)


def format_measure(x, measure: str, lang: str = "en", decimals: int | None = None) -> str:
    """A value in its measure (``%``, ``per 1,000``, ``ratio``, ``index``)."""
    if measure == "%":
        return format_percent(x, lang, 1 if decimals is None else decimals)
    if measure in ("ratio", "index", "odds ratio"):
        return format_number(x, lang, 2 if decimals is None else decimals)
    return format_number(x, lang, 1 if decimals is None else decimals)


def slug(value) -> str:
    """A catalog key part for a data value: lower case, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", str(value).lower()).strip("_")


MEASURE_KEYS = {"%": "percent", "per 1,000": "per_1000", "ratio": "ratio", "index": "index", "count": "count"}

_REASONS = (  # data text (survey.quality) -> catalog key, placeholders from the match
    (re.compile(r"^unweighted base below (?P<min>\d+)$"), "reason.base_below"),
    (re.compile(r"^secondary suppression \(protects (?P<cell>.+)\)$"), "reason.secondary"),
    (re.compile(r"^(?P<min>\d+) or fewer sample cases$"), "reason.few_cases"),
    (re.compile(r"^CV above (?P<cv>[\d.]+)%$"), "reason.cv_above"),
    (re.compile(r"^no sample case: the SE of 0 is not a measure of precision$"), "reason.no_sample_case"),
    (re.compile(r"^estimate at its bound with SE 0: no interval$"), "reason.at_bound"),
    (re.compile(r"^not estimable: no finite estimate$"), "reason.not_estimable"),
)


class Translator:
    """Translations in one language, with the lookups of data codes the dashboards need."""

    def __init__(self, lang: str = "en"):
        self.lang = check_language(lang)

    def __call__(self, key: str, **fmt) -> str:
        return translate(key, self.lang, **fmt)

    t = __call__

    def get(self, key: str, default: str, **fmt) -> str:
        """``key`` if the catalogs have it, else ``default`` (a label from the data)."""
        cat = catalog(self.lang)
        if key in cat:
            return cat[key].format(**fmt) if fmt else cat[key]
        return default

    # ----- data codes -------------------------------------------------------------------------
    def indicator(self, code: str, default: str | None = None) -> str:
        return self.get(f"indicator.{code}", default or str(code))

    def definition(self, code: str, default: str = "") -> str:
        return self.get(f"definition.{code}", default)

    def crime(self, name: str, default: str | None = None, survey: str | None = None) -> str:
        if survey:
            key = f"crime.{slug(survey)}.{name}"
            if has_key(key):
                return self(key)
        return self.get(f"crime.{name}", default or str(name))

    def domain(self, name: str, default: str | None = None) -> str:
        return self.get(f"domain.{name}", default or str(name))

    def value(self, value, default: str | None = None) -> str:
        """A domain value: translated when the catalogs know it, else as in the data."""
        return self.get(f"value.{slug(value)}", str(value) if default is None else default)

    def measure(self, measure: str) -> str:
        key = MEASURE_KEYS.get(str(measure))
        return self(f"measure.{key}") if key else str(measure)

    def unit(self, unit: str) -> str:
        return self.get(f"unit.{unit}", str(unit))

    def reliability(self, value: str) -> str:
        return self.get(f"reliability.{slug(value)}", str(value)) if value else ""

    def reason(self, text: str, n=None) -> str:
        """A flag or suppression reason of the indicator table, translated (the data text when
        it matches no known pattern).  With ``n`` (the unweighted base), the base is named."""
        text = str(text or "")
        for pattern, key in _REASONS:
            m = pattern.match(text)
            if m:
                g = m.groupdict()
                if key == "reason.base_below" and n is not None and not _missing(n):
                    return self("reason.base_n_below", n=format_number(n, self.lang, 0), min=g["min"])
                if key == "reason.secondary":
                    g["cell"] = self.value(g["cell"])
                if "cv" in g:
                    g["cv"] = format_number(float(g["cv"]), self.lang, 0)
                return self(key, **g)
        return text

    # ----- numbers ----------------------------------------------------------------------------
    def number(self, x, decimals: int = 1) -> str:
        return format_number(x, self.lang, decimals)

    def percent(self, x, decimals: int = 1) -> str:
        return format_percent(x, self.lang, decimals)

    def ci(self, low, high, decimals: int = 1) -> str:
        return format_ci(low, high, self.lang, decimals)

    def in_measure(self, x, measure: str, decimals: int | None = None) -> str:
        return format_measure(x, measure, self.lang, decimals)

    def p(self, p) -> str:
        return format_p(p, self.lang)


def language_options() -> list[tuple[str, str]]:
    """(label, code) pairs for a language dropdown, each language named in itself."""
    return [(translate(f"language.{c}", c), c) for c in LANGUAGES]
