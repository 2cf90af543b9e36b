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

from .errors import SurveyError


def _atomic_dir(target: Path):
    """Context manager: write into a temporary sibling folder, then rename onto ``target``."""

    class _Ctx:
        def __enter__(self):
            target.parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            return self.tmp

        def __exit__(self, exc_type, exc, tb):
            if exc_type is not None:
                shutil.rmtree(self.tmp, ignore_errors=True)
                return False
            old = None
            if target.exists():
                old = target.with_name(f".{target.name}.old.{os.getpid()}")
                os.replace(target, old)
            os.replace(self.tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
            return False

    return _Ctx()


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
    with _atomic_dir(out) as tmp:
        table.to_csv(tmp / "estimates.csv", index=False)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="survey", description="Crime victimization survey workbench")
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="design-based estimates on the embedded example data")
    p_demo.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
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
    except SurveyError as e:
        print(f"survey: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"survey: error: {e.strerror or e}: {getattr(e, 'filename', '')}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
