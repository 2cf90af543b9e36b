"""`survey dashboard` without a browser: the Voilà command line carries the security settings,
Voilà understands them, a real server honours them, and bad input gives one line and exit 2."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from survey import serve

ROOT = Path(__file__).resolve().parents[1]


def fake_publication(root: Path, runs=("run1",)) -> Path:
    """A publication root the server accepts (the server only checks the run folders exist)."""
    for name in runs:
        d = root / name
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps({"run": name, "status": "succeeded"}))
        (d / "indicators.parquet").write_bytes(b"")
    return root


def write_notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def pub(tmp_path):
    return fake_publication(tmp_path / "outputs")


@pytest.fixture
def dash(tmp_path):
    d = tmp_path / "dashboards"
    d.mkdir()
    write_notebook(d / "overview.ipynb", "1 + 1")
    return d


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "survey.cli", "dashboard", *args], capture_output=True,
                          text=True, timeout=120, env=env)


def config(**kw) -> serve.ServeConfig:
    base = dict(dashboards=Path("/srv/dashboards"), outputs=Path("/srv/outputs"))
    base.update(kw)
    return serve.ServeConfig(**base)


def options(argv: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in argv[1:]:
        key, _, value = a.partition("=")
        out.setdefault(key, []).append(value)
    return out


# ---------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------
def test_voila_command_line_has_the_security_settings():
    argv = serve.voila_argv(config(port=9000))
    o = options(argv)
    assert argv[0] == "/srv/dashboards"
    assert o["--Voila.ip"] == ["127.0.0.1"] and o["--Voila.port"] == ["9000"]
    assert o["--Voila.port_retries"] == ["0"]
    assert o["--VoilaConfiguration.strip_sources"] == ["True"]
    assert o["--VoilaConfiguration.show_tracebacks"] == ["False"]
    assert o["--VoilaConfiguration.allow_template_override"] == ["NO"]
    assert o["--VoilaConfiguration.template"] == ["survey-lab"]
    assert o["--VoilaConfiguration.preheat_kernel"] == ["True"]
    assert int(o["--VoilaConfiguration.default_pool_size"][0]) >= 1
    assert int(o["--MappingKernelManager.cull_idle_timeout"][0]) > 0  # 0 would switch culling off
    assert int(o["--MappingKernelManager.cull_interval"][0]) > 0
    assert o["--MappingKernelManager.cull_connected"] == ["True"]
    assert o["--KernelRestarter.restart_limit"] == ["0"]  # a dead page kernel is not restarted empty
    assert o["--SurveyVoila.max_kernels"] == [str(serve.DEFAULT_MAX_KERNELS)]
    assert o["--SurveyVoila.max_kernels_per_client"] == [str(serve.DEFAULT_MAX_KERNELS_PER_CLIENT)]
    assert o["--SurveyVoila.allow_hosts"] == ["localhost", "127.0.0.1", "[::1]"]
    assert "--no-browser" in argv
    assert not any("token" in a.lower() for a in argv)


def test_static_allowlist_serves_no_data_or_source_files():
    o = options(serve.voila_argv(config()))

    def served(path):
        return (any(re.fullmatch(p, path, re.I) for p in o["--VoilaConfiguration.file_allowlist"])
                and not any(re.fullmatch(p, path, re.I) for p in o["--VoilaConfiguration.file_denylist"]))

    for path in ["indicators.csv", "run/indicators.parquet", "x.xlsx", "households.sav", "p.zsav", "a.dta",
                 "b.sas7bdat", "c.xpt", "d.por", "overview.ipynb", "overview.py", "manifest.json",
                 "params.yaml", ".env", "secret/.git/config", "logo.svg", "model.pkl", "notes.txt"]:
        assert not served(path), path
    assert served("logo.png") and served("img/map.jpg")


def test_token_never_on_the_voila_command_line_or_in_kernel_environment():
    cfg = config(token="s3cret-token")
    assert "s3cret-token" not in " ".join(serve.voila_argv(cfg))
    env = serve.voila_env(cfg, base={"JUPYTER_TOKEN": "x", "SURVEY_DASHBOARD_TOKEN": "s3cret-token", "PATH": "/bin"})
    assert "s3cret-token" not in env.values() and "JUPYTER_TOKEN" not in env
    assert serve.voila_config(cfg).Voila.token == "s3cret-token"
    assert "token" not in serve.voila_config(config()).Voila


def test_voila_understands_every_setting(tmp_path):
    """Voilà parses the command line into the intended configuration (a typo in a class or
    trait name would otherwise be ignored silently)."""
    from voila.app import Voila

    argv = serve.voila_argv(config(dashboards=tmp_path, port=9000, pool_size=2, cull_idle_timeout=300))
    app = Voila()
    app.parse_command_line(argv)
    c = app.config
    assert c.Voila.ip == "127.0.0.1" and c.Voila.port == 9000 and c.Voila.port_retries == 0
    assert c.VoilaConfiguration.strip_sources is True and c.VoilaConfiguration.show_tracebacks is False
    assert c.VoilaConfiguration.preheat_kernel is True and c.VoilaConfiguration.default_pool_size == 2
    assert c.VoilaConfiguration.file_allowlist == serve.FILE_ALLOWLIST
    assert c.VoilaConfiguration.file_denylist == serve.FILE_DENYLIST
    assert c.VoilaConfiguration.extension_allowlist == serve.EXTENSION_ALLOWLIST
    # classes Voilà does not own get deferred strings: resolve them as the kernel manager will
    from jupyter_server.services.contents.manager import ContentsManager
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    km = AsyncMappingKernelManager(config=c)
    assert (km.cull_idle_timeout, km.cull_interval, km.cull_connected, km.cull_busy) == (300, 60, True, False)
    assert "*.py" in ContentsManager(config=c).hide_globs
    from jupyter_client.ioloop.restarter import AsyncIOLoopKernelRestarter

    assert AsyncIOLoopKernelRestarter(config=c).restart_limit == 0
    # the project's application reads its own settings from the same command line
    argv = serve.voila_argv(config(dashboards=tmp_path, port=9000, max_kernels=7, max_kernels_per_client=3,
                                   orphan_timeout=12.5, language="fr", allow_hosts=["dash.example.org"]))
    app = serve.survey_voila_class()()
    app.parse_command_line(argv)
    assert (app.max_kernels, app.max_kernels_per_client, app.orphan_timeout, app.language) == (7, 3, 12.5, "fr")
    assert app.allow_hosts == ["localhost", "127.0.0.1", "[::1]", "dash.example.org"]
    assert app.ip == "127.0.0.1" and app.port == 9000  # Voila.* settings apply to the subclass


def test_kernel_spec_and_launcher_replace_python3_for_the_server_only():
    """The server's JUPYTER_PATH puts src/survey/_jupyter first: its python3 kernel spec runs the
    limiting launcher; the kernels get the limits in their environment."""
    spec = json.loads((serve.TEMPLATE_ROOT / "kernels" / "python3" / "kernel.json").read_text())
    assert spec["argv"][:2] == ["python", "{resource_dir}/launch.py"] and "{connection_file}" in spec["argv"]
    env = serve.voila_env(config(kernel_memory_mb=1024, max_client_comms=9), base={"PATH": "/bin"})
    assert env["SURVEY_KERNEL_MEMORY_MB"] == "1024" and env["SURVEY_KERNEL_MAX_COMMS"] == "9"
    assert env["ARROW_DEFAULT_MEMORY_POOL"] == "system"  # mimalloc would reserve ~1 GB of it
    from jupyter_client.kernelspec import KernelSpecManager

    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = env["JUPYTER_PATH"]
    try:
        ks = KernelSpecManager().get_kernel_spec("python3")
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH")
        else:
            os.environ["JUPYTER_PATH"] = old
    assert Path(ks.resource_dir) == serve.TEMPLATE_ROOT / "kernels" / "python3"


def test_token_is_scrubbed_from_urls_and_kernel_environments():
    assert serve.strip_token("http://h:1/voila/render/a.ipynb?token=abc") == "http://h:1/voila/render/a.ipynb"
    assert serve.strip_token("http://h/x?a=1&token=abc&b=2") == "http://h/x?a=1&b=2"
    assert serve.strip_token("token=abc&lang=fr") == "lang=fr"
    assert serve.strip_token("a=1&TOKEN=abc") == "a=1"
    assert serve.strip_token("mytoken=1") == "mytoken=1"  # only the parameter named token
    env = serve.scrub_kernel_env({"VOILA_REQUEST_URL": "http://h/r/a.ipynb?token=s3cret", "QUERY_STRING": "token=s3cret",
                                  "JUPYTER_TOKEN": "s3cret", "SURVEY_DASHBOARD_TOKEN": "s3cret", "PATH": "/bin"})
    assert env == {"VOILA_REQUEST_URL": "http://h/r/a.ipynb", "QUERY_STRING": "", "PATH": "/bin"}


def test_allowed_hosts_and_busy_page():
    assert serve.allowed_hosts(config()) == ["localhost", "127.0.0.1", "[::1]"]
    assert serve.allowed_hosts(config(host="0.0.0.0", allow_hosts=["Dash.Example.org"])) == [
        "localhost", "127.0.0.1", "[::1]", "dash.example.org"]
    assert serve.allowed_hosts(config(host="10.1.2.3"))[-1] == "10.1.2.3"
    assert serve.allowed_hosts(config(host="::1")) == ["localhost", "127.0.0.1", "[::1]"]
    assert serve.pick_language("es-MX,es;q=0.9", "en") == "es"
    assert serve.pick_language("de-DE,de", "fr") == "fr"
    assert serve.pick_language(None, "xx") == "en"
    page = serve.busy_page("total", "es")
    assert '<html lang="es">' in page and "Demasiadas personas" in page and 'data-reason="total"' in page
    assert "<script" not in page


def test_template_exists_and_drops_the_cdn_links():
    t = serve.TEMPLATE_ROOT / "voila" / "templates" / serve.TEMPLATE
    assert json.loads((t / "conf.json").read_text())["base_template"] == "lab"
    from voila.paths import collect_template_paths

    lab = Path(collect_template_paths(["voila"], "lab")[0]) / "index.html.j2"
    text = (t / "index.html.j2").read_text()
    for url in re.findall(r'href="(https://[^"]+)"', lab.read_text()):  # every CDN link of the lab template
        assert f'"{url}"' in text, f"survey-lab does not replace {url}"


def test_dry_run_defaults_loopback_no_token(pub, dash):
    r = cli("--outputs", str(pub), "--dashboards", str(dash), "--port", "0", "--dry-run")
    assert r.returncode == 0, r.stderr
    url = re.search(r"dashboards: (\S+)", r.stdout).group(1)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)  # no token on loopback
    assert r.stderr == ""


def test_non_loopback_host_warns_and_gets_a_token(pub, dash):
    r = cli("--outputs", str(pub), "--dashboards", str(dash), "--host", "0.0.0.0", "--port", "0", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "warning" in r.stderr and "not loopback" in r.stderr
    assert re.search(r"dashboards: http://0\.0\.0\.0:\d+/\?token=[\w-]{20,}", r.stdout)
    r = cli("--outputs", str(pub), "--dashboards", str(dash), "--host", "0.0.0.0", "--port", "0", "--no-token",
            "--dry-run")
    assert r.returncode == 0 and "NO token" in r.stderr and "token=" not in r.stdout


def test_token_option_and_generated_token(pub, dash):
    r = cli("--outputs", str(pub), "--dashboards", str(dash), "--port", "0", "--token", "abc123", "--dry-run")
    assert "?token=abc123" in r.stdout
    r = cli("--outputs", str(pub), "--dashboards", str(dash), "--port", "0", "--token", "--dry-run")
    assert re.search(r"\?token=[\w-]{20,}", r.stdout)


# ---------------------------------------------------------------------------------------------
# errors: one line, exit 2
# ---------------------------------------------------------------------------------------------
def one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("survey: error: "), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_missing_publication_root(tmp_path, dash):
    one_line_error(cli("--outputs", str(tmp_path / "nope"), "--dashboards", str(dash)), "does not exist", "nope")


def test_publication_root_without_runs(tmp_path, dash):
    empty = tmp_path / "outputs"
    (empty / "half-run").mkdir(parents=True)
    (empty / "half-run" / "manifest.json").write_text(json.dumps({"status": "failed"}))
    (empty / "half-run" / "indicators.parquet").write_bytes(b"")
    one_line_error(cli("--outputs", str(empty), "--dashboards", str(dash)), "no finished runs")


def test_port_in_use(pub, dash):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        one_line_error(cli("--outputs", str(pub), "--dashboards", str(dash), "--port", str(port)),
                       f"port {port}", "already in use")


def test_other_bad_input(pub, dash, tmp_path):
    one_line_error(cli("--outputs", str(pub), "--dashboards", str(dash), "--language", "de"), "language 'de'")
    one_line_error(cli("--outputs", str(pub), "--dashboards", str(tmp_path / "none")), "dashboards folder")
    one_line_error(cli("--outputs", str(pub), "--dashboards", str(dash), "--cull-idle-timeout", "0"), "culling")
    one_line_error(cli("--outputs", str(pub), "--dashboards", str(dash), "--host", "no.such.host.invalid"),
                   "no.such.host.invalid")
    one_line_error(cli("--outputs", str(pub), "--dashboards", str(dash), "--max-kernels", "0"), "--max-kernels")
    one_line_error(cli("--outputs", str(pub), "--dashboards", str(dash), "--orphan-timeout", "0"), "--orphan-timeout")
    one_line_error(cli("--outputs", str(pub), "--dashboards", str(dash), "--kernel-memory-mb", "64"), "too small")
    one_line_error(cli("--outputs", str(pub), "--dashboards", str(dash), "--allow-host", "https://x.org/"),
                   "not a host name")


# ---------------------------------------------------------------------------------------------
# a real server (no browser; kernels started on demand)
# ---------------------------------------------------------------------------------------------
def get(url):
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_server_honours_the_settings(tmp_path, pub):
    dash = tmp_path / "dashboards"
    dash.mkdir()
    write_notebook(dash / "env.ipynb",
                   "# SOURCE-MARKER-4711 must not reach the browser\nimport os",
                   "print('OUT=' + os.environ['SURVEY_DASHBOARD_OUTPUTS'] + ' LANG=' "
                   "+ os.environ['SURVEY_DASHBOARD_LANGUAGE'])")
    write_notebook(dash / "broken.ipynb", "raise RuntimeError('SECRET-ERROR-DETAIL')")
    fear = write_notebook(dash / "fear.ipynb", "print('FEAR-PAGE')")
    nb = nbformat.read(fear, as_version=4)
    nb.metadata["title"] = "Fear of crime"  # as the real dashboards: an English metadata title
    nbformat.write(nb, fear)
    (dash / "data.csv").write_text("a,b\n1,2\n")
    (dash / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with serve.ServerProcess(pub, "--pool-size", "0", "--language", "fr", "--cull-idle-timeout", "120",
                             "--cull-interval", "30", "--max-kernels-per-client", "20", dashboards=dash,
                             timeout=120) as srv:
        base = srv.base
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", base)
        status, html = get(base + "voila/render/env.ipynb")
        assert status == 200
        assert f"OUT={pub.resolve()} LANG=fr" in html  # the kernel got the publication root and language
        assert "SOURCE-MARKER-4711" not in html  # sources stripped
        assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//(?!127\.0\.0\.1|localhost)""", html)
        # the tab's title and the document's language are the server's language from the first
        # byte (before any widget), and ?lang= wins; a notebook without a title key keeps its own
        for query, lang, title in (("", "fr", "Sentiment d’insécurité"), ("?lang=es", "es", "Percepción de inseguridad"),
                                   ("?lang=xx", "fr", "Sentiment d’insécurité"), ("?lang=en", "en", "Fear of crime")):
            status, html = get(base + "voila/render/fear.ipynb" + query)
            assert status == 200 and "FEAR-PAGE" in html
            head = html[:html.index("</title>") + len("</title>")]
            assert re.search(r'<html[^>]*\slang="' + lang + '"', head), (query, head[:300])
            assert re.search(r"<title>(.*?)</title>", html, re.S).group(1) == title, query  # the first: the head's
        status, html = get(base + "voila/render/env.ipynb?lang=es")
        assert re.search(r"<title>(.*?)</title>", html, re.S).group(1) == "env" and '<html lang="es"' in html
        status, html = get(base + "voila/render/broken.ipynb")
        assert "SECRET-ERROR-DETAIL" not in html and "Traceback" not in html  # no tracebacks sent
        assert get(base + "voila/files/data.csv")[0] == 403
        assert get(base + "voila/files/env.ipynb")[0] == 403
        assert get(base + "voila/files/logo.png")[0] == 200
        log = "".join(srv.lines)
    assert "Culling kernels with idle durations > 120 seconds at 30 second intervals" in log
    assert "Culling kernels even with connected clients" in log


