"""Translation catalogs and number formatting (survey.i18n): the three catalogs are complete and
consistent, every key the dashboards use exists, numbers follow the language."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from survey import i18n
from survey.i18n import LANGUAGES, Translator, format_ci, format_number, format_percent, translate

ROOT = Path(__file__).resolve().parents[1]
NNBSP = "\u202f"


def _catalogs():
    return {lang: json.loads((i18n.LOCALES / f"{lang}.json").read_text(encoding="utf-8")) for lang in LANGUAGES}


def test_catalogs_have_the_same_keys_and_placeholders():
    cats = _catalogs()
    keys = set(cats["en"])
    assert len(keys) > 150
    for lang, cat in cats.items():
        assert set(cat) == keys, f"{lang}: missing {sorted(keys - set(cat))[:5]}, extra {sorted(set(cat) - keys)[:5]}"
        for k, text in cat.items():
            assert isinstance(text, str) and text.strip(), f"{lang}:{k} is empty"
            assert i18n.placeholders(text) == i18n.placeholders(cats["en"][k]), f"{lang}:{k} placeholders differ"


def test_french_and_spanish_are_translations_not_copies():
    cats = _catalogs()
    # strings that are legitimately the same in every language (codes, symbols, names of languages)
    same_ok = re.compile(r"^(language\.|measure\.percent|col\.auc|risk\.view\.auc|cell\.flagged|axis\.estimate"
                         r"|value\.rural|indicator\.concentration|measure\.ratio|filter\."
                         r"|report\.word\.list_separator|report\.rule\.preset|report\.fear\.line)")
    for lang in ("fr", "es"):
        copies = [k for k, v in cats[lang].items() if v == cats["en"][k] and not same_ok.match(k)]
        assert len(copies) <= 3, f"{lang}: copied from English: {copies}"
    assert translate("app.overview.title", "fr") != translate("app.overview.title", "en")
    assert translate("word.suppressed", "es") == "suprimido"


def _keys_used_in_source() -> set[str]:
    """Every string literal shaped like a catalog key (namespace.name) in the dashboard code and
    notebooks whose namespace is one of the catalogs' namespaces."""
    namespaces = {k.split(".", 1)[0] for k in _catalogs()["en"]}
    pattern = re.compile(r"^(" + "|".join(sorted(namespaces)) + r")\.[a-z0-9_]+(\.[a-z0-9_]+)*$")
    files = list((ROOT / "src" / "survey" / "dashboard").glob("*.py")) + list((ROOT / "dashboards").glob("*.py"))
    assert files
    used = set()
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and pattern.match(node.value):
                used.add(node.value)
            if isinstance(node, ast.JoinedStr):  # f"risk.view.{x}": the fixed prefix must exist
                head = node.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str) and pattern.match(
                        head.value.rstrip(".").rstrip("_") or "-"):
                    used.add(head.value)
    return used


def test_every_key_used_by_the_dashboards_exists():
    cat = _catalogs()["en"]
    used = _keys_used_in_source()
    assert len(used) > 60, sorted(used)
    fixed = {k for k in used if not k.endswith((".", "_"))}
    prefixes = used - fixed
    assert not sorted(fixed - set(cat)), f"keys used but not in the catalogs: {sorted(fixed - set(cat))}"
    for p in prefixes:
        assert any(k.startswith(p) for k in cat), f"no catalog key starts with {p!r}"


def test_dynamic_keys_cover_the_data_codes():
    """Indicator codes, crime types of the shipped specs, domains and reliability words."""
    import yaml

    from survey.indicators import INDICATORS

    tr = Translator("fr")
    for code in INDICATORS:
        assert i18n.has_key(f"indicator.{code}") and i18n.has_key(f"definition.{code}"), code
    for spec, survey in (("synthetic.yaml", "synthetic"), ("ncvs-2021.yaml", "ncvs")):
        s = yaml.safe_load((ROOT / "specs" / spec).read_text())
        v = s["victimization"]
        names = [t["name"] for t in v["types"]] + [g["name"] if isinstance(g, dict) else g for g in
                                                   (v.get("groups") or {})]
        names += [p["name"] for p in s.get("perception") or []]
        for name in names:
            assert i18n.has_key(f"crime.{survey}.{name}"), f"{spec}: crime type {name}"
        for d in s.get("domains") or {}:
            assert i18n.has_key(f"domain.{d}"), f"{spec}: domain {d}"
    for word in ("high", "moderate", "low", "no sample cases", "not estimable", "reliable", "interpret with caution"):
        assert tr.reliability(word) != word
    # a data value with no translation is shown as it is in the data
    assert tr.value("North West") == "North West"
    assert tr.value("Female") == "Femme"


def test_unknown_language_is_a_clear_error():
    with pytest.raises(i18n.UnknownLanguageError, match="unknown language 'de'.*en, fr, es"):
        Translator("de")
    with pytest.raises(i18n.UnknownLanguageError):
        translate("app.overview.title", "../en")
    with pytest.raises(i18n.MissingKeyError, match="no catalog key"):
        translate("no.such.key", "en")


@pytest.mark.parametrize("lang, expected", [
    ("en", ["1,234.5", "1,234,567.89", "-0.3", "12.3%", "[1.6, 2.7]"]),
    ("fr", [f"1{NNBSP}234,5", f"1{NNBSP}234{NNBSP}567,89", "-0,3", f"12,3{NNBSP}%", f"[1,6{NNBSP}; 2,7]"]),
    ("es", ["1.234,5", "1.234.567,89", "-0,3", f"12,3{NNBSP}%", "[1,6; 2,7]"]),
])
def test_number_formatting_per_language(lang, expected):
    got = [format_number(1234.5, lang, 1), format_number(1234567.891, lang, 2), format_number(-0.3, lang, 1),
           format_percent(12.34, lang, 1), format_ci(1.5957, 2.7039, lang, 1)]
    assert got == expected


def test_formatting_real_indicator_values_and_reasons():
    tr_en, tr_fr, tr_es = Translator("en"), Translator("fr"), Translator("es")
    assert format_number(float("nan"), "fr") == "" and format_number(None, "en") == ""
    assert format_number(-0.04, "en", 1) == "0.0"  # no negative zero
    assert tr_fr.in_measure(140.27, "per 1,000") == "140,3" and tr_en.in_measure(1.2976, "ratio") == "1.30"
    assert tr_es.in_measure(100000.0, "per 1,000", 0) == "100.000"
    assert tr_en.reason("unweighted base below 50", 23) == "unweighted base 23 < 50"
    assert tr_fr.reason("unweighted base below 50") == "base non pondérée inférieure à 50"
    assert tr_es.reason("secondary suppression (protects Male)") == "supresión secundaria (protege Hombre)"
    assert tr_fr.reason("CV above 50%") == f"CV supérieur à 50{NNBSP}%"
    assert tr_es.reason("10 or fewer sample cases") == "10 casos o menos en la muestra"
    assert tr_en.reason("some new reason") == "some new reason"
