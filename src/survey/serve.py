"""``survey dashboard``: serve the Voilà dashboards (dashboards/*.ipynb) to policymakers.

Voilà runs inside this process (``SurveyVoila``, a subclass) with settings chosen for a
public-facing service:

- bound to 127.0.0.1 unless ``--host`` says otherwise (with a warning: put a reverse proxy with
  TLS and authentication in front, see deploy/dashboards.md); only requests whose Host header is
  a loopback name, the ``--host`` address or an ``--allow-host`` name are answered (400 for any
  other: no DNS rebinding against the token-less loopback server);
- notebook sources stripped, no tracebacks sent to the browser (notebook cells, widget
  callbacks, comm handlers: the kernel launcher sends one generic line and logs the details),
  the template and theme cannot be overridden from the URL; every error answer is one line, a
  malformed path a 4xx (never a 500 with a traceback in the log); the request log scrubs tokens;
- kernel caps: at most ``--max-kernels`` page kernels, ``--max-kernels-per-client`` per client
  address (X-Real-IP from a loopback proxy); beyond them a 503 "busy, try again" page in the
  reader's language;
- a page's kernel ends when its tab closes (the page gets the ``_xsrf`` cookie that its
  ``beforeunload`` beacon needs) or when no browser has been connected to it for
  ``--orphan-timeout`` seconds (a lost beacon, a page fetched by a script);
- preheated kernels (a pool per dashboard: the first chart shows without waiting for a kernel
  to start and the notebook to run); never culled in the pool, and the idle time of a pooled
  kernel starts again when a visitor takes it;
- kernel culling on: kernels idle for ``--cull-idle-timeout`` seconds are shut down, also when a
  forgotten browser tab is still connected; the page then shows a "session expired, reload"
  banner (survey-lab template); a kernel that dies is not restarted empty;
- per-kernel limits (kernel spec ``_jupyter/kernels/python3``, launcher ``launch.py``): address
  space ``--kernel-memory-mb`` (RLIMIT_AS) and ``--max-comms`` comms opened by the browser;
- an optional token (``--token`` gives or generates one, or ``$SURVEY_DASHBOARD_TOKEN``; a
  non-loopback host always gets one unless ``--no-token``); it reaches Voilà in memory, never
  on a command line or in the kernels' environment (Voilà's VOILA_REQUEST_URL/QUERY_STRING are
  scrubbed); ``/voila/query/<kernel id>`` (unauthenticated, answered with the page's query
  string) is not served;
- the static-file handler (``/voila/files/``) serves only raster images of the dashboards
  folder, never notebooks, sources or data files;
- a template (``survey-lab``: Voilà's ``lab`` template without its Font Awesome CDN links) so
  the page makes no request to a host other than the server; it gives keyboard focus a visible
  outline, links back to the landing page and takes the language from ``?lang=``; the page's
  ``<title>`` and ``<html lang>`` are in that language (else ``--language``) from the first byte,
  before the widgets render (the dashboard's ``app.<name>.title``, not the notebook's English
  metadata title);
- reader-facing pages (``_jupyter/pages``) in the reader's language (``?lang=``, else
  Accept-Language, else ``--language``): the landing page at ``/`` (the dashboards, the published
  runs and their periods, a language switcher; no file name, run id or path) instead of Voilà's
  file tree, and with a token the access-code page at ``/login`` ("an access code from
  ``--publisher``") instead of Jupyter's login page.

Kernels learn the publication root from ``SURVEY_DASHBOARD_OUTPUTS`` and the default language
from ``SURVEY_DASHBOARD_LANGUAGE``; they read only aggregate outputs (survey.dashboard.data).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import re
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
# live kernels serving pages (a kernel holds ~270 MB): beyond these a visitor gets a 503 "busy"
# page instead of a new kernel; preheated kernels (pool size x dashboards) come on top
DEFAULT_MAX_KERNELS = 8
DEFAULT_MAX_KERNELS_PER_CLIENT = 5
# a page's kernel is shut down when no browser has been connected to it for this long (the tab
# was closed, or the page was fetched by something that runs no JavaScript)
DEFAULT_ORPHAN_TIMEOUT = 60
# per-kernel limits: address space (RLIMIT_AS; a dashboard kernel uses ~0.65 GB of address space
# for ~0.2 GB resident, see voila_env) and comms a browser may open in its kernel (a page opens 1-2)
DEFAULT_KERNEL_MEMORY_MB = 1536
DEFAULT_MAX_CLIENT_COMMS = 32
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
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
ENV_KERNEL_MEMORY = "SURVEY_KERNEL_MEMORY_MB"  # read (and removed) by _jupyter/kernels/python3/launch.py
ENV_KERNEL_COMMS = "SURVEY_KERNEL_MAX_COMMS"


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
    max_kernels: int = DEFAULT_MAX_KERNELS
    max_kernels_per_client: int = DEFAULT_MAX_KERNELS_PER_CLIENT
    orphan_timeout: float = DEFAULT_ORPHAN_TIMEOUT
    kernel_memory_mb: int = DEFAULT_KERNEL_MEMORY_MB
    max_client_comms: int = DEFAULT_MAX_CLIENT_COMMS
    allow_hosts: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    publisher: str = ""  # who gives readers the access code (landing and access-code pages)

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
        "--MappingKernelManager.cull_connected=True",  # a forgotten open tab must not pin ~270 MB
        "--MappingKernelManager.cull_busy=False",
        # a kernel that dies is not restarted: its page lost its state anyway (the page shows
        # "session expired"), and a preheated one is replaced (SurveyVoila)
        "--KernelRestarter.restart_limit=0",
        f"--SurveyVoila.max_kernels={cfg.max_kernels}",
        f"--SurveyVoila.max_kernels_per_client={cfg.max_kernels_per_client}",
        f"--SurveyVoila.orphan_timeout={cfg.orphan_timeout:g}",
        f"--SurveyVoila.language={cfg.language}",
        f"--SurveyVoila.outputs={cfg.outputs}",
    ]
    if cfg.publisher:
        argv.append(f"--SurveyVoila.publisher={cfg.publisher}")
    argv += [f"--SurveyVoila.allow_hosts={h}" for h in allowed_hosts(cfg)]
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
    env[ENV_KERNEL_MEMORY] = str(cfg.kernel_memory_mb)
    env[ENV_KERNEL_COMMS] = str(cfg.max_client_comms)
    env.setdefault("MALLOC_ARENA_MAX", "2")  # fewer 64 MB malloc arenas reserved per thread
    # pyarrow's default pool (mimalloc) reserves ~1 GB of address space in every kernel that
    # reads a parquet file; the system allocator keeps a dashboard kernel at ~0.65 GB of address
    # space (~0.2 GB resident), well under --kernel-memory-mb
    env.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    return env


def allowed_hosts(cfg: ServeConfig) -> list[str]:
    """Host names the server answers to (the Host header, without port): the loopback names,
    the listening address when it is a specific one, and ``--allow-host`` names (the proxy's
    public name). Any other Host header gets 400: a page on another site that rebinds its DNS
    name to 127.0.0.1 cannot talk to the server."""
    hosts = list(LOOPBACK_NAMES)
    h = cfg.host.strip("[]").lower()
    h = f"[{h}]" if ":" in h else h
    if h not in ("0.0.0.0", "[::]", "") and h not in hosts:
        hosts.append(h)
    for name in cfg.allow_hosts:
        name = name.strip().lower()
        if name and name not in hosts:
            hosts.append(name)
    return hosts


# ---------------------------------------------------------------------------------------------
# inside the Voilà process: kernel caps, tab close, culling, routes, Host header
# ---------------------------------------------------------------------------------------------
# (title, too many visitors, too many pages of this client, button)
BUSY_TEXT = {
    "en": ("The dashboards are busy",
           "Too many people are using the dashboards right now. Please try again in a minute.",
           "You have too many dashboard pages open. Close one of them and try again.", "Try again"),
    "fr": ("Les tableaux de bord sont très sollicités",
           "Trop de personnes consultent les tableaux de bord en ce moment. Veuillez réessayer dans une minute.",
           "Vous avez trop de pages de tableaux de bord ouvertes. Fermez-en une et réessayez.", "Réessayer"),
    "es": ("Los tableros están ocupados",
           "Demasiadas personas están usando los tableros en este momento. Vuelva a intentarlo en un minuto.",
           "Tiene demasiadas páginas de tableros abiertas. Cierre una e inténtelo de nuevo.", "Reintentar"),
}
BUSY_RETRY_AFTER = 30  # seconds, in the Retry-After header of the 503 page


def client_address(remote_ip: str, real_ip: str | None) -> str:
    """Who a page load counts against: the peer address, or the X-Real-IP header when the peer
    is a proxy on loopback (nginx sets it, see deploy/dashboards.md)."""
    real = (real_ip or "").strip()
    if real and is_loopback(remote_ip or ""):
        return real
    return remote_ip or ""


def pick_language(accept_language: str | None, default: str) -> str:
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in BUSY_TEXT:
            return code
    return default if default in BUSY_TEXT else "en"


def busy_page(reason: str, lang: str) -> str:
    import html

    title, total, client, button = BUSY_TEXT.get(lang, BUSY_TEXT["en"])
    text = client if reason == "client" else total
    return (f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"></head>'
            '<body style="font-family:sans-serif;max-width:40em;margin:4em auto;padding:0 1em">'
            f'<h1>{html.escape(title)}</h1><p class="svy-busy" data-reason="{reason}">{html.escape(text)}</p>'
            f'<p><a href="">{html.escape(button)}</a></p></body></html>\n')


# ---------------------------------------------------------------------------------------------
# reader-facing pages: the landing page (replaces Voilà's file tree) and the access-code page
# ---------------------------------------------------------------------------------------------
PAGES = TEMPLATE_ROOT / "pages"  # _base.html, landing.html, login.html (jinja, autoescaped)
# dashboards in this order on the landing page, any other notebook after them by name
DASHBOARD_ORDER = ("overview", "victimization", "fear", "repeat", "risk", "local")
_DASHBOARD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def reader_language(requested: str | None, accept_language: str | None, default: str) -> str:
    """The language of a reader-facing page: ``?lang=`` when it is exactly one of en, fr, es
    (anything else is ignored, never echoed), else the browser's Accept-Language, else the
    server's ``--language``."""
    from .i18n import LANGUAGES

    if isinstance(requested, str) and requested in LANGUAGES:
        return requested
    return pick_language(accept_language, default)


