"""``survey dashboard``: serve the Voilà dashboards (dashboards/*.ipynb) to policymakers.

Voilà runs inside this process with settings chosen for a public-facing service:

- bound to 127.0.0.1 unless ``--host`` says otherwise (with a warning: put a reverse proxy with
  TLS and authentication in front, see deploy/dashboards.md);
- notebook sources stripped, no tracebacks sent to the browser, the template and theme cannot
  be overridden from the URL;
- preheated kernels (a pool per dashboard: the first chart shows without waiting for a kernel
  to start and the notebook to run);
- kernel culling on: a kernel holds ~160 MB, so kernels idle for ``--cull-idle-timeout``
  seconds are shut down, also when a forgotten browser tab is still connected;
- an optional token (``--token`` gives or generates one, or ``$SURVEY_DASHBOARD_TOKEN``; a
  non-loopback host always gets one unless ``--no-token``); it reaches Voilà in memory, never
  on a command line or in the kernels' environment;
- the static-file handler (``/voila/files/``) serves only raster images of the dashboards
  folder, never notebooks, sources or data files;
- a template (``survey-lab``: Voilà's ``lab`` template without its Font Awesome CDN links) so
  the page makes no request to a host other than the server.

Kernels learn the publication root from ``SURVEY_DASHBOARD_OUTPUTS`` and the default language
from ``SURVEY_DASHBOARD_LANGUAGE``; they read only aggregate outputs (survey.dashboard.data).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import secrets
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SurveyError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8866
DEFAULT_POOL_SIZE = 1
DEFAULT_CULL_IDLE_TIMEOUT = 900  # seconds without kernel activity before a kernel is shut down
DEFAULT_CULL_INTERVAL = 60  # seconds between culling passes
# seconds before a used preheated kernel is replaced: the replacement (kernel start + notebook
# run, ~2 CPU-seconds) then does not compete with the page load that took the kernel (2 cores)
DEFAULT_FILL_DELAY = 5.0
TEMPLATE = "survey-lab"
TEMPLATE_ROOT = Path(__file__).resolve().parent / "_jupyter"  # holds voila/templates/survey-lab

# /voila/files/ may serve raster images placed beside the dashboards (a logo), nothing else;
# the deny list repeats the data and source formats in case the allow list is ever widened.
FILE_ALLOWLIST = [r".*\.(png|jpe?g|gif)"]
FILE_DENYLIST = [
    r"(.*/)?\..*",  # hidden files and folders
    r".*\.(ipynb|py|pyc|json|ya?ml|csv|tsv|txt|parquet|feather|xlsx?|sav|zsav|por|dta|sas7bdat|xpt|rds|rdata|pkl|pickle|joblib|db|sqlite)",
]
# JupyterLab extensions the dashboards need in the page (ipywidgets and the plotly renderer);
# others installed in the environment (jupytext...) are not loaded (less JavaScript, and their
# shared-module version mismatches with Voilà's bundled JupyterLab log console errors).
EXTENSION_ALLOWLIST = ["@voila-dashboards/widgets-manager8", "@jupyter-widgets/jupyterlab-manager", "jupyterlab-plotly"]
# what the file tree lists: dashboards only, not their jupytext .py twins or caches
HIDE_GLOBS = ["__pycache__", "*.pyc", "*.pyo", "*.py", ".*", "*~", "*.json", "*.md"]

ENV_OUTPUTS = "SURVEY_DASHBOARD_OUTPUTS"
ENV_LANGUAGE = "SURVEY_DASHBOARD_LANGUAGE"
ENV_TOKEN = "SURVEY_DASHBOARD_TOKEN"


class DashboardError(SurveyError):
    """The dashboards cannot be served (no publication, port taken, bad option...)."""


@dataclass
class ServeConfig:
    dashboards: Path
    outputs: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    language: str = "en"
    token: str | None = None  # None: no token
    pool_size: int = DEFAULT_POOL_SIZE
    fill_delay: float = DEFAULT_FILL_DELAY
    cull_idle_timeout: int = DEFAULT_CULL_IDLE_TIMEOUT
    cull_interval: int = DEFAULT_CULL_INTERVAL
    runs: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{self.port}/{query}"


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------
def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def find_runs(root: Path) -> list[str]:
    """Run folders of a publication root: ``<root>/<run>/manifest.json`` with status succeeded
    and the indicator table beside it (what ``survey run``/``survey batch`` write)."""
    runs = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        manifest = d / "manifest.json"
        if not manifest.is_file():
            continue
        try:
            status = json.loads(manifest.read_text(encoding="utf-8")).get("status")
        except (OSError, ValueError, AttributeError):
            continue
        if status == "succeeded" and ((d / "indicators.parquet").is_file() or (d / "indicators.csv").is_file()):
            runs.append(d.name)
    return runs


def check_publication(outputs: Path) -> list[str]:
    outputs = Path(outputs)
    if not outputs.exists():
        raise DashboardError(
            f"publication root {outputs} does not exist: run `survey run parameters/demo.yaml` "
            "(or `make run`) first, or give --outputs DIR")
    if not outputs.is_dir():
        raise DashboardError(f"publication root {outputs} is not a folder")
    runs = find_runs(outputs)
    if not runs:
        raise DashboardError(
            f"no finished runs in {outputs} (a run is a folder with manifest.json, status succeeded, "
            "and indicators.parquet, written by `survey run`/`survey batch`)")
    return runs


def check_dashboards(folder: Path) -> list[str]:
    folder = Path(folder)
    if not folder.is_dir():
        raise DashboardError(f"dashboards folder {folder} does not exist (give --dashboards DIR)")
    notebooks = sorted(p.name for p in folder.glob("*.ipynb"))
    if not notebooks:
        raise DashboardError(f"no dashboard notebooks (*.ipynb) in {folder}")
    return notebooks


def check_language(lang: str) -> str:
    try:
        from .i18n import LANGUAGES
    except ImportError:  # pragma: no cover - i18n ships with the package
        LANGUAGES = ("en", "fr", "es")
    if lang not in LANGUAGES:
        raise DashboardError(f"language {lang!r} is not available (one of: {', '.join(LANGUAGES)})")
    return lang


def _bind_probe(host: str, port: int) -> int:
    """Bind (host, port) as tornado will (SO_REUSEADDR) and release it; returns the port
    (a free one when ``port`` is 0). One-line errors for a taken port or a bad address."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise DashboardError(f"cannot serve on host {host!r}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise DashboardError(
                    f"port {port} on {host} is already in use (give --port N, or --port 0 for a free one)"
                ) from None
            if e.errno == errno.EACCES:
                raise DashboardError(f"no permission to listen on port {port} of {host} (use a port above 1023)") from None
            raise DashboardError(f"cannot listen on {host}:{port}: {e.strerror}") from None
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# the Voilà command line
# ---------------------------------------------------------------------------------------------
def voila_argv(cfg: ServeConfig) -> list[str]:
    """Voilà's command line for ``cfg`` (the token is not in it: see :func:`voila_env`)."""
    argv = [
        str(cfg.dashboards),
        "--no-browser",
        f"--Voila.ip={cfg.host}",
        f"--Voila.port={cfg.port}",
        "--Voila.port_retries=0",  # never move silently to another port
        f"--VoilaConfiguration.template={TEMPLATE}",
        "--VoilaConfiguration.theme=light",
        "--VoilaConfiguration.allow_template_override=NO",
        "--VoilaConfiguration.allow_theme_override=NO",
        "--VoilaConfiguration.strip_sources=True",
        "--VoilaConfiguration.show_tracebacks=False",
        "--VoilaConfiguration.progressive_rendering=False",
        f"--VoilaConfiguration.preheat_kernel={cfg.pool_size > 0}",
        f"--VoilaConfiguration.default_pool_size={max(cfg.pool_size, 0)}",
        f"--VoilaKernelManager.fill_delay={cfg.fill_delay:g}",
        f"--MappingKernelManager.cull_idle_timeout={cfg.cull_idle_timeout}",
        f"--MappingKernelManager.cull_interval={cfg.cull_interval}",
        "--MappingKernelManager.cull_connected=True",  # a forgotten open tab must not pin 160 MB
        "--MappingKernelManager.cull_busy=False",
    ]
    argv += [f"--VoilaConfiguration.file_allowlist={p}" for p in FILE_ALLOWLIST]
    argv += [f"--VoilaConfiguration.file_denylist={p}" for p in FILE_DENYLIST]
    argv += [f"--VoilaConfiguration.extension_allowlist={x}" for x in EXTENSION_ALLOWLIST]
    argv += [f"--ContentsManager.hide_globs={g}" for g in HIDE_GLOBS]
    return argv  # the token goes in through voila_config(), never on a command line