def test_server_with_token(tmp_path, pub, dash):
    with serve.ServerProcess(pub, "--pool-size", "0", "--token", "tok-3141", dashboards=dash, timeout=120) as srv:
        assert srv.url.endswith("?token=tok-3141")
        opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,), {
            "redirect_request": lambda *a, **k: None}))
        for url in (srv.base, srv.base + "?token=wrong", srv.base + "voila/render/overview.ipynb"):
            with pytest.raises(urllib.error.HTTPError) as e:
                opener.open(url, timeout=60)
            assert e.value.code in (302, 403), url
        assert get(srv.base + "?token=tok-3141")[0] == 200


# ---------------------------------------------------------------------------------------------
# the reader-facing pages: landing page (instead of Voilà's file tree) and access-code page
# ---------------------------------------------------------------------------------------------
class _Text(__import__("html.parser").parser.HTMLParser):
    """What a reader sees or hears of a page: text outside <style>/<script>, and the
    aria-label, title, alt and placeholder attributes."""

    def __init__(self):
        super().__init__()
        self.parts, self.skip, self.tags = [], 0, []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("style", "script"):
            self.skip += 1
        for name, value in attrs:
            if name in ("aria-label", "title", "alt", "placeholder") and value:
                self.parts.append(value)

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self.skip -= 1

    def handle_data(self, data):
        if not self.skip and data.strip():
            self.parts.append(data.strip())