HEAD_HOLD = 64_000  # characters of a dashboard page held back at most while its <title> is looked for
_HTML_LANG = re.compile(r'<html(\s[^>]*?)?\slang="[^"]*"', re.I)
_TITLE = re.compile(r"<title>.*?</title>", re.I | re.S)


def dashboard_page_language(requested: str | None, default: str) -> str:
    """The language a dashboard page opens in: ``?lang=`` when it is exactly one of en, fr, es,
    else the server's ``--language`` (the language the dashboard's widgets start in: the
    survey-lab template switches them to ``?lang=``, nothing else)."""
    from .i18n import LANGUAGES

    if isinstance(requested, str) and requested in LANGUAGES:
        return requested
    return default if default in LANGUAGES else "en"


def localize_page_head(text: str, lang: str, notebook: str) -> tuple[str, bool]:
    """A dashboard page's head in ``lang`` from its first byte: ``<html lang>`` and ``<title>``
    (Voilà writes the notebook's metadata title, in English, and the document's language of its
    template) replaced by the language and the dashboard's title in it (``app.<name>.title``;
    a notebook without one keeps its title).  Returns the text and whether a title was found
    (the page handler rewrites the chunks it sends until then)."""
    import html

    from .i18n import Translator

    found = _TITLE.search(text)
    if not found:
        return text, False
    head, rest = text[:found.end()], text[found.end():]
    head = _HTML_LANG.sub(lambda m: f'<html{m.group(1) or ""} lang="{lang}"', head, count=1)
    name = Path(notebook or "").stem
    title = Translator(lang).get(f"app.{name}.title", "") if _DASHBOARD_NAME.fullmatch(name or "") else ""
    if title:
        head = _TITLE.sub(lambda m: f"<title>{html.escape(title)}</title>", head, count=1)
    return head + rest, True


