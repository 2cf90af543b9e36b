"""The three layers of src/survey import only downward: the engine (designs, variance,
estimators, models) knows nothing of specs or publishing; survey semantics (specs, ingest,
indicators, quality, synthetic data, small areas, evaluation) nothing of publishing; and no
configuration is ever evaluated as code."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "survey"

ENGINE = {"design", "variance", "estimate", "replicates", "weighting", "contrast", "models", "domain_batch", "expr",
          "ordinal", "errors", "_columns", "_atomic", "_safe_csv", "stream"}
SEMANTICS = {"spec", "io", "ingest", "indicators", "quality", "synth", "codebook", "sae", "gvf", "change",
             "evaluation", "cost", "risk", "lorenz", "areas", "stream_indicators"}
PUBLISHING = {"params", "batch", "report", "serve", "i18n", "cli", "dashboard", "_jupyter", "__init__", "tables"}
LAYER = {**{m: 0 for m in ENGINE}, **{m: 1 for m in SEMANTICS}, **{m: 2 for m in PUBLISHING}}


def _modules():
    for p in sorted(SRC.rglob("*.py")):
        yield (p.stem if p.parent == SRC else p.relative_to(SRC).parts[0]), p


def test_every_module_has_a_layer():
    missing = sorted({m for m, _ in _modules()} - set(LAYER))
    assert not missing, f"modules without a layer: {missing} (add them to tests/test_architecture.py)"


def test_imports_only_downward():
    bad = []
    for mod, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
                target = node.module.split(".")[0]
                if node.level == 2 or path.parent != SRC:
                    target = node.module.split(".")[0]
                if target in LAYER and LAYER[target] > LAYER[mod]:
                    bad.append(f"{path.relative_to(SRC)}: imports {target}")
    assert not bad, bad


def test_no_eval_of_configuration():
    """No eval/exec and no pandas eval/query anywhere in the package (conditions go through
    survey.expr)."""
    bad = []
    for _, path in _modules():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                if name in ("eval", "exec", "query") or (isinstance(f, ast.Name) and name == "compile"):
                    bad.append(f"{path.relative_to(SRC)}:{node.lineno}: {name}()")
    assert not bad, bad