def voila_config(cfg: ServeConfig):
    """Settings passed to Voilà in memory: the token (not in ``ps`` output, not in the kernels'
    environment). Without a token Voilà's identity provider gets an empty one (no login)."""
    from traitlets.config import Config

    c = Config()
    if cfg.token:
        c.Voila.token = cfg.token
    return c


def voila_env(cfg: ServeConfig, base: dict | None = None) -> dict:
    """Environment of the Voilà process (kernels inherit it)."""
    env = dict(os.environ if base is None else base)
    env[ENV_OUTPUTS] = str(cfg.outputs)
    env[ENV_LANGUAGE] = cfg.language
    paths = [str(TEMPLATE_ROOT)] + [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    env["JUPYTER_PATH"] = os.pathsep.join(paths)
    for name in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE", ENV_TOKEN):  # kernels inherit this environment
        env.pop(name, None)
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # no debugger warning on kernel start
    return env


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {v}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--outputs", default=None,
                   help="publication root holding run folders (default: <project>/outputs)")
    p.add_argument("--dashboards", default=None, help="folder of dashboard notebooks (default: <project>/dashboards)")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on (default 127.0.0.1; anything else prints a warning)")
    p.add_argument("--port", type=_positive_int, default=DEFAULT_PORT, help="port (default 8866; 0 picks a free one)")
    p.add_argument("--language", default=None, help="default language of the dashboards: en, fr or es")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token", nargs="?", const="", default=None,
                     help="require this token (without a value: generate one; or set $SURVEY_DASHBOARD_TOKEN); "
                          "default: no token on loopback, a generated one otherwise")
    tok.add_argument("--no-token", action="store_true",
                     help="no token even on a non-loopback host (only behind an authenticating proxy)")
    p.add_argument("--pool-size", type=_positive_int, default=DEFAULT_POOL_SIZE,
                   help="preheated kernels kept ready per dashboard (default 1; 0 disables preheating)")
    p.add_argument("--fill-delay", type=float, default=DEFAULT_FILL_DELAY,
                   help="seconds before a used preheated kernel is replaced (default 5)")
    p.add_argument("--cull-idle-timeout", type=_positive_int, default=DEFAULT_CULL_IDLE_TIMEOUT,
                   help="shut down kernels idle for this many seconds (default 900)")
    p.add_argument("--cull-interval", type=_positive_int, default=DEFAULT_CULL_INTERVAL,
                   help="seconds between culling passes (default 60)")
    p.add_argument("--dry-run", action="store_true", help="check everything, print the Voilà command line, exit")


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    from .params import project_root

    root = project_root()
    outputs = Path(args.outputs).expanduser() if args.outputs else root / "outputs"
    outputs = outputs.resolve()
    dashboards = (Path(args.dashboards).expanduser() if args.dashboards else root / "dashboards").resolve()
    language = check_language(args.language or os.environ.get(ENV_LANGUAGE) or "en")
    if args.cull_idle_timeout < 1 or args.cull_interval < 1:  # 0 would switch culling off
        raise DashboardError("--cull-idle-timeout and --cull-interval must be at least 1 s (culling stays on)")
    runs = check_publication(outputs)
    check_dashboards(dashboards)
    if args.token is None and os.environ.get(ENV_TOKEN) and not args.no_token:
        args.token = os.environ[ENV_TOKEN]  # e.g. from a systemd EnvironmentFile, not visible in `ps`
    if args.token is not None:
        token = args.token or secrets.token_urlsafe(24)
    elif args.no_token or is_loopback(args.host):
        token = None
    else:
        token = secrets.token_urlsafe(24)
    port = _bind_probe(args.host, args.port)
    return ServeConfig(dashboards=dashboards, outputs=outputs, host=args.host, port=port, language=language,
                       token=token, pool_size=args.pool_size, fill_delay=max(args.fill_delay, 0.0),
                       cull_idle_timeout=args.cull_idle_timeout,
                       cull_interval=args.cull_interval, runs=runs)