def page_text(page: str) -> tuple[str, list]:
    p = _Text()
    p.feed(page)
    return " | ".join(p.parts), p.tags


def publication_for_landing(root: Path, description_fr: bool = True) -> Path:
    """Two runs as `survey batch` writes them (manifest, translations.csv), with run ids, a
    survey and periods that must never show up verbatim."""
    runs = {
        "run-alpha-7": dict(description="National survey, first wave", period="Year 1", finished="2026-03-01T10:00:00"),
        "run-beta-8": dict(description="National survey, second wave against the first", period="Year 2",
                           finished="2026-09-15T08:30:00", compare={"period": "Year 1"}),
    }
    for name, r in runs.items():
        d = root / name
        d.mkdir(parents=True)
        manifest = {"run": name, "status": "succeeded", "description": r["description"], "finished": r["finished"],
                    "spec": {"survey": "natsurv", "title": "National crime survey", "period": r["period"]},
                    "parameters": {"resolved": {"period": r["period"], "compare": r.get("compare")}}}
        if description_fr:
            manifest["description_fr"] = r["description"].replace("National survey", "Enquête nationale").replace(
                "first wave", "première vague").replace("second wave against the first", "deuxième vague comparée à la première")
        manifest["description_es"] = r["description"].replace("National survey", "Encuesta nacional").replace(
            "first wave", "primera ola").replace("second wave against the first", "segunda ola comparada con la primera")
        (d / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        (d / "indicators.parquet").write_bytes(b"")
        (d / "translations.csv").write_text(
            "kind,name,value,language,text\n"
            "title,natsurv,,en,National crime survey\ntitle,natsurv,,fr,Enquête nationale sur la délinquance\n"
            "title,natsurv,,es,Encuesta nacional de delincuencia\n", encoding="utf-8")
    failed = root / "run-failed-9"
    failed.mkdir()
    (failed / "manifest.json").write_text(json.dumps({"run": "run-failed-9", "status": "failed", "description": "FAILED RUN"}))
    return root


@pytest.fixture
def landing_dirs(tmp_path):
    dash = tmp_path / "dashboards"
    dash.mkdir()
    for name in ("risk", "overview", "victimization", "fear", "repeat"):
        write_notebook(dash / f"{name}.ipynb", "1")
    (dash / "overview.py").write_text("# jupytext twin")
    return dash, publication_for_landing(tmp_path / "outputs")


# What each language must show: written out here, not taken from the catalogs.
LANDING_EXPECTED = {
    "en": ["Crime and safety statistics: dashboards", "Skip to the dashboards", "Overview of crime and safety",
           "Victimization explorer", "Headline indicators with their confidence intervals",
           "National survey, second wave against the first", "Reference period: Year 2", "Compared with: Year 1",
           "Published on 2026-09-15", "Survey: National crime survey", "Periods covered: Year 1, Year 2"],
    "fr": ["Statistiques sur la délinquance et la sécurité : tableaux de bord", "Aller aux tableaux de bord",
           "Vue d’ensemble de la criminalité et de la sécurité", "Explorateur de la victimation",
           "Enquête nationale, deuxième vague comparée à la première", "Période de référence : Année 2",
           "Comparée à : Année 1", "Publiée le 2026-09-15", "Enquête : Enquête nationale sur la délinquance",
           "Périodes couvertes : Année 1, Année 2"],
    "es": ["Estadísticas de delincuencia y seguridad: tableros", "Ir a los tableros",
           "Panorama de la delincuencia y la seguridad", "Explorador de la victimización",
           "Encuesta nacional, segunda ola comparada con la primera", "Período de referencia: Año 2",
           "Comparada con: Año 1", "Publicada el 2026-09-15", "Encuesta: Encuesta nacional de delincuencia",
           "Períodos cubiertos: Año 1, Año 2"],
}


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_landing_page_speaks_the_readers_language_and_hides_internals(landing_dirs, lang):
    dash, outputs = landing_dirs
    page = serve.landing_page(dash, outputs, lang, publisher="Office of Crime Statistics")
    text, tags = page_text(page)
    assert page.startswith("<!DOCTYPE html>") and f'<html lang="{lang}">' in page
    for want in LANDING_EXPECTED[lang]:
        assert want in text, (lang, want)
    # no English left in French or Spanish: none of the English page's strings, no English words
    if lang != "en":
        english = page_text(serve.landing_page(dash, outputs, "en", publisher="Office of Crime Statistics"))[0]
        shared = {"English", "Español", "Français", "Office of Crime Statistics"}
        left = [s for s in english.split(" | ") if s in text.split(" | ") and s not in shared]
        assert not left, f"{lang}: English left: {left}"
        words = text.replace("Office of Crime Statistics", "").replace("English", "")
        assert not re.search(r"\b(the|and|of|with|Published|Dashboards?|Survey|Period|Skip)\b", words), words
    # no file names, run ids, paths or server internals
    for bad in (".ipynb", ".py", "run-alpha-7", "run-beta-8", "run-failed-9", "FAILED RUN", str(outputs), str(dash),
                "voila", "Voilà", "jupyter", "kernel", "token", "manifest", "natsurv"):
        assert bad.lower() not in text.lower(), (lang, bad)
    # dashboards in the site's order, each a link to its page
    links = [a["href"] for t, a in tags if t == "a" and "href" in a]
    assert links[0] == "#main" and tags[[t for t, _ in tags].index("a")][1]["class"] == "skip"
    assert [h for h in links if "render" in h] == [f"/voila/render/{n}.ipynb?lang={lang}" for n in
                                                     ("overview", "victimization", "fear", "repeat", "risk")]
    # the language switcher: three links, the current one marked
    langs = [(a["hreflang"], a.get("aria-current")) for t, a in tags if t == "a" and "hreflang" in a]
    assert langs == [(c, "page" if c == lang else None) for c in ("en", "fr", "es")]
    assert [a["href"] for t, a in tags if t == "a" and "hreflang" in a] == ["?lang=en", "?lang=fr", "?lang=es"]
    # landmarks and headings
    names = [t for t, _ in tags]
    assert names.count("h1") == 1 and names.count("main") == 1 and "nav" in names and "header" in names
    assert "footer" in names and ("main", {"id": "main", "class": "wrap", "tabindex": "-1"}) in tags
    assert "<script" not in page and "http://" not in page and "https://" not in page and "//" not in page.replace(
        "<!DOCTYPE", "")


def test_landing_page_marks_an_english_only_description(tmp_path):
    dash = tmp_path / "dashboards"
    dash.mkdir()
    write_notebook(dash / "overview.ipynb", "1")
    outputs = publication_for_landing(tmp_path / "outputs", description_fr=False)
    page = serve.landing_page(dash, outputs, "fr")
    assert '<h3 lang="en">National survey, first wave</h3>' in page  # the only description there is
    assert '<h3>Encuesta nacional, primera ola</h3>' in serve.landing_page(dash, outputs, "es")
    assert "<h3>National survey, first wave</h3>" in serve.landing_page(dash, outputs, "en")
    # description_<lang> among the run's resolved parameters only (as params.py may record it)
    mf = json.loads((outputs / "run-alpha-7" / "manifest.json").read_text())
    mf["parameters"]["resolved"]["description_fr"] = "Enquête nationale, première vague"
    (outputs / "run-alpha-7" / "manifest.json").write_text(json.dumps(mf))
    assert "<h3>Enquête nationale, première vague</h3>" in serve.landing_page(dash, outputs, "fr")
    # an unknown dashboard: its name made readable, no extension
    write_notebook(dash / "small_areas.ipynb", "1")
    text, _ = page_text(serve.landing_page(dash, outputs, "en"))
    assert "Small areas" in text and "small_areas" not in text


def test_landing_page_with_nothing_published(tmp_path):
    dash = tmp_path / "dashboards"
    dash.mkdir()
    write_notebook(dash / "fear.ipynb", "1")
    (tmp_path / "outputs").mkdir()
    text, _ = page_text(serve.landing_page(dash, tmp_path / "outputs", "es"))
    assert "Todavía no se ha publicado ningún resultado." in text and "Percepción de inseguridad" in text


LOGIN_EXPECTED = {
    "en": ("Access code needed", "This dashboard site needs an access code from Office of Crime Statistics.",
           "Access code", "Open the dashboards", "This access code is not valid. Check it and try again."),
    "fr": ("Code d’accès requis", "Ce site de tableaux de bord demande un code d’accès fourni par Office of Crime Statistics.",
           "Code d’accès", "Ouvrir les tableaux de bord", "Ce code d’accès n’est pas valide. Vérifiez-le et réessayez."),
    "es": ("Se necesita un código de acceso", "Este sitio de tableros requiere un código de acceso de Office of Crime "
           "Statistics.", "Código de acceso", "Abrir los tableros",
           "Este código de acceso no es válido. Compruébelo e inténtelo de nuevo."),
}


@pytest.mark.parametrize("lang", ["en", "fr", "es"])
def test_login_page_speaks_to_readers(lang):
    page = serve.login_page(lang, "Office of Crime Statistics", next_url="/voila/render/fear.ipynb",
                            xsrf_form_html=lambda: '<input type="hidden" name="_xsrf" value="X">')
    text, tags = page_text(page)
    title, intro, label, button, error = LOGIN_EXPECTED[lang]
    assert f'<html lang="{lang}">' in page and f"<title>{title}</title>" in page
    for want in (title, intro, label, button):
        assert want in text, want
    assert error not in text and 'role="alert"' not in page
    for bad in ("jupyter", "token", "server list", "password", "voila", "kernel", "?token", "http"):
        assert bad not in text.lower(), bad
    assert "jupyter" not in page.lower() and "token" not in page.lower()
    form = next(a for t, a in tags if t == "form")
    assert form == {"action": "/login?next=%2Fvoila%2Frender%2Ffear.ipynb", "method": "post"}
    field = next(a for t, a in tags if t == "input" and a.get("type") == "password")
    assert field["name"] == "password"  # what jupyter_server's identity provider reads
    assert ("label", {"for": field["id"]}) in tags
    assert ("input", {"type": "hidden", "name": "_xsrf", "value": "X"}) in tags
    wrong = serve.login_page(lang, next_url="/", error=True)
    wtext, _ = page_text(wrong)
    assert error in wtext and 'role="alert"' in wrong and 'aria-invalid="true"' in wrong
    assert "Office of Crime Statistics" not in wtext  # no publisher given: a generic sentence
    if lang != "en":
        english = page_text(serve.login_page("en", "Office of Crime Statistics", error=True))[0].split(" | ")
        left = [s for s in english if s in wtext.split(" | ") and s not in ("English", "Español", "Français")]
        assert not left, left


def test_page_language_is_validated():
    assert serve.reader_language("fr", "es-ES,es", "en") == "fr"
    assert serve.reader_language("es", None, "fr") == "es"
    for bad in ("de", "FR", "fr-CA", "<script>", "en\n", "", None, "e"):
        assert serve.reader_language(bad, "es-MX,es;q=0.8", "fr") == "es", bad
        assert serve.reader_language(bad, None, "fr") == "fr", bad
    with pytest.raises(Exception, match="unknown language"):
        serve.landing_page(Path("."), Path("."), "de")


def test_publisher_option(pub, dash):
    r = cli("--outputs", str(pub), "--dashboards", str(dash), "--port", "0", "--publisher", "Office X", "--dry-run")
    assert r.returncode == 0 and "--SurveyVoila.publisher=Office X" in r.stdout
    one_line_error(cli("--outputs", str(pub), "--dashboards", str(dash), "--publisher", "x" * 200), "--publisher")
    one_line_error(cli("--outputs", str(pub), "--dashboards", str(dash), "--publisher", "a\x07b"), "--publisher")


def _session():
    """An HTTP client that keeps cookies and does not follow redirects."""
    import http.cookiejar

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect)