def _page_env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(PAGES)), autoescape=True,
                              undefined=jinja2.StrictUndefined)


def _language_links(lang: str, query: dict | None = None) -> list[dict]:
    from urllib.parse import urlencode

    from .i18n import LANGUAGES, translate

    return [{"code": c, "name": translate(f"language.{c}", c), "current": c == lang,
             "href": "?" + urlencode({**(query or {}), "lang": c})} for c in LANGUAGES]


def _read_json(path: Path) -> dict:
    try:
        out = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def _run_translations(run_dir: Path) -> dict:
    """(kind, name, language) -> text of a run's translations.csv (the spec's labels)."""
    import csv

    out: dict = {}
    try:
        with open(run_dir / "translations.csv", encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                if not (row.get("value") or ""):
                    out[(row.get("kind") or "", row.get("name") or "", row.get("language") or "")] = row.get("text") or ""
    except (OSError, csv.Error, UnicodeDecodeError):
        pass
    return out


def dashboard_entries(folder: Path, lang: str, base_url: str = "/") -> list[dict]:
    """The dashboards of ``folder`` as the landing page lists them: title (``app.<name>.title``),
    one-line description (``landing.dashboard.<name>``) in ``lang`` and the link (with
    ``?lang=``: the survey-lab template sets the dashboard's language dropdown from it)."""
    from urllib.parse import quote

    from .i18n import Translator

    tr = Translator(lang)
    names = [p.stem for p in Path(folder).glob("*.ipynb") if _DASHBOARD_NAME.fullmatch(p.stem)]
    names.sort(key=lambda n: (DASHBOARD_ORDER.index(n) if n in DASHBOARD_ORDER else len(DASHBOARD_ORDER), n))
    return [{"name": n, "title": tr.get(f"app.{n}.title", "") or n.replace("_", " ").replace("-", " ").capitalize(),
             "description": tr.get(f"landing.dashboard.{n}", ""),
             "href": f"{base_url}voila/render/{quote(n)}.ipynb?lang={lang}"} for n in names]


def run_entries(outputs: Path, lang: str) -> list[dict]:
    """The published runs as the landing page lists them, never by their folder name: a heading
    (the run's description in ``lang``: ``description_<lang>``, else its ``description`` marked
    as English, else the survey's title) and lines naming the survey, the reference period, the
    wave compared with and the publication date (translated from the run's translations.csv
    and the catalogs)."""
    from .i18n import Translator, slug

    tr = Translator(lang)
    out = []
    try:
        runs = find_runs(Path(outputs))
    except OSError:
        runs = []
    for name in runs:
        run_dir = Path(outputs) / name
        mf = _read_json(run_dir / "manifest.json")
        spec = mf.get("spec") if isinstance(mf.get("spec"), dict) else {}
        params = mf.get("parameters") if isinstance(mf.get("parameters"), dict) else {}
        resolved = params.get("resolved") if isinstance(params.get("resolved"), dict) else {}
        labels = _run_translations(run_dir)

        def label(kind, key, default, labels=labels):
            return labels.get((kind, str(key), lang)) or (
                tr.get(f"period.{slug(key)}", default) if kind == "period" else default)

        title = label("title", spec.get("survey") or "", str(spec.get("title") or ""))
        period = str(resolved.get("period") or spec.get("period") or "")
        compare = resolved.get("compare") if isinstance(resolved.get("compare"), dict) else {}
        desc, desc_lang = mf.get(f"description_{lang}") or resolved.get(f"description_{lang}"), None
        if not (isinstance(desc, str) and desc.strip()):
            desc = mf.get("description")
            if isinstance(desc, dict):
                desc = desc.get(lang) or ""
            elif lang != "en" and isinstance(desc, str) and desc.strip():
                desc_lang = "en"  # the only description there is: shown, marked as English
        desc = str(desc or "").strip()
        heading = desc or title or label("period", period, period)
        lines = []
        if title and heading != title:
            lines.append(tr("landing.survey", title=title))
        if period:
            lines.append(tr("landing.period", period=label("period", period, period)))
        if compare.get("period"):
            lines.append(tr("landing.compared", period=label("period", compare["period"], str(compare["period"]))))
        finished = str(mf.get("finished") or "")[:10]
        if _ISO_DATE.fullmatch(finished):
            lines.append(tr("landing.published", date=finished))
        if heading:
            out.append({"heading": heading, "heading_lang": desc_lang if heading == desc else None, "lines": lines,
                        "period": label("period", period, period) if period else ""})
    return out


def landing_page(dashboards: Path, outputs: Path, lang: str, base_url: str = "/", publisher: str = "") -> str:
    """The landing page of the dashboard site in ``lang`` (en, fr, es): the dashboards with
    their titles and descriptions, the publications they show and their periods, a language
    switcher; no file name, run id, path or server detail."""
    from .i18n import Translator, check_language

    tr = Translator(check_language(lang))
    runs = run_entries(outputs, lang)
    periods = list(dict.fromkeys(r["period"] for r in runs if r["period"]))
    t = {k: tr(f"landing.{k}") for k in ("title", "intro", "dashboards", "publications", "publications_intro",
                                             "none", "margin")}
    return _page_env().get_template("landing.html").render(
        lang=lang, t=t, skip=tr("landing.skip"), site=publisher, language_label=tr("landing.language"),
        languages=_language_links(lang), dashboards=dashboard_entries(dashboards, lang, base_url), runs=runs,
        periods=tr("landing.periods", periods=", ".join(periods)) if periods else "",
        publisher_line=tr("landing.publisher", publisher=publisher) if publisher else "")


def login_context(lang: str, publisher: str = "", base_url: str = "/", next_url: str | None = None,
                  error: bool = False) -> dict:
    """What login.html needs besides the handler's own namespace (xsrf_form_html)."""
    from urllib.parse import urlencode

    from .i18n import Translator, check_language

    tr = Translator(check_language(lang))
    nxt = next_url or base_url
    t = {k: tr(f"login.{k}") for k in ("title", "hint", "label", "submit", "error")}
    t["intro"] = tr("login.intro_publisher", publisher=publisher) if publisher else tr("login.intro")
    return dict(lang=lang, t=t, skip=tr("login.skip"), site=publisher, language_label=tr("landing.language"),
                languages=_language_links(lang, {"next": nxt}), error=bool(error),
                action=f"{base_url}login?" + urlencode({"next": nxt}),
                publisher_line=tr("landing.publisher", publisher=publisher) if publisher else "")


def login_page(lang: str, publisher: str = "", base_url: str = "/", next_url: str | None = None,
               error: bool = False, xsrf_form_html=lambda: "") -> str:
    """The access-code page as the server renders it (tests; the server renders login.html
    through jupyter_server's login handler with the same context)."""
    return _page_env().get_template("login.html").render(
        xsrf_form_html=xsrf_form_html, **login_context(lang, publisher, base_url, next_url, error))


def strip_token(value: str) -> str:
    """``value`` (a URL or a query string) without its ``token=`` parameter."""
    if "token=" not in value.lower():
        return value
    prefix, mark, query = value.partition("?") if "?" in value else ("", "", value)
    kept = [p for p in re.split(r"[&;]", query) if p and p.split("=", 1)[0].lower() != "token"]
    query = "&".join(kept)
    return prefix + (mark + query if query else "") if mark else query


def scrub_kernel_env(env: dict) -> dict:
    """A kernel's environment without the token: no token variables, and the request URL and
    query string Voilà passes (VOILA_REQUEST_URL, QUERY_STRING) without ``token=``."""
    out = {}
    for k, v in env.items():
        if k.upper() in ("JUPYTER_TOKEN", "JUPYTER_TOKEN_FILE", ENV_TOKEN):
            continue
        out[k] = strip_token(v) if isinstance(v, str) and "token=" in v.lower() else v
    return out


_VOILA_CLASS = None


def survey_voila_class():
    """Voilà's application with this project's hardening (built on first use: importing Voilà
    takes a second, the CLI does not need it for --help or --dry-run)."""
    global _VOILA_CLASS
    if _VOILA_CLASS is None:
        _VOILA_CLASS = _make_survey_voila()
    return _VOILA_CLASS


def _make_survey_voila():  # noqa: C901 - one closure keeps the Voilà imports lazy
    import asyncio
    import contextvars
    import tempfile
    import time
    from collections import Counter

    import tornado.web
    import voila.app as voila_app
    from jupyter_server._tz import utcnow
    from jupyter_server.auth.login import LoginFormHandler
    from jupyter_server.base.handlers import APIHandler
    from jupyter_server.log import log_request
    from traitlets import Float, Int, List, Unicode, default
    from voila.request_info_handler import RequestInfoSocketHandler
    from voila.static_file_handler import TemplateStaticFileHandler
    from voila.tornado.contentshandler import VoilaContentsHandler
    from voila.tornado.handler import TornadoVoilaHandler
    from voila.tornado.treehandler import TornadoVoilaTreeHandler

    # the page load being served (a mutable holder: {"client": address, "pending": bool})
    page_load = contextvars.ContextVar("survey_page_load", default=None)

    # /voila/query/<kernel id> is not served (below); Voilà would still keep every page's
    # query string (token included) in a class-level cache that nothing reads: keep nothing
    RequestInfoSocketHandler.send_updates = classmethod(lambda cls, msg: None)

    def harden_kernel_manager(base, app):
        class SurveyKernelManager(base):
            """Voilà's kernel manager with page kernels counted per client, shut down when no
            browser is connected, and the idle time of a preheated kernel forgotten when a
            visitor takes it."""

            def __init__(self, **kwargs):
                self.survey_owner: dict[str, str] = {}  # kernel id -> client, kernels serving pages
                self.survey_pending: Counter = Counter()  # client -> admitted page loads without a kernel yet
                self.survey_unconnected_since: dict[str, float] = {}
                super().__init__(**kwargs)

            # --- caps -------------------------------------------------------------------
            def survey_pages(self) -> dict[str, str]:
                live = set(self.list_kernel_ids())
                for kid in [k for k in self.survey_owner if k not in live]:
                    del self.survey_owner[kid]
                    self.survey_unconnected_since.pop(kid, None)
                return self.survey_owner

            def survey_admit(self, client: str) -> str | None:
                """None (and a reservation) when ``client`` may have one more page kernel,
                else why not: "total" or "client"."""
                pages = self.survey_pages()
                total = len(pages) + sum(self.survey_pending.values())
                mine = sum(1 for c in pages.values() if c == client) + self.survey_pending[client]
                if total >= app.max_kernels:
                    return "total"
                if mine >= app.max_kernels_per_client:
                    return "client"
                self.survey_pending[client] += 1
                return None

            def survey_release(self, client: str) -> None:
                self.survey_pending[client] -= 1
                if self.survey_pending[client] <= 0:
                    del self.survey_pending[client]

            def survey_assign(self, kernel_id: str) -> None:
                load = page_load.get()
                if load is None or not load["pending"]:
                    return  # a pool refill, not a page load
                load["pending"] = False
                self.survey_release(load["client"])
                self.survey_owner[kernel_id] = load["client"]
                kernel = self._kernels.get(kernel_id)
                if kernel is not None:  # time spent waiting in the pool is not idle time of this page
                    kernel.last_activity = utcnow()
                self.survey_unconnected_since[kernel_id] = time.monotonic()
                self.survey_check_later(kernel_id, app.orphan_timeout)

            # --- kernels no browser is connected to ----------------------------------------
            def survey_check_later(self, kernel_id: str, delay: float) -> None:
                asyncio.get_event_loop().call_later(
                    max(delay, 0.05), lambda: asyncio.ensure_future(self.survey_reap(kernel_id)))

            async def survey_reap(self, kernel_id: str) -> None:
                if kernel_id not in self.survey_owner or kernel_id not in self:
                    return
                if self._kernel_connections.get(kernel_id, 0) > 0:
                    return
                since = self.survey_unconnected_since.get(kernel_id, time.monotonic())
                left = app.orphan_timeout - (time.monotonic() - since)
                if left > 0.05:
                    self.survey_check_later(kernel_id, left)
                    return
                self.log.info("Shutting down kernel %s: no browser connected to its page for %g s",
                              kernel_id, app.orphan_timeout)
                try:
                    await self.shutdown_kernel(kernel_id)
                except Exception as e:  # already gone
                    self.log.warning("Could not shut down kernel %s: %s", kernel_id, e)

            def notify_connect(self, kernel_id):
                super().notify_connect(kernel_id)
                self.survey_unconnected_since.pop(kernel_id, None)

            def notify_disconnect(self, kernel_id):
                super().notify_disconnect(kernel_id)
                if kernel_id in self.survey_owner and self._kernel_connections.get(kernel_id, 0) <= 0:
                    self.survey_unconnected_since[kernel_id] = time.monotonic()
                    self.survey_check_later(kernel_id, app.orphan_timeout)

            # --- where page loads get their kernel -----------------------------------------
            async def get_rendered_notebook(self, *args, **kwargs):
                # Voilà would start the refill kernel with this visitor's URL (token included)
                # in its environment
                kwargs["extra_kernel_env_variables"] = {}
                result = await super().get_rendered_notebook(*args, **kwargs)
                self.survey_assign(result[2])
                return result

            async def start_kernel(self, *args, **kwargs):  # a page load that found the pool empty
                if isinstance(kwargs.get("env"), dict):
                    kwargs["env"] = scrub_kernel_env(kwargs["env"])
                kernel_id = await super().start_kernel(*args, **kwargs)
                self.survey_assign(kernel_id)
                return kernel_id

            def _handle_kernel_died(self, kernel_id):
                # a dead preheated kernel leaves the pool (Voilà would hand it to a visitor)
                # and is replaced; a dead page kernel is removed (the page shows its banner)
                refill = None
                for name, pool in getattr(self, "_pools", {}).items():
                    for i, f in enumerate(pool):
                        try:
                            done = f.done() and f.result().get("kernel_id") == kernel_id
                        except Exception:
                            done = False
                        if done:
                            pool.pop(i)
                            refill = name
                            break
                super()._handle_kernel_died(kernel_id)
                self.survey_owner.pop(kernel_id, None)
                if refill is not None:
                    self.fill_if_needed(delay=None, notebook_name=refill)

        return SurveyKernelManager

    class SurveyPageHandler(TornadoVoilaHandler):
        """A dashboard page: refused with 503 beyond the kernel caps; sets the _xsrf cookie
        that the page's tab-close beacon (POST /voila/api/shutdown/<id>) must send back."""

        @tornado.web.authenticated
        async def get(self, path=None):
            km = self.kernel_manager
            app = self.settings["survey_app"]
            client = client_address(self.request.remote_ip, self.request.headers.get("X-Real-IP"))
            refused = km.survey_admit(client) if hasattr(km, "survey_admit") else None
            if refused:
                self.log.warning("Page %s refused for %s: %s kernel cap reached (%s)", self.request.path, client,
                                 "per-client" if refused == "client" else "total",
                                 app.max_kernels_per_client if refused == "client" else app.max_kernels)
                lang = pick_language(self.request.headers.get("Accept-Language"), app.language)
                self.set_status(503)
                self.set_header("Retry-After", str(BUSY_RETRY_AFTER))
                self.set_header("Content-Type", "text/html; charset=utf-8")
                self.set_header("Cache-Control", "no-store")
                self.finish(busy_page(refused, lang))
                return
            self.xsrf_token  # noqa: B018 - the property sets the _xsrf cookie
            # the tab's title and the document's language in the reader's language from the
            # first byte (write() below), before the widgets render
            self.survey_head = (dashboard_page_language(self.get_argument("lang", ""), app.language), path or "")
            load = {"client": client, "pending": True}
            reset = page_load.set(load)
            try:
                await super().get(path)
            finally:
                self.survey_release_head()  # a page without a <title>: sent as it was
                page_load.reset(reset)
                if load["pending"]:
                    km.survey_release(client)

        def write(self, chunk):
            # Voilà sends the template in small pieces (``<title>``, the title, ``</title>`` are
            # three): they are held until the title is complete (at most HEAD_HOLD characters)
            head = getattr(self, "survey_head", None)
            if head is None:
                return super().write(chunk)
            if not isinstance(chunk, str):  # (Voilà writes text) what was held first, as it was
                self.survey_release_head()
                return super().write(chunk)
            self.survey_held = getattr(self, "survey_held", "") + chunk
            text, done = localize_page_head(self.survey_held, *head)
            if done or len(self.survey_held) > HEAD_HOLD:
                self.survey_release_head(text)
            return None

        def survey_release_head(self, text=None):
            held, self.survey_head, self.survey_held = getattr(self, "survey_held", ""), None, ""
            if text or held:
                super().write(text if text is not None else held)

    class SafeTemplateStaticFileHandler(TemplateStaticFileHandler):
        """/voila/templates/<template>/static/<file>: 404 for any other shape (Voilà's handler
        asserts on it: a 500 with a traceback in the log)."""

        def parse_url_path(self, path):
            parts = path.split("/", 2)
            if len(parts) != 3 or parts[1] != "static" or not re.fullmatch(r"[\w.-]+", parts[0]) \
                    or parts[0] in (".", "..") or not parts[2]:
                raise tornado.web.HTTPError(404)
            return super().parse_url_path(path)

        @classmethod
        def get_absolute_path(cls, root, path):
            try:
                return super().get_absolute_path(root, path)
            except (ValueError, AssertionError):
                raise tornado.web.HTTPError(404) from None

    class CleanErrors:
        """Mixed into every route's handler: errors are one short line (Jupyter's HTML error
        page needs settings Voilà does not have, so a 404 became a 500 with two tracebacks in
        the log), and a NUL byte in the path is a 400 (file handlers raised ValueError)."""

        def prepare(self):
            if "%00" in self.request.path or "\x00" in self.request.path:
                raise tornado.web.HTTPError(400, "NUL byte in the path")
            return super().prepare()

        def write_error(self, status_code, **kwargs):
            reason = self._reason or "Error"
            if isinstance(self, APIHandler):
                self.set_header("Content-Type", "application/json")
                self.finish(json.dumps({"message": reason}))
            else:
                self.set_header("Content-Type", "text/plain; charset=utf-8")
                self.finish(f"{status_code}: {reason}\n")

    def page_language(handler) -> str:
        app = handler.settings["survey_app"]
        return reader_language(handler.get_argument("lang", ""), handler.request.headers.get("Accept-Language"),
                               app.language)

    class SurveyLandingHandler(TornadoVoilaTreeHandler):
        """``/`` (and ``/voila/tree``): the reader-facing landing page instead of Voilà's file
        tree; any path below the tree goes back to it."""

        @tornado.web.authenticated
        async def get(self, path=""):
            lang = page_language(self)
            if path.strip("/"):
                self.redirect(self.base_url + (f"?lang={lang}" if self.get_argument("lang", "") == lang else ""))
                return
            app = self.settings["survey_app"]
            page = landing_page(Path(app.root_dir), Path(app.outputs), lang, base_url=self.base_url,
                                publisher=app.publisher)
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Content-Language", lang)
            self.set_header("Vary", "Accept-Language")
            self.set_header("Cache-Control", "no-cache")
            self.finish(page)

    class NoListing(VoilaContentsHandler):
        """``/voila/api/contents``: the file listing of Voilà's tree page; the landing page
        does not need it, so it lists nothing (404)."""

        @tornado.web.authenticated
        async def get(self, path=""):
            raise tornado.web.HTTPError(404)

    class SurveyLoginHandler(LoginFormHandler):
        """``/login`` with a token: the access-code page in the reader's language (login.html
        of _jupyter/pages, first in the server's jinja search path, see init_settings)."""

        def _render(self, message=None):
            from urllib.parse import parse_qs, urlsplit

            app = self.settings["survey_app"]
            nxt = self.get_argument("next", default=self.base_url)
            # ?lang= of this page, else the one of the page the reader was going to
            asked = self.get_argument("lang", "") or (parse_qs(urlsplit(nxt).query).get("lang") or [""])[0]
            lang = reader_language(asked, self.request.headers.get("Accept-Language"), app.language)
            self.set_header("Cache-Control", "no-store")
            self.set_header("Content-Language", lang)
            self.write(self.render_template("login.html", **login_context(
                lang, app.publisher, self.base_url, nxt, error=bool(message))))

        def static_url(self, path, include_host=None, **kwargs):  # as Voilà's login handler
            return "voila/static/" + path

    class NotFound(tornado.web.RequestHandler):
        def prepare(self):
            raise tornado.web.HTTPError(404)

    class HostRefused(tornado.web.RequestHandler):
        """Any request whose Host header is not an allowed name."""

        def prepare(self):
            self.set_status(400)
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("400: this server does not answer to that host name\n")

    class SurveyVoila(voila_app.Voila):
        max_kernels = Int(DEFAULT_MAX_KERNELS, config=True, help="live page kernels, all clients")
        max_kernels_per_client = Int(DEFAULT_MAX_KERNELS_PER_CLIENT, config=True, help="live page kernels per client")
        orphan_timeout = Float(DEFAULT_ORPHAN_TIMEOUT, config=True,
                               help="seconds a page kernel may have no browser connected")
        language = Unicode("en", config=True, help="language of the busy page when the browser asks for none we have")
        allow_hosts = List(Unicode(), list(LOOPBACK_NAMES), config=True, help="Host header names answered")
        outputs = Unicode("", config=True, help="publication root (the landing page lists its runs)")
        publisher = Unicode("", config=True, help="who gives readers the access code (landing and login pages)")

        @default("outputs")
        def _default_outputs(self):
            return os.environ.get(ENV_OUTPUTS, "")

        def init_settings(self):
            original = voila_app.voila_kernel_manager_factory

            def factory(*args, **kwargs):
                return harden_kernel_manager(original(*args, **kwargs), self)

            voila_app.voila_kernel_manager_factory = factory
            try:
                settings = super().init_settings()
            finally:
                voila_app.voila_kernel_manager_factory = original
            settings["survey_app"] = self
            settings["log_function"] = log_request  # Jupyter's request log: ?token= scrubbed
            # jupyter_server's login handler renders "login.html" from settings["jinja2_env"]
            # (Voilà's copy searches jupyter_server's templates only): the reader-facing one of
            # _jupyter/pages comes first
            env = settings.get("jinja2_env")
            if env is not None:
                import jinja2

                env.loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(PAGES)), env.loader])
            return settings

        def init_handlers(self):
            handlers = []
            for pattern, cls, *rest in super().init_handlers():
                if cls is RequestInfoSocketHandler:
                    continue  # /voila/query/<kernel id>: unauthenticated, answered with the page's query string
                if cls.__name__ == "LogoutHandler":
                    continue  # no users to log out (its page needs settings Voilà lacks: a 500)
                if isinstance(cls, type) and issubclass(cls, LoginFormHandler):
                    cls = SurveyLoginHandler
                cls = {TemplateStaticFileHandler: SafeTemplateStaticFileHandler,
                       TornadoVoilaHandler: SurveyPageHandler, TornadoVoilaTreeHandler: SurveyLandingHandler,
                       VoilaContentsHandler: NoListing}.get(cls, cls)
                handlers.append((pattern, type(cls.__name__, (CleanErrors, cls), {}), *rest))
            handlers.append((r"/.*", NotFound))
            return handlers

        def host_pattern(self) -> str:
            return "(?:" + "|".join(re.escape(h.lower()) for h in self.allow_hosts) + ")$"

        def start(self):  # Voila.start, with the routes bound to the allowed Host names
            self.connection_dir = tempfile.mkdtemp(prefix="voila_", dir=self.connection_dir_root)
            self.log.info("Storing connection files in %s.", self.connection_dir)
            settings = self.init_settings()
            self.app = tornado.web.Application(**settings)
            self.app.settings.update(self.tornado_settings)
            self.app.add_handlers(self.host_pattern(), self.init_handlers())
            self.app.add_handlers(".*$", [(r".*", HostRefused)])
            self.log.info("Answering Host names: %s", ", ".join(self.allow_hosts))
            self.listen()

    return SurveyVoila


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
    p.add_argument("--max-kernels", type=_positive_int, default=DEFAULT_MAX_KERNELS,
                   help="live kernels serving pages, all visitors together; beyond it a visitor gets a "
                        f"'busy, try again' page (HTTP 503) (default {DEFAULT_MAX_KERNELS}; preheated kernels come on top)")
    p.add_argument("--max-kernels-per-client", type=_positive_int, default=DEFAULT_MAX_KERNELS_PER_CLIENT,
                   help="live kernels per client address (X-Real-IP when the request comes from a loopback "
                        f"proxy) (default {DEFAULT_MAX_KERNELS_PER_CLIENT})")
    p.add_argument("--orphan-timeout", type=float, default=DEFAULT_ORPHAN_TIMEOUT,
                   help="shut down a page's kernel when no browser has been connected to it for this many seconds "
                        f"(default {DEFAULT_ORPHAN_TIMEOUT})")
    p.add_argument("--kernel-memory-mb", type=_positive_int, default=DEFAULT_KERNEL_MEMORY_MB,
                   help=f"address-space limit of each kernel in MB (default {DEFAULT_KERNEL_MEMORY_MB}; 0: none)")
    p.add_argument("--max-comms", type=_positive_int, default=DEFAULT_MAX_CLIENT_COMMS,
                   help=f"comms a browser may open in its kernel (default {DEFAULT_MAX_CLIENT_COMMS})")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host header is NAME (the reverse proxy's public name); "
                        "default: loopback names and the --host address only")
    p.add_argument("--publisher", default=None, metavar="NAME",
                   help="the organisation readers get the access code from, named on the landing and access-code "
                        "pages (one line; default: none named)")
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
    if args.max_kernels < 1 or args.max_kernels_per_client < 1:
        raise DashboardError("--max-kernels and --max-kernels-per-client must be at least 1")
    if not args.orphan_timeout > 0:
        raise DashboardError(f"--orphan-timeout must be more than 0 s (got {args.orphan_timeout})")
    if 0 < args.kernel_memory_mb < 256:
        raise DashboardError(f"--kernel-memory-mb {args.kernel_memory_mb} is too small for a Python kernel (at least 256, or 0)")
    for name in args.allow_host:
        if not re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", name.strip()):
            raise DashboardError(f"--allow-host {name!r} is not a host name (no port, no scheme)")
    publisher = " ".join((getattr(args, "publisher", None) or "").split())
    if len(publisher) > 120 or any(not ch.isprintable() for ch in publisher):
        raise DashboardError(f"--publisher must be one printable line of at most 120 characters (got {len(publisher)})")
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
                       cull_interval=args.cull_interval, max_kernels=args.max_kernels,
                       max_kernels_per_client=args.max_kernels_per_client, orphan_timeout=args.orphan_timeout,
                       kernel_memory_mb=args.kernel_memory_mb, max_client_comms=args.max_comms,
                       allow_hosts=list(args.allow_host), runs=runs, publisher=publisher)


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
    try:
        survey_voila_class().launch_instance(argv=argv, config=voila_config(cfg))
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