def serve(cfg: ServeConfig, dry_run: bool = False) -> int:
    argv = voila_argv(cfg)
    if not is_loopback(cfg.host):
        print(f"survey: warning: listening on {cfg.host}, not loopback: anyone who reaches this address can "
              "open the dashboards; put a reverse proxy with TLS and authentication in front "
              "(deploy/dashboards.md)" + ("" if cfg.token else " - and there is NO token"), file=sys.stderr)
    if dry_run:
        print(f"dashboards: {cfg.url}")
        print("voila " + " ".join(argv))
        return 0
    os.environ.clear()
    os.environ.update(voila_env(cfg))
    print(f"serving {len(cfg.runs)} run(s) from {cfg.outputs} ({', '.join(cfg.runs)}), language {cfg.language}",
          flush=True)
    print(f"dashboards: {cfg.url}   (Ctrl-C stops)", flush=True)
    from voila.app import Voila

    try:
        Voila.launch_instance(argv=argv, config=voila_config(cfg))
    except KeyboardInterrupt:
        pass
    except SystemExit as e:  # Voilà exits 1 when it cannot listen (port taken since the check)
        if e.code not in (0, None):
            raise DashboardError(f"Voilà could not start on {cfg.host}:{cfg.port} (see its log above)") from None
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="survey dashboard", description="Serve the Voilà dashboards")
    add_arguments(p)
    args = p.parse_args(argv)
    return serve(config_from_args(args), dry_run=args.dry_run)


