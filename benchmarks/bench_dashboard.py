"""Dashboards in a real browser: time to first chart (cold and preheated) and filter response.

`survey dashboard` serves the five dashboards from a publication root; headless Debian Chromium
(playwright, ``/usr/bin/chromium``) opens them. Measured:

- **first chart, cold**: ``--pool-size 0``, every page load starts a kernel and runs the notebook;
  from ``page.goto`` to the first ``.svy-chart .js-plotly-plot`` drawn.
- **first chart, preheated**: ``--pool-size 1`` (the default), after the pools are filled: the
  notebook already ran in a waiting kernel; same clock. Before each repetition the pool of that
  dashboard is refilled (the server log says so).
- **filter response**: on a loaded page, N changes of a filter that changes the chart (toggling
  between two options), from ``select_option`` to the new plotly figure drawn (a new
  ``.js-plotly-plot`` with its layout, and the render counter ``svy-status`` incremented). Split:
  ``server`` = the same ``app.select`` in this process (the Python work of a re-render in the
  kernel); the rest is widget messages over the websocket and plotly drawing in the browser.

    .venv/bin/python benchmarks/bench_dashboard.py                   # publication made by the batch (~1 min)
    .venv/bin/python benchmarks/bench_dashboard.py --outputs outputs # an existing root (demo + two waves)
    .venv/bin/python benchmarks/bench_dashboard.py --reps 3 --changes 20

Results: printed and written to benchmarks/results/bench_dashboard.json (git-ignored).
Goals (issue 7): < 2 s to the first chart preheated, < 300 ms per filter change.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from survey import serve  # noqa: E402

DASHBOARDS = ("overview", "victimization", "fear", "repeat", "risk")
FILTER_ORDER = ("crime", "indicator", "domain", "period", "run")


def make_publication(base: Path) -> Path:
    """The demo and two-wave parameter sets run by the real batch into ``base/outputs``."""
    import yaml

    from survey.batch import run_batch

    root, sets = base / "outputs", base / "parameters"
    sets.mkdir(parents=True)
    files = []
    for name in ("demo", "synthetic-two-waves"):
        raw = yaml.safe_load((ROOT / "parameters" / f"{name}.yaml").read_text())
        raw["output_dir"] = str(root / raw.get("name", name))
        (sets / f"{name}.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
        files.append(str(sets / f"{name}.yaml"))
    results = run_batch(files, jobs=2, notebook_dir=str(ROOT / "notebooks"), root=str(ROOT), progress=False)
    assert all(r["status"] == "succeeded" for r in results), results
    return root


def pool_fills(srv, name: str) -> int:
    return sum(f"Kernel pool of {name}.ipynb is filled" in line for line in list(srv.lines))


def wait_pool(srv, name: str, at_least: int, timeout: float = 300, settle: float = 0) -> None:
    """Until the pool of ``name`` was filled ``at_least`` times. Voilà logs "filled" when the
    kernel started, before the notebook ran in it: ``settle`` seconds more let it run."""
    deadline = time.monotonic() + timeout
    while pool_fills(srv, name) < at_least:
        if time.monotonic() > deadline:
            raise TimeoutError(f"pool of {name} not refilled")
        time.sleep(0.1)
    time.sleep(settle)


def first_chart(ctx, base: str, name: str) -> tuple[float, object]:
    page = ctx.new_page()
    t0 = time.perf_counter()
    page.goto(base + f"voila/render/{name}.ipynb")
    page.wait_for_selector(f".svy-dashboard-{name} .svy-chart .js-plotly-plot")
    page.wait_for_function(f"() => document.querySelector('.svy-dashboard-{name} .svy-chart .js-plotly-plot')?._fullLayout")
    return time.perf_counter() - t0, page


def pick_toggle(name: str, outputs: Path):
    """A filter and two codes whose charts differ (the in-process app tells)."""
    from survey.dashboard import build

    app = build(name, root=outputs, language="en")
    shown = app.figures[0].to_json()
    for f in FILTER_ORDER:
        w = app.widgets.get(f)
        if w is None or w.disabled or len(w.options) < 2:
            continue
        start = w.value
        for _, code in w.options:
            if code == start:
                continue
            app.select(**{f: code})
            if app.figures and app.figures[0].to_json() != shown:
                return app, f, start, code
            app.select(**{f: start})
    raise RuntimeError(f"{name}: no filter changes the chart")


def filter_changes(page, name: str, outputs: Path, n: int) -> dict:
    from survey.dashboard import build

    twin, f, a, b = pick_toggle(name, outputs)
    labels = dict((code, label) for label, code in twin.widgets[f].options)
    root = f".svy-dashboard-{name}"
    total, to_count, server = [], [], []
    probe = build(name, root=outputs, language="en")
    for i in range(n):
        code = b if i % 2 == 0 else a
        count = int(page.get_attribute(f"{root} .svy-status .svy-render", "data-count"))
        page.evaluate(f"() => {{ const g = document.querySelector('{root} .svy-chart .js-plotly-plot'); if (g) g.__old = 1; }}")
        t0 = time.perf_counter()
        page.select_option(f"{root} .svy-filter-{f} select", label=labels[code])
        page.wait_for_function(
            "([sel, n]) => +document.querySelector(sel + ' .svy-status .svy-render')?.dataset.count > n",
            arg=[root, count], polling="raf")
        t1 = time.perf_counter()
        page.wait_for_function(
            "sel => { const g = document.querySelector(sel + ' .svy-chart .js-plotly-plot'); return g && !g.__old && g._fullLayout; }",
            arg=root, polling="raf")
        t2 = time.perf_counter()
        total.append(t2 - t0)
        to_count.append(t1 - t0)
        s0 = time.perf_counter()
        probe.select(**{f: code})
        server.append(time.perf_counter() - s0)
    return {"filter": f, "codes": [a, b], "changes": n, "median_ms": 1000 * statistics.median(total),
            "p90_ms": 1000 * sorted(total)[int(0.9 * (n - 1))], "median_to_status_ms": 1000 * statistics.median(to_count),
            "median_server_render_ms": 1000 * statistics.median(server), "all_ms": [round(1000 * x, 1) for x in total]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--outputs", help="publication root (default: made by the batch in a temporary folder)")
    ap.add_argument("--reps", type=int, default=3, help="page loads per dashboard and mode (default 3)")
    ap.add_argument("--changes", type=int, default=15, help="filter changes per dashboard (default 15)")
    ap.add_argument("--fill-delay", type=float, default=serve.DEFAULT_FILL_DELAY,
                    help="seconds before Voilà replaces a used preheated kernel (survey dashboard --fill-delay)")
    ap.add_argument("--settle", type=float, default=8.0,
                    help="seconds for a new pool kernel to run its notebook after Voilà logs it (default 8)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_dashboard.json"))
    args = ap.parse_args(argv)
    if not Path(serve.CHROMIUM).exists():
        print(f"no Chromium at {serve.CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    tmp = tempfile.TemporaryDirectory(prefix="bench-dashboard-")
    outputs = Path(args.outputs).resolve() if args.outputs else make_publication(Path(tmp.name))
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "chromium": os.popen(f"{serve.CHROMIUM} --version 2>/dev/null").read().strip()},
              "outputs": str(outputs), "reps": args.reps, "fill_delay_s": args.fill_delay, "dashboards": {}}
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS,
                                                   headless=True, viewport={"width": 1280, "height": 1000})
        ctx.set_default_timeout(180_000)
        # cold: no pool, a kernel per page load
        # closed benchmark pages keep their kernel until --orphan-timeout: lift the per-client cap
        caps = ("--max-kernels", "50", "--max-kernels-per-client", "50")
        with serve.ServerProcess(outputs, "--pool-size", "0", *caps, dashboards=ROOT / "dashboards", timeout=240) as srv:
            first_chart(ctx, srv.base, "overview")[1].close()  # warm the OS file cache and the browser's
            for name in DASHBOARDS:
                times = []
                for _ in range(args.reps):
                    t, page = first_chart(ctx, srv.base, name)
                    page.close()
                    times.append(t)
                    time.sleep(1)  # let the kernel of the closed page shut down
                result["dashboards"].setdefault(name, {})["cold_s"] = [round(x, 3) for x in times]
                print(f"{name:14s} cold       first chart: median {statistics.median(times):.2f} s  {times}", flush=True)
        # preheated: the default server
        with serve.ServerProcess(outputs, "--fill-delay", str(args.fill_delay), *caps, dashboards=ROOT / "dashboards",
                                 timeout=240) as srv:
            for name in DASHBOARDS:
                wait_pool(srv, name, 1)
            time.sleep(args.settle * 2)  # five notebooks ran at once on start
            # one unmeasured page load (as on the cold server): the first page a fresh server
            # serves is slow whichever dashboard it is (browser cache, first websocket), which
            # would otherwise always be charged to the overview; then its pool refills
            fills = pool_fills(srv, "victimization")
            first_chart(ctx, srv.base, "victimization")[1].close()
            wait_pool(srv, "victimization", fills + 1, settle=args.settle)
            for name in DASHBOARDS:
                times = []
                page = None
                for _ in range(args.reps):
                    fills = pool_fills(srv, name)
                    if page is not None:
                        page.close()
                    t, page = first_chart(ctx, srv.base, name)
                    times.append(t)
                    wait_pool(srv, name, fills + 1, settle=args.settle)  # refilled (and run) before the next
                result["dashboards"][name]["preheated_s"] = [round(x, 3) for x in times]
                print(f"{name:14s} preheated  first chart: median {statistics.median(times):.2f} s  {times}", flush=True)
                fc = filter_changes(page, name, outputs, args.changes)
                page.close()
                result["dashboards"][name]["filter"] = fc
                print(f"{name:14s} filter {fc['filter']:9s} median {fc['median_ms']:.0f} ms (p90 {fc['p90_ms']:.0f}; "
                      f"to status {fc['median_to_status_ms']:.0f}; server render {fc['median_server_render_ms']:.0f})",
                      flush=True)
            kernels = len({m for line in srv.lines for m in re.findall(r"Kernel started: (\S+)", line)})
            result["kernels_started_preheated_run"] = kernels
        ctx.close()
    d = result["dashboards"]
    result["summary"] = {
        "cold_median_s": statistics.median(x for v in d.values() for x in v["cold_s"]),
        "preheated_median_s": statistics.median(x for v in d.values() for x in v["preheated_s"]),
        "preheated_max_s": max(x for v in d.values() for x in v["preheated_s"]),
        "filter_median_ms": statistics.median(v["filter"]["median_ms"] for v in d.values()),
        "filter_max_median_ms": max(v["filter"]["median_ms"] for v in d.values()),
    }
    print(json.dumps(result["summary"], indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