def _open(opener, url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode("utf-8", "replace")


def test_server_landing_and_access_code_pages(tmp_path, landing_dirs):
    """A real server with a token: the site's root sends a reader to the access-code page in
    the browser's language; a wrong code says so (401); the right one opens the landing page.
    The token is in no page, header or log line (but the URL printed at start)."""
    from urllib.parse import urlencode

    dash, outputs = landing_dirs
    token = "tok-Sesame-2718"
    with serve.ServerProcess(outputs, "--pool-size", "0", "--token", token, "--publisher", "Office X",
                             dashboards=dash, timeout=120) as srv:
        s = _session()
        pages = []
        status, headers, _ = _open(s, srv.base + "?lang=es")
        assert status == 302 and headers["Location"].startswith("/login?next=")
        status, _, login = _open(s, srv.base + headers["Location"].lstrip("/"), headers={"Accept-Language": "fr-FR,fr"})
        pages.append(login)  # the language of the page the reader was going to
        assert status == 200 and '<html lang="es">' in login and "Se necesita un código de acceso" in login
        status, headers, login = _open(s, srv.base + "login?next=%2F%3Flang%3Des&lang=fr")
        assert status == 200 and '<html lang="fr">' in login and "Code d’accès requis" in login
        assert _open(s, srv.base + "login", headers={"Accept-Language": "fr-FR,fr"})[2].count('<html lang="fr">') == 1
        assert "jupyter" not in login.lower() and "token" not in login.lower()
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login).group(1)
        action = re.search(r'<form action="([^"]+)"', login).group(1).replace("&amp;", "&")
        form = {"_xsrf": xsrf, "lang": "fr", "password": "not-the-code"}
        status, _, wrong = _open(s, srv.base + action.lstrip("/"), data=urlencode(form).encode())
        pages.append(wrong)
        assert status == 401 and "Ce code d’accès n’est pas valide." in wrong and '<html lang="fr">' in wrong
        status, headers, _ = _open(s, srv.base + action.lstrip("/"), data=urlencode({**form, "password": token}).encode())
        assert status == 302 and headers["Location"] == "/?lang=es"  # back where the reader was going
        status, headers, landing = _open(s, srv.base + "?lang=es")
        pages.append(landing)
        assert status == 200 and '<html lang="es">' in landing and "Panorama de la delincuencia y la seguridad" in landing
        assert headers.get("Content-Language") == "es"
        status, _, landing = _open(s, srv.base, headers={"Accept-Language": "fr-CH,fr;q=0.9"})
        assert '<html lang="fr">' in landing and "Enquête nationale, première vague" in landing
        pages.append(landing)
        status, _, hostile = _open(s, srv.base + "?lang=%3Cscript%3Ealert(1)%3C/script%3E")
        assert status == 200 and '<html lang="en">' in hostile and "alert(1)" not in hostile
        # Voilà's file tree and listing are gone: the tree sends back to the landing page
        status, headers, _ = _open(s, srv.base + "voila/tree/risk.ipynb?lang=fr")
        assert status == 302 and headers["Location"] == "/?lang=fr"
        assert _open(s, srv.base + "voila/api/contents")[0] == 404
        for page in pages:
            assert token not in page
        log = "".join(line for line in srv.lines if not line.startswith("dashboards: "))
    assert token not in log and "Traceback" not in log