# ---------------------------------------------------------------------------------------------
# a server in a child process: browser tests, the benchmark, smoke checks
# ---------------------------------------------------------------------------------------------
# Headless Debian Chromium (no browser download): flags that keep it from calling home.
CHROMIUM = os.environ.get("SURVEY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-extensions", "--metrics-recording-only",
                 "--no-default-browser-check", "--disable-features=Translate,OptimizationHints,MediaRouter"]


class ServerProcess:
    """``survey dashboard --port 0 ...`` as a child process; ``url`` once it answers.

    >>> with ServerProcess(outputs) as srv:   # doctest: +SKIP
    ...     urllib.request.urlopen(srv.url)
    """

    def __init__(self, outputs: Path, *extra: str, dashboards: Path | None = None, timeout: float = 180,
                 log_path: Path | None = None, env: dict | None = None):
        self.outputs, self.extra, self.dashboards = Path(outputs), list(extra), dashboards
        self.timeout, self.log_path, self.env = timeout, log_path, env
        self.lines: list[str] = []
        self.url: str | None = None
        self.proc = None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "survey.cli", "dashboard", "--outputs", str(self.outputs)]
        if self.dashboards is not None:
            cmd += ["--dashboards", str(self.dashboards)]
        if "--port" not in self.extra:
            cmd += ["--port", "0"]
        return cmd + self.extra

    def start(self) -> str:
        import subprocess
        import threading
        import time
        import urllib.request

        env = dict(os.environ if self.env is None else self.env)
        env["PYTHONUNBUFFERED"] = "1"
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env, start_new_session=True)
        log = open(self.log_path, "w", encoding="utf-8") if self.log_path else None

        def pump():
            for line in self.proc.stdout:
                self.lines.append(line)
                if log:
                    log.write(line)
                    log.flush()
            if log:
                log.close()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + self.timeout
        while self.url is None:
            for line in list(self.lines):
                if line.startswith("dashboards: "):
                    self.url = line.split()[1]
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise DashboardError("survey dashboard exited with code "
                                     f"{self.proc.returncode}: {''.join(self.lines).strip()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise DashboardError(f"survey dashboard printed no URL within {self.timeout:.0f} s")
            time.sleep(0.1)
        while True:  # until the server answers
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    if r.status == 200:
                        return self.url
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise DashboardError(f"Voilà did not answer at {self.url}: {''.join(self.lines).strip()[-2000:]}")
            time.sleep(0.2)

    @property
    def base(self) -> str:
        """The URL without the token query."""
        return self.url.split("?", 1)[0] if self.url else ""

    def stop(self) -> None:
        import subprocess

        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # Voilà stops its loop and shuts its kernels down
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)  # the process group of our own child only
            self.proc.wait(10)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
