"""Write the hostile parameter-set corpus (``tests/bad_parameters/<case>.yaml`` and the table
in README.md).  Deterministic: ``tests/test_bad_parameters.py`` checks that the committed files
are what this writes.  Run: ``python tests/bad_parameters/make_corpus.py``.

Every case is the committed demo parameter set (``spec: specs/synthetic.yaml``) with one
hostile change; ``survey run CASE.yaml`` must exit 2 with one ``survey:`` line that contains
the expected text, start no kernel and create nothing."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
BASE = "name: {name}\nspec: specs/synthetic.yaml\nperiod: Synthetic year\npublication: ons\nlanguage: en\nseed: 1\n"

# a small_areas section (one line) over an auxiliary file of the corpus
SA = ("small_areas: {{indicator: prevalence, crime_type: household, area: region, auxiliary: {aux}, "
      "covariates: [{cov}]{extra}}}\n")
REGIONS = ["North", "North West", "North East", "Central", "East", "Capital", "South East", "South West"]


def _areas(ids=REGIONS, bad_row: int | None = None) -> str:
    rows = [f"{a},{9.0 + 0.5 * i:.1f}" if i != bad_row else f"{a},n/a" for i, a in enumerate(ids)]
    return "area,recorded_per_1000\n" + "\n".join(rows) + "\n"


AUX_FILES = {  # auxiliary files the small_areas cases name
    "areas_good.csv": _areas(),
    "areas_text.csv": _areas(bad_row=2),
    "areas_mismatch.csv": _areas(["Nord"] + REGIONS[1:]),
    "areas_duplicate.csv": _areas(REGIONS[:7] + ["North"]),
}

# case: (what replaces or adds to the base, text the one-line message must contain, defect)
CASES: dict[str, tuple[str, str, str]] = {
    "cap_fixed_negative": ("cap_rule: fixed -3\n", "at least 1", "a fixed cap of -3"),
    "cap_fixed_zero": ("cap_rule: fixed 0\n", "at least 1", "a fixed cap of 0"),
    "cap_fixed_dot": ("cap_rule: 'fixed .'\n", "is not a cap rule", "'fixed .': no number"),
    "cap_fixed_nan": ("cap_rule: {rule: fixed, value: .nan}\n", "finite", "a fixed cap of NaN"),
    "cap_fixed_inf": ("cap_rule: {rule: fixed, value: .inf}\n", "finite", "an infinite fixed cap"),
    "cap_value_text": ("cap_rule: {rule: fixed, value: five}\n", "value must be a number", "a cap in words"),
    "cap_percentile_200": ("cap_rule: percentile 200\n", "(0, 100]", "the 200th percentile"),
    "max_cv_nan": ("publication: {preset: bjs, max_cv: .nan}\n", "max_cv", "max_cv NaN"),
    "max_cv_negative": ("publication: {preset: bjs, max_cv: -5}\n", "max_cv", "max_cv -5"),
    "max_cv_inf": ("publication: {preset: bjs, max_cv: .inf}\n", "max_cv", "max_cv infinite"),
    "cv_bands_nan": ("publication: {preset: ons, cv_bands: [.nan, 30]}\n", "cv_bands", "a NaN CV band"),
    "min_base_huge": ("publication: {preset: ons, min_base: 1000000000000}\n", "min_base", "min_base 10^12"),
    "seed_negative": ("seed: -1\n", "seed must be a whole number from 0", "seed -1"),
    "seed_huge": ("seed: 1099511627776\n", "seed must be a whole number from 0", "seed 2^40 (numpy takes < 2^32)"),
    "seed_float": ("seed: 1.5\n", "seed must be a whole number", "seed 1.5"),
    "timeout_nan": ("timeout: .nan\n", "timeout must be a number of seconds", "timeout NaN"),
    "timeout_inf": ("timeout: .inf\n", "timeout must be a number of seconds", "timeout infinite"),
    "timeout_negative": ("timeout: -10\n", "timeout must be a number of seconds", "timeout -10"),
    "timeout_huge": ("timeout: 1.0e+12\n", "timeout must be a number of seconds", "timeout of 30,000 years"),
    "language_unknown": ("language: de\n", "language must be one of", "a language without a catalog"),
    "period_newline": ("period: \"2024\\n=cmd\"\n", "one line", "a period with a newline"),
    "period_formula_long": (f"period: \"={'A' * 300}\"\n", "at most 200", "a 301-character period"),
    "name_traversal": ("name: ../../etc\n", "name must be letters", "a run name climbing out of outputs/"),
    "output_dir_project": ("output_dir: .\n", "will not write the run folder there", "the project itself"),
    "output_dir_data": ("output_dir: data\n", "not made by this tool", "the data folder"),
    "output_dir_root": ("output_dir: /\n", "root of the file system", "the root of the file system"),
    "output_dir_publication_root": ("output_dir: outputs\n", "publication root", "every published run"),
    "unknown_key": ("cap_rul: none\n", "did you mean 'cap_rule'", "a misspelt key"),
    "notebook_unknown": ("notebooks: [ingest, victimisation]\n", "did you mean 'victimization'",
                         "a misspelt notebook"),
    "small_areas_not_mapping": ("small_areas: yes\n", "small_areas must be a mapping", "small_areas: yes"),
    "small_areas_aux_missing": (SA.format(aux="no-such-areas.csv", cov="recorded_per_1000", extra=""),
                                "not found", "an auxiliary file that is not there"),
    "small_areas_covariate_text": (SA.format(aux="areas_text.csv", cov="recorded_per_1000", extra=""),
                                   "not a finite number in 1 of 8 rows (first: row 3)",
                                   "a covariate with 'n/a' in one row"),
    "small_areas_covariate_unknown": (SA.format(aux="areas_good.csv", cov="recorded_per_100", extra=""),
                                      "did you mean 'recorded_per_1000'", "a misspelt covariate"),
    "small_areas_area_mismatch": (SA.format(aux="areas_mismatch.csv", cov="recorded_per_1000", extra=""),
                                  "1 of the 8 values of domain 'region' have no row", "an area id in French"),
    "small_areas_duplicate_area": (SA.format(aux="areas_duplicate.csv", cov="recorded_per_1000", extra=""),
                                   "repeats area 'North'", "an area given twice"),
    "small_areas_method": (SA.format(aux="areas_good.csv", cov="recorded_per_1000", extra=", method: Bayes"),
                           "method must be one of REML, ML", "an unknown model-fitting method"),
    "small_areas_no_table": ("notebooks: [ingest]\n" + SA.format(aux="areas_good.csv", cov="recorded_per_1000",
                                                                  extra=""),
                             "the 'victimization' notebook writes", "small areas without the indicator table"),
    "compare_samples_unknown": ("compare: {data_dir: data/synthetic, period: Year 0, samples: rotating}\n",
                                "samples must be one of auto, independent, overlapping",
                                "waves declared neither independent nor overlapping"),
    # the evaluation section (survey.params.check_evaluation)
    "eval_not_mapping": ("evaluation: [victim, wave]\n", "evaluation must be a mapping", "evaluation as a list"),
    "eval_unknown_key": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, start: 3, '
                         "programe_cost: 1000}\n", "did you mean 'programme_cost'", "a misspelt evaluation key"),
    "eval_start_missing": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region}\n',
                           "missing key 'start'", "no start"),
    "eval_treated_code": ('evaluation: {outcome: "victim:burglary", treated: "__import__(\'os\').system(\'id\')", '
                          "period: region, start: 3}\n", "is not allowed in a condition",
                          "code as the treated condition"),
    "eval_treated_syntax": ('evaluation: {outcome: "victim:burglary", treated: "region ==", period: region, '
                            "start: 3}\n", "evaluation.treated: condition", "an unfinished condition"),
    "eval_outcome_unknown": ('evaluation: {outcome: "victim:burglarly", treated: "region == 1", period: region, '
                             "start: 3}\n", "did you mean 'burglary'", "a misspelt crime type"),
    "eval_period_code": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: "a.b()", '
                         "start: 3}\n", "period must be a column name", "a period that is not a name"),
    "eval_event_study_text": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                              "start: 3, event_study: sometimes}\n", "event_study must be true or false",
                              "event_study in words"),
    "eval_discount_negative": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                               "start: 3, discount_rate: -0.5}\n", "discount_rate must be a number from 0",
                               "a negative discount rate"),
    "eval_discount_nan": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                          "start: 3, discount_rate: .nan}\n", "discount_rate must be a number from 0",
                          "a NaN discount rate"),
    "eval_cost_inf": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, start: 3, '
                      "programme_cost: .inf, exposed: 100, crime_type: burglary_dwelling}\n",
                      "programme_cost must be a finite number", "an infinite programme cost"),
    "eval_cost_negative_year": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                                "start: 3, programme_cost: [100, -5], exposed: 100, crime_type: burglary_dwelling}\n",
                                "programme_cost[1] must be a finite number >= 0", "a negative yearly cost"),
    "eval_years_mismatch": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                            "start: 3, programme_cost: [100, 50], exposed: [10, 10, 10], "
                            "crime_type: burglary_dwelling}\n", "programme_cost has 2 years and exposed 3",
                            "costs and exposure over different years"),
    "eval_crime_type_unknown": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                                "start: 3, programme_cost: 100, exposed: 10, crime_type: burglary}\n",
                                "did you mean 'burglary_dwelling'", "a crime type not in the unit-cost table"),
    "eval_currency_other": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                            "start: 3, programme_cost: 100, exposed: 10, crime_type: burglary_dwelling, "
                            "currency: EUR}\n", "the unit-cost table is in GBP", "costs in another currency"),
    "eval_unit_costs_missing": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                                "start: 3, unit_costs: costs/none.csv}\n", "not found", "a unit-cost file that is "
                                "not there"),
    "eval_effects_unknown": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                             "start: 3, event_study: true, programme_cost: 100, exposed: 10, "
                             "crime_type: burglary_dwelling, effects: event_studies}\n", "did you mean 'event_study'",
                             "a misspelt choice of yearly effects"),
    "eval_effects_years_mismatch": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                                    "start: 3, event_study: true, programme_cost: [100, 50], exposed: 10, "
                                    "crime_type: burglary_dwelling, effects: [3, 4, 4]}\n",
                                    "programme_cost has 2 years and effects 3", "two yearly costs for three "
                                    "yearly effects"),
    "eval_cost_without_exposed": ('evaluation: {outcome: "victim:burglary", treated: "region == 1", period: region, '
                                  "start: 3, programme_cost: 100}\n", "programme_cost needs exposed",
                                  "a cost without the units exposed"),
}


def render(name: str) -> str:
    change, _, _ = CASES[name]
    lines = {ln.split(":", 1)[0]: ln for ln in BASE.format(name=f"bad-{name.replace('_', '-')}").splitlines()}
    for ln in change.splitlines():
        lines[ln.split(":", 1)[0]] = ln
    return f"# hostile parameter set: {CASES[name][2]} (tests/bad_parameters/make_corpus.py)\n" + \
        "\n".join(lines.values()) + "\n"


def readme() -> str:
    rows = "\n".join(f"| `{n}` | {d} | {e} |" for n, (_, e, d) in CASES.items())
    return ("# Hostile parameter sets\n\nGenerated by `make_corpus.py` (deterministic; `tests/test_bad_parameters.py` "
            "checks that\nthe committed files are what it writes). Each `<case>.yaml` is the demo parameter set "
            "with one\nhostile change. `survey run <case>.yaml` must exit 2 with one `survey:` line containing "
            "the\nexpected text, before any kernel starts, and create nothing.\n\n"
            "| case | defect | the message contains |\n| --- | --- | --- |\n" + rows + "\n")


def files() -> dict[str, str]:
    out = {f"{n}.yaml": render(n) for n in CASES}
    out["README.md"] = readme()
    out.update(AUX_FILES)
    return out


if __name__ == "__main__":
    for fname, text in files().items():
        (HERE / fname).write_text(text, encoding="utf-8")
    print(f"wrote {len(CASES)} cases into {HERE}")