def test_dashboard_page_head_in_the_readers_language():
    """The head Voilà writes (<html lang="en">, the notebook's English metadata title) in the
    page's language: ?lang= when it is en, fr or es, else the server's language; the title is
    the dashboard's from the catalogs (escaped), a notebook without one keeps its title; the
    spinner's <title> in the body is left alone."""
    head = ('<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8" />\n<title>Fear of crime</title>'
            '<script>x</script></head><body><svg><title>spin</title></svg>')
    text, done = serve.localize_page_head(head, "fr", "fear.ipynb")
    assert done and text.startswith('<!DOCTYPE html>\n<html lang="fr">\n<head>')
    assert "<title>Sentiment d’insécurité</title><script>x</script>" in text and "<title>spin</title>" in text
    text, done = serve.localize_page_head(head, "es", "notes.ipynb")
    assert done and '<html lang="es">' in text and "<title>Fear of crime</title>" in text
    assert serve.localize_page_head('<!DOCTYPE html>\n<html lang="', "fr", "fear.ipynb") == \
        ('<!DOCTYPE html>\n<html lang="', False)
    text, _ = serve.localize_page_head('<html class="x" lang="en"><title>a</title>', "es", "risk.ipynb")
    assert text == '<html class="x" lang="es"><title>Factores de riesgo y de protección</title>'
    assert [serve.dashboard_page_language(q, d) for q, d in
            (("fr", "en"), ("", "es"), ("xx", "fr"), ("es'><script>", "en"), (None, "zz"))] == ["fr", "es", "fr", "en", "en"]
