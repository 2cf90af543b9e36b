"""Command-line interface: ``survey <command>``.

Errors the workbench raises on purpose (``SurveyError``) become one line on stderr and exit
code 2; outputs are written atomically (temporary folder, then rename).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

import pandas as pd

from ._atomic import (  # noqa: F401  (atomic_write: part of the CLI API)
    MARKER,
    OutputError,
    atomic_write,
    check_target,
    is_ours,
    mark,
    recover,
    replace_dir,
)
from .errors import SurveyError


def _atomic_dir(target: Path, kind: str = "output"):
    """Context manager: write into a temporary sibling folder (with the tool's marker), then
    swap it onto ``target``.  ``target`` must be new, empty or made by the tool with the same
    ``kind`` (:func:`survey._atomic.check_target`); never a published run folder."""
    target = Path(target)

    class _Ctx:
        def __enter__(self):
            check_target(target, kind)
            made_by = _kind_of(target)
            if made_by is not None and made_by != kind:
                raise OutputError(f"{target}: will not replace it with the {kind}: it is a {made_by} folder of "
                                  "this tool (a published run?); choose another folder")
            recover(target.parent, target.name)
            target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
            mark(self.tmp, kind)
            return self.tmp

        def __exit__(self, exc_type, exc, tb):
            if exc_type is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                return False
            replace_dir(self.tmp, target)
            return False

    return _Ctx()


def _kind_of(folder: Path) -> str | None:
    """What the tool made ``folder`` as (its marker's kind), None when not the tool's."""
    import json

    if not is_ours(folder):
        return None
    try:
        return str(json.loads((Path(folder) / MARKER).read_text(encoding="utf-8")).get("kind"))
    except (OSError, ValueError):
        return None


DEMO_DIR = "outputs/_engine-demo"
"""Default folder of ``survey demo`` (never a published run: those are ``outputs/<run>``)."""


def demo(out: Path) -> pd.DataFrame:
    """Design-based estimates on R's ``api`` cluster sample (embedded), written to ``out``."""
    from . import Design

    with resources.files("survey.data").joinpath("apiclus1.csv").open() as fh:
        df = pd.read_csv(fh)
    d = Design(df, weights="pw", psu="dnum", fpc="fpc")
    parts = [
        d.mean(["api00", "api99"]).assign(estimator="mean"),
        d.mean("api00", by="stype").assign(estimator="mean"),
        d.total("enroll").assign(estimator="total"),
        d.ratio("api.stu", "enroll").assign(estimator="ratio"),
        d.proportion("sch.wide", by="stype", ci_method="beta").assign(estimator="proportion"),
        d.quantile("api00", q=[0.25, 0.5, 0.75]).assign(estimator="quantile"),
    ]
    table = pd.concat(parts, ignore_index=True)
    with _atomic_dir(out, "engine demo") as tmp:
        table.to_csv(tmp / "estimates.csv", index=False)
    return table


def validate(spec_path: str) -> int:
    """Read everything a spec declares, check it, and print the row accounting."""
    from .ingest import load
    from .spec import read_spec

    spec = read_spec(spec_path)
    plan = _engine_plan(spec, spec_path)
    if plan is not None and plan.mode == "stream":
        from .stream_indicators import stream_accounting

        acc = stream_accounting(spec, spec_path, chunk_rows=plan.chunk_rows)
        print(f"spec {spec_path}: survey '{spec.survey}' ({spec.title or ''})")
        print(plan.line())
        with pd.option_context("display.width", 160, "display.max_colwidth", 100):
            print(acc.to_string(index=False))
        print("ok: every row is accounted for (streamed: the design is checked batch by batch)")
        return 0
    data = load(spec, spec_path=spec_path)
    acc = data.accounting
    print(f"spec {spec_path}: survey '{data.spec.survey}' ({data.spec.title or ''})")
    if plan is not None:
        if plan.rows is None:  # not Parquet: the size of what was read
            import dataclasses

            from .stream_indicators import used_columns

            rows, cols = len(data.respondents), len(used_columns(spec, list(data.respondents.columns)))
            plan = dataclasses.replace(plan, rows=rows, columns=cols, estimated_bytes=rows * cols * 8)
        print(plan.line())
    with pd.option_context("display.width", 160, "display.max_colwidth", 100):
        print(acc.to_string(index=False))
    design = data.design()
    print(f"design: {design!r}")
    from .areas import check_survey_areas  # the GeoJSON map areas, checked as a run publishes them

    areas = check_survey_areas(data)
    if areas is not None:
        print(f"map areas: {len(areas['features'])} GeoJSON features match their domains' values")
    print("ok: every row is accounted for")
    return 0


def _engine_plan(spec, spec_path):
    """The engine choice of ``survey validate`` (None when the size cannot be read: the load then
    reports what is wrong with the file); an explicit ``mode: stream`` that cannot stream fails."""
    from .stream_indicators import StreamIndicatorError, engine_plan

    try:
        return engine_plan(spec, spec_path)
    except StreamIndicatorError:
        if spec.design.engine.mode == "stream":
            raise
        return None
    except Exception:  # noqa: BLE001 - an unreadable file is the load's to report, in one line
        return None


def codebook_cmd(spec_path: str, out: str) -> int:
    from .codebook import write_codebook
    from .ingest import load

    data = load(spec_path)
    csv_path, html_path = write_codebook(data, out)
    print(f"wrote {csv_path} and {html_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="survey", description="Crime victimization survey workbench")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="design-based estimates on the embedded example data")
    p_demo.add_argument("--out", default=DEMO_DIR, help=f"output folder (default {DEMO_DIR}; a new, empty or "
                        "earlier demo folder)")
    p_val = sub.add_parser("validate", help="read a survey through its spec, check it, print the row accounting")
    p_val.add_argument("spec")
    p_cb = sub.add_parser("codebook", help="write the codebook (HTML and CSV) of a survey spec")
    p_cb.add_argument("spec")
    p_cb.add_argument("--out", default=None, help="output folder (default outputs/codebook/<survey>)")
    sub.add_parser("run", help="run the notebooks of one parameter set with papermill (survey run --help)")
    sub.add_parser("batch", help="run several parameter sets in parallel (survey batch --help)")
    p_syn = sub.add_parser("synth", help="generate the synthetic national survey (with its known truth); "
                                         "--variant screener: a one-respondent screener survey")
    p_syn.add_argument("args", nargs=argparse.REMAINDER,
                       help="--out DIR --households N --seed S [--variant screener [--no-design]] ...")
    p_dash = sub.add_parser("dashboard", help="serve the Voila dashboards on 127.0.0.1 (survey dashboard --help)")
    p_dash.add_argument("args", nargs=argparse.REMAINDER, help="--outputs DIR --port N --host H --token ...")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["run"], ["batch"]):  # papermill runs (survey run --help)
        from .batch import batch_main, run_main

        return (run_main if argv[0] == "run" else batch_main)(argv[1:])
    if argv[:1] == ["synth"]:  # its own options (survey synth --help)
        try:
            from .synth import main as synth_main

            return synth_main(argv[1:])
        except SurveyError as e:
            print(f"survey: error: {e}", file=sys.stderr)
            return 2
    if argv[:1] == ["dashboard"]:  # its own options (survey dashboard --help)
        try:
            from .serve import main as serve_main

            return serve_main(argv[1:])
        except SurveyError as e:
            print(f"survey: error: {e}", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            out = Path(args.out)
            table = demo(out)
            cols = [c for c in ["estimator", "stype", "variable", "level", "estimate", "se", "ci_low", "ci_high",
                                "df", "deff", "n"] if c in table.columns]
            with pd.option_context("display.width", 140, "display.max_columns", 20):
                print(table[cols].to_string(index=False, float_format=lambda x: f"{x:,.4g}"))
            print(f"\nwrote {out / 'estimates.csv'} ({len(table)} rows)")
            return 0
        if args.command == "validate":
            return validate(args.spec)
        if args.command == "codebook":
            from .spec import read_spec

            out = args.out or str(Path("outputs") / "codebook" / read_spec(args.spec).survey)
            return codebook_cmd(args.spec, out)
    except SurveyError as e:
        print(f"survey: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"survey: error: {e.strerror or e}: {getattr(e, 'filename', '') or ''}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("survey: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug: still one line, the traceback on request
        if os.environ.get("SURVEY_DEBUG"):
            raise
        print(f"survey: unexpected error (please report): {e.__class__.__name__}: {e}; "
              "set SURVEY_DEBUG=1 for the traceback", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
