"""`survey dashboard` under abuse, against real servers (loopback, free ports, small notebooks):
kernel caps and the 503 page, kernels freed when no browser is connected, culling never hands
out a culled kernel, per-kernel memory and comm limits, no token in kernels or unauthenticated
routes, no tracebacks to clients (widget callbacks included), the Host allow-list, and clean
4xx answers to malformed paths (no 500, no traceback in the log).

Kernels are counted as processes: the server runs Voilà in-process, its kernels are its child
processes running the survey kernel launcher (src/survey/_jupyter/kernels/python3/launch.py).
The browser part (tab close, "session expired" banner) uses headless Debian Chromium through
playwright, as tests/test_dashboard_browser.py does.
"""

from __future__ import annotations

import concurrent.futures
import html
import http.client
import json
import os
import re
import signal
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from _browser import TIMEOUT_MS, chromium_browser

from survey import serve

TOKEN = "tok-abuse-5150-secret"
WIDGET_SECRET = "WIDGET-SECRET-8086"


def fake_publication(root: Path) -> Path:
    d = root / "run1"
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"run": "run1", "status": "succeeded"}))
    (d / "indicators.parquet").write_bytes(b"")
    return root


def write_notebook(path: Path, *sources: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory):
    d = tmp_path_factory.mktemp("dashboards")
    write_notebook(d / "plain.ipynb", "import os\nprint('PAGE-OK kernel env:', sorted(os.environ.items()))")
    write_notebook(d / "limits.ipynb",
                   "import resource\nprint('RLIMIT_AS', resource.getrlimit(resource.RLIMIT_AS)[0])",
                   # as much as the limit (never resident: it cannot fit in the address space left)
                   "limit = resource.getrlimit(resource.RLIMIT_AS)[0]\n"
                   "if limit == resource.RLIM_INFINITY:\n    print('NO-LIMIT')\nelse:\n"
                   "    try:\n        big = bytearray(limit)\n        print('ALLOCATED')\n"
                   "    except MemoryError:\n        print('MEMORY-REFUSED')\n    big = None",
                   "get_ipython().kernel.comm_manager.register_target('echo', lambda comm, msg: None)")
    write_notebook(d / "widgets.ipynb",
                   "import ipywidgets as w\n"
                   "dd = w.Dropdown(options=['alpha', 'beta', 'gamma'], value='alpha', description='pick')\n"
                   "def boom(change):\n    raise RuntimeError('" + WIDGET_SECRET + " observer ' + str(change['new']))\n"
                   "dd.observe(boom, 'value')\n"
                   "button = w.Button(description='go')\n"
                   "def click(b):\n    raise ValueError('" + WIDGET_SECRET + " click')\n"
                   "button.on_click(click)\n"
                   "display(dd, button)")
    (d / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (d / "data.csv").write_text("a,b\n1,2\n")
    return d


@pytest.fixture(scope="module")
def pub(tmp_path_factory):
    return fake_publication(tmp_path_factory.mktemp("publication") / "outputs")


def start(pub, dashboards, *extra):
    return serve.ServerProcess(pub, *extra, dashboards=dashboards, timeout=180)


# ---------------------------------------------------------------------------------------------
# helpers: HTTP, kernel processes, kernel websockets
# ---------------------------------------------------------------------------------------------
def request(srv, path, headers=None, method="GET", timeout=120):
    """(status, headers, body) of one request to the server (no redirects followed)."""
    parts = urlsplit(srv.base)
    c = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        headers: dict[str, str] = {}
        for k, v in r.getheaders():  # repeated headers (Set-Cookie) joined
            headers[k.lower()] = f"{headers[k.lower()]}, {v}" if k.lower() in headers else v
        return r.status, headers, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def kernel_processes(srv) -> dict[str, int]:
    """kernel id -> pid of the server's kernel processes (children running launch.py)."""
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid != srv.proc.pid or not any(a.endswith(b"launch.py") for a in cmd):
            continue
        m = re.search(rb"kernel-([0-9a-f-]{36})\.json", b" ".join(cmd))
        out[m.group(1).decode() if m else entry] = int(entry)
    return out


def wait_for(cond, timeout, what, step=0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def kernel_id(html: str) -> str:
    m = re.search(r'"kernelId":\s*"([0-9a-f-]{36})"', html)
    assert m, "no kernel id in the page"
    return m.group(1)


def log(srv) -> str:
    return "".join(srv.lines)


class KernelSocket:
    """A raw kernel websocket (/api/kernels/<id>/channels), as any client could open one."""

    def __init__(self, srv, kid):
        from websockets.sync.client import connect

        parts = urlsplit(srv.base)
        self.session = uuid.uuid4().hex
        self._connection = connect(
            f"ws://{parts.hostname}:{parts.port}/api/kernels/{kid}/channels?session_id={self.session}",
            open_timeout=30, max_size=None)
        self.ws = self._connection.__enter__()
        self.received: list[str] = []

    def send(self, msg_type, content, channel="shell") -> str:
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": msg_type, "username": "x", "session": self.session,
                       "date": "2026-01-01T00:00:00Z", "version": "5.3"},
            "parent_header": {}, "metadata": {}, "content": content, "channel": channel, "buffers": []}))
        return msg_id

    def reply(self, msg_id, msg_type, timeout=30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                raw = self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                break
            self.received.append(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
            msg = json.loads(self.received[-1])
            if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == msg_type:
                return msg
        raise AssertionError(f"no {msg_type} to {msg_id} within {timeout} s")

    def drain(self, seconds) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                raw = self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                return
            self.received.append(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))

    def comms(self) -> dict:
        mid = self.send("comm_info_request", {})
        return self.reply(mid, "comm_info_reply")["content"]["comms"]

    def close(self):
        self._connection.__exit__(None, None, None)


# ---------------------------------------------------------------------------------------------
# kernel caps, the busy page, kernels freed without a browser
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def capped(pub, dashboards):
    with start(pub, dashboards, "--pool-size", "1", "--max-kernels", "4", "--max-kernels-per-client", "2",
               "--orphan-timeout", "6") as srv:
        wait_for(lambda: len(kernel_processes(srv)) == 3, 120, "the pool (1 kernel per notebook)")
        yield srv


def page_kernels(srv, pool=3):
    return len(kernel_processes(srv)) - pool


def test_twenty_concurrent_page_loads_are_capped(capped):
    """20 simultaneous page loads from 20 clients: 4 get a kernel (--max-kernels 4), 16 get the
    busy page; at no time are there more kernels than 4 pages + the pool; all page kernels end
    once no browser connected to them for --orphan-timeout (6 s), and pages load again."""
    pool = len(kernel_processes(capped))
    peak = [0]
    done = [False]

    def sample():
        while not done[0]:
            peak[0] = max(peak[0], len(kernel_processes(capped)))
            time.sleep(0.05)

    def load(i):
        return request(capped, "/voila/render/plain.ipynb", {"X-Real-IP": f"10.0.0.{i + 1}"})

    with concurrent.futures.ThreadPoolExecutor(21) as ex:
        sampler = ex.submit(sample)
        try:
            results = list(ex.map(load, range(20)))
            time.sleep(7.0)  # the pool refill starts after --fill-delay (5 s): sample it too
        finally:
            done[0] = True
        sampler.result()
    codes = sorted(r[0] for r in results)
    assert codes.count(200) == 4 and codes.count(503) == 16, codes
    for status, headers, body in results:
        if status == 200:
            assert "PAGE-OK" in body
        else:
            assert headers["retry-after"] == "30" and 'data-reason="total"' in body
            assert "Too many people are using the dashboards" in body
    # 3 pooled kernels + 4 page kernels (the pool refill of plain.ipynb replaces the one taken)
    assert peak[0] <= pool + 4, (peak[0], pool)
    # nobody connected: every page kernel ends after the orphan timeout, the pool stays
    wait_for(lambda: len(kernel_processes(capped)) == pool, 30, "page kernels to end")
    assert "no browser connected to its page for 6 s" in log(capped)
    assert request(capped, "/voila/render/plain.ipynb", {"X-Real-IP": "10.9.9.9"})[0] == 200


def test_per_client_cap_and_busy_page_language(capped):
    wait_for(lambda: page_kernels(capped) <= 1, 30, "earlier page kernels to end")
    wait_for(lambda: page_kernels(capped) <= 0, 30, "earlier page kernels to end")

    def load(lang):
        return request(capped, "/voila/render/plain.ipynb", {"X-Real-IP": "192.0.2.7", "Accept-Language": lang})

    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        results = list(ex.map(load, ["fr-FR,fr;q=0.9", "es", "de-DE, fr;q=0.5", "en"]))
    codes = [r[0] for r in results]
    assert sorted(codes) == [200, 200, 503, 503], codes
    busy = [r for r in results if r[0] == 503]
    for _, headers, body in busy:
        assert 'data-reason="client"' in body and headers["retry-after"] == "30"
        assert "Traceback" not in body and "kernel" not in body.lower()
    texts = {m.group(1): m.group(2) for _, _, b in busy for m in [re.search(r'<html lang="(\w+)">.*?<p[^>]*>([^<]+)', b)]}
    want = {"fr": "Vous avez trop de pages de tableaux de bord ouvertes. Fermez-en une et réessayez.",
            "es": "Tiene demasiadas páginas de tableros abiertas. Cierre una e inténtelo de nuevo.",
            "en": "You have too many dashboard pages open. Close one of them and try again."}
    for lang, text in texts.items():
        assert text == want[lang], (lang, text)
    # another client is not affected by this one's cap
    assert request(capped, "/voila/render/plain.ipynb", {"X-Real-IP": "192.0.2.8"})[0] == 200
    # X-Real-IP counts only from a loopback proxy: unit check of the rule
    assert serve.client_address("127.0.0.1", "192.0.2.7") == "192.0.2.7"
    assert serve.client_address("203.0.113.5", "192.0.2.7") == "203.0.113.5"


def test_tab_close_beacon_is_accepted_with_the_xsrf_cookie(capped):
    """The page sets the _xsrf cookie; the page's beforeunload beacon (FormData _xsrf=<cookie>,
    POST /voila/api/shutdown/<id>) then shuts the kernel down (it got 403 without it)."""
    wait_for(lambda: page_kernels(capped) <= 0, 30, "earlier page kernels to end")
    status, headers, html = request(capped, "/voila/render/plain.ipynb", {"X-Real-IP": "198.51.100.1"})
    assert status == 200
    kid = kernel_id(html)
    cookies = re.findall(r"(?:^|, )([\w-]+)=([^;]*)", headers.get("set-cookie", ""))
    xsrf = dict(cookies).get("_xsrf")
    assert xsrf, headers.get("set-cookie")
    cookie = "; ".join(f"{k}={v}" for k, v in cookies)
    assert kid in kernel_processes(capped)
    boundary = "----survey"
    body = f'--{boundary}\r\nContent-Disposition: form-data; name="_xsrf"\r\n\r\n{xsrf}\r\n--{boundary}--\r\n'
    parts = urlsplit(capped.base)
    c = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    c.request("POST", f"/voila/api/shutdown/{kid}", body=body,
              headers={"Cookie": cookie, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    r = c.getresponse()
    r.read()
    assert r.status == 204
    wait_for(lambda: kid not in kernel_processes(capped), 15, "the kernel to end")


def test_dead_preheated_kernels_are_replaced(capped):
    """Preheated kernels killed while waiting (a crash, the OOM killer) leave the pool and are
    replaced: the next visitor gets a working page, not a dead kernel."""
    # earlier page kernels gone and the pool refilled (a refill starts --fill-delay 5 s after use)
    def full_pool():
        k = kernel_processes(capped)
        return k if len(k) == 3 else None

    wait_for(full_pool, 60, "a full pool of 3")
    time.sleep(3)  # the refill has run its notebook
    pooled = wait_for(full_pool, 60, "a full pool of 3")
    for pid in pooled.values():
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: len(set(kernel_processes(capped)) - set(pooled)) == 3, 90, "3 new pooled kernels")
    status, _, html = request(capped, "/voila/render/plain.ipynb", {"X-Real-IP": "198.51.100.9"})
    assert status == 200 and "PAGE-OK" in html
    assert kernel_id(html) not in pooled
    assert "KernelRestarter: restarting kernel" not in log(capped)


# ---------------------------------------------------------------------------------------------
# culling never hands out a culled kernel
# ---------------------------------------------------------------------------------------------
def test_preheated_kernel_older_than_the_cull_timeout_survives_handover(pub, dashboards):
    """A pooled kernel idle for longer than --cull-idle-timeout (3 s) is not culled while in
    the pool, and when a visitor takes it the idle time starts again: it is still there 2 s
    later (before, the next culling pass, 1 s later, shut it down under the page)."""
    with start(pub, dashboards, "--pool-size", "1", "--cull-idle-timeout", "3", "--cull-interval", "1") as srv:
        wait_for(lambda: len(kernel_processes(srv)) == 3, 120, "the pool")
        pooled = set(kernel_processes(srv))
        time.sleep(5)  # the pool is older than the cull timeout
        assert set(kernel_processes(srv)) == pooled, "a pooled kernel was culled"
        status, _, html = request(srv, "/voila/render/plain.ipynb")
        assert status == 200 and "PAGE-OK" in html
        kid = kernel_id(html)
        assert kid in pooled, "the page did not get the pooled kernel"
        time.sleep(2)
        assert kid in kernel_processes(srv), "the visitor's kernel was culled right after the hand-over"
        assert request(srv, f"/api/kernels/{kid}")[0] == 200
        assert not [line for line in log(srv).splitlines() if "Culling" in line and kid in line]


# ---------------------------------------------------------------------------------------------
# per-kernel limits: memory and comms
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def limited(pub, dashboards):
    with start(pub, dashboards, "--pool-size", "0", "--kernel-memory-mb", "900", "--max-comms", "5",
               "--allow-host", "dash.example.org") as srv:
        yield srv


def test_kernel_memory_is_bounded(limited):
    status, _, html = request(limited, "/voila/render/limits.ipynb")
    assert status == 200
    assert f"RLIMIT_AS {900 * 1024 * 1024}" in html
    assert "MEMORY-REFUSED" in html and "ALLOCATED" not in html
    kid = kernel_id(html)
    assert kid in kernel_processes(limited), "the kernel survives the refused allocation"


def rss_mb(pid) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_browser_comms_are_capped(limited):
    """A client opening 200 comms (each with a 256 KB payload) gets 5 (--max-comms 5); the
    kernel's memory grows by less than 10 MB; closing comms frees places again."""
    status, _, html = request(limited, "/voila/render/limits.ipynb")
    kid = kernel_id(html)
    pid = kernel_processes(limited)[kid]
    ws = KernelSocket(limited, kid)
    try:
        assert ws.comms() == {}
        before = rss_mb(pid)
        ids = [uuid.uuid4().hex for _ in range(200)]
        for cid in ids:
            ws.send("comm_open", {"comm_id": cid, "target_name": "echo", "data": {"blob": "x" * 262144}})
        comms = ws.comms()
        assert len(comms) == 5 and set(comms) <= set(ids), len(comms)
        grown = rss_mb(pid) - before
        assert grown < 10, f"kernel grew by {grown:.1f} MB"
        # closing two frees two places
        for cid in list(comms)[:2]:
            ws.send("comm_close", {"comm_id": cid, "data": {}})
        for cid in [uuid.uuid4().hex for _ in range(10)]:
            ws.send("comm_open", {"comm_id": cid, "target_name": "echo", "data": {}})
        assert len(ws.comms()) == 5
    finally:
        ws.close()
    assert "comm_open refused: the browser already has 5 comms open in this kernel (limit 5)" in log(limited)


def test_widget_errors_send_no_traceback_to_the_client(limited, dashboards):
    """A Button callback and a value observer that raise: the client receives one generic line
    (ipywidgets' callback path calls IPython's showtraceback), never the exception text, a
    traceback or a server path; the server log has the full traceback."""
    status, _, html = request(limited, "/voila/render/widgets.ipynb")
    assert status == 200
    kid = kernel_id(html)
    ws = KernelSocket(limited, kid)
    try:
        comms = ws.comms()
        widgets = [c for c, v in comms.items() if v.get("target_name") == "jupyter.widget"]
        assert widgets
        for cid in widgets:  # a click on every widget (the Button reacts), a new value for every one
            ws.send("comm_msg", {"comm_id": cid, "data": {"method": "custom", "content": {"event": "click"}}})
            ws.send("comm_msg", {"comm_id": cid, "data": {"method": "update", "state": {"index": 1},
                                                          "buffer_paths": []}})
        ws.drain(4)
    finally:
        ws.close()
    frames = "\n".join(ws.received)
    assert serve_error_text() in frames, "the click callback error did not reach the client at all"
    for leak in (WIDGET_SECRET, "Traceback", "site-packages", str(dashboards), "RuntimeError", "ValueError",
                 'File \\"'):
        assert leak not in frames, leak
    server_log = log(limited)
    assert f"ValueError: {WIDGET_SECRET} click" in server_log
    assert f"RuntimeError: {WIDGET_SECRET} observer beta" in server_log


def serve_error_text() -> str:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "survey_kernel_launch", serve.TEMPLATE_ROOT / "kernels" / "python3" / "launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ERROR_TEXT


# ---------------------------------------------------------------------------------------------
# Host header, malformed paths
# ---------------------------------------------------------------------------------------------
def test_host_allow_list(limited):
    port = urlsplit(limited.base).port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "dash.example.org", f"DASH.example.org:{port}"):
        assert request(limited, "/", {"Host": host})[0] == 200, host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "dash.example.org.evil.example",
                 "localhost.", "[::2]"):
        for path in ("/", "/voila/render/plain.ipynb", "/voila/static/voila.js", "/voila/files/logo.png",
                     "/api/kernels/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/channels"):
            status, _, body = request(limited, path, {"Host": host})
            assert status == 400 and "host name" in body, (host, path, status)
    # a websocket upgrade with a rebinding Host header is refused before any kernel is touched
    status, _, _ = request(limited, "/api/kernels/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee/channels",
                           {"Host": "evil.example", "Upgrade": "websocket", "Connection": "Upgrade",
                            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"})
    assert status == 400


MALFORMED = [
    "/voila/templates/x", "/voila/templates/lab/notstatic/a", "/voila/templates/lab/static/../../../../etc/passwd",
    "/voila/templates/../static/x", "/voila/templates/lab/static/", "/voila/templates/%2e%2e/static/x",
    "/voila/templates/lab/static/%00", "/voila/templates/lab/static/%ff",
    "/voila/static/../../etc/passwd", "/voila/static/%2e%2e/%2e%2e/x", "/voila/static/%00",
    "/voila/files/%00.png", "/voila/files/../../etc/x.png", "/voila/files/%2e%2e/x.png", "/voila/files/",
    "/voila/files/nope.png", "/voila/files/logo.png/x.png",
    "/voila/render/nope.ipynb", "/voila/render/%00.ipynb", "/voila/render/" + "%ff" * 10,
    "/voila/tree/../../", "/voila/tree/nope", "/voila/tree/%00", "/voila/tree/%ff%fe",
    "/voila/api/themes/..%2f..%2fx", "/voila/api/themes/", "/voila/api/themes/%00",
    "/voila/labextensions/../x", "/voila/labextensions/%00", "/voila/labextensions/",
    "/api/kernels/not-a-uuid", "/api/kernels/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    "/voila/api/contents/../../etc", "/voila/api/contents/%00", "/voila/api/shutdown/x",
    "/voila/query/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "/login", "/logout", "/" + "a" * 5000, "/nope/%00",
]


def test_malformed_paths_get_clean_4xx(limited):
    before = len(limited.lines)
    for path in MALFORMED:
        status, _, body = request(limited, path)
        assert 300 <= status < 500, (path, status)
        assert "Traceback" not in body and "site-packages" not in body, path
        assert len(body) < 2000, (path, len(body))
    status, _, _ = request(limited, "/voila/api/shutdown/x", method="POST")
    assert status == 403
    time.sleep(0.5)
    new = "".join(limited.lines[before:])
    assert "Traceback" not in new and "Uncaught exception" not in new, new[-3000:]
    assert not re.search(r"\b5\d\d (GET|POST) ", new), new[-3000:]


# ---------------------------------------------------------------------------------------------
# no token in kernels, no unauthenticated route leaks
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tokened(pub, dashboards):
    with start(pub, dashboards, "--pool-size", "1", "--token", TOKEN, "--fill-delay", "0") as srv:
        wait_for(lambda: len(kernel_processes(srv)) == 3, 120, "the pool")
        yield srv


def voila_routes() -> list[str]:
    """The route patterns SurveyVoila registers (built as the server builds them)."""
    cfg = serve.ServeConfig(dashboards=Path(__file__).resolve().parents[1] / "dashboards", outputs=Path("/tmp"),
                            token=TOKEN, pool_size=0)
    old = signal.getsignal(signal.SIGTERM)
    app = serve.survey_voila_class()()
    try:
        app.initialize(serve.voila_argv(cfg))
    finally:
        signal.signal(signal.SIGTERM, old)
    app.init_settings()
    return [h[0] for h in app.init_handlers()]


def no_token_in_kernels(srv):
    for pid in kernel_processes(srv).values():
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert TOKEN.encode() not in environ, pid


def test_token_never_reaches_a_kernel(tokened, pub, dashboards):
    """Pages loaded with ?token=...: neither a pooled kernel, nor the refill started while the
    visitor's request was at hand, nor a cold kernel (no pool) has the token in its environment
    (Voilà put the request URL, token included, in both)."""
    q = f"?token={TOKEN}"
    cold_pages = 0
    for _ in range(4):  # on a loaded machine the pooled kernel may still be rendering: Voilà then
        # serves a fresh kernel; the token must be in neither, and a pooled page must come
        status, _, env = request(tokened, "/voila/render/plain.ipynb" + q)
        env = html.unescape(env)
        assert status == 200 and "PAGE-OK" in env
        assert TOKEN not in env
        if "('VOILA_PREHEAT', 'True')" in env:
            break
        cold_pages += 1
        time.sleep(5)
    assert "('VOILA_PREHEAT', 'True')" in env
    wait_for(lambda: len(kernel_processes(tokened)) == 4 + cold_pages, 60, "the pool refill")
    no_token_in_kernels(tokened)
    with start(pub, dashboards, "--pool-size", "0", "--token", TOKEN) as cold:
        status, _, env = request(cold, "/voila/render/plain.ipynb" + q)
        env = html.unescape(env)
        assert status == 200 and "PAGE-OK" in env and "('VOILA_PREHEAT', 'False')" in env
        assert re.search(r"\('VOILA_REQUEST_URL', 'http://127\.0\.0\.1:\d+/voila/render/plain\.ipynb'\)", env), env
        assert "('QUERY_STRING', '')" in env
        assert TOKEN not in env
        no_token_in_kernels(cold)


def test_no_route_answers_without_the_token_with_anything_internal(tokened):
    """Every route the server registers, requested without the token: none returns the token,
    a kernel id, notebook output or sources; /voila/query/<kernel id> is not served at all."""
    status, _, html = request(tokened, f"/voila/render/plain.ipynb?token={TOKEN}")
    assert status == 200
    kid = kernel_id(html)
    samples = {
        r"/api/kernels/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)": [f"/api/kernels/{kid}"],
        r"/api/kernels/(?P<kernel_id>\w+-\w+-\w+-\w+-\w+)/channels": [f"/api/kernels/{kid}/channels"],
        r"/voila/templates/(.*)": ["/voila/templates/lab/static/voila.js", "/voila/templates/survey-lab/conf.json"],
        r"/voila/static/(.*)": ["/voila/static/voila.js", "/voila/static/"],
        r"/voila/api/themes/(.*)": ["/voila/api/themes/@jupyterlab/theme-light-extension/index.css"],
        r"/voila/api/shutdown/(.*)": [f"/voila/api/shutdown/{kid}"],
        r"/voila/labextensions/(.*)": ["/voila/labextensions/@jupyter-widgets/jupyterlab-manager/package.json"],
        r"/voila/files/(.*)": ["/voila/files/logo.png", "/voila/files/plain.ipynb", "/voila/files/data.csv"],
        r"/": ["/"],
        r"/voila/tree(?P<path>(?:(?:/[^/]+)+|/?))": ["/voila/tree", "/voila/tree/plain.ipynb"],
        r"/voila/render/(.*)": ["/voila/render/plain.ipynb", "/voila/render/widgets.ipynb"],
        r"/voila/api/contents(?P<path>(?:(?:/[^/]+)+|/?))": ["/voila/api/contents", "/voila/api/contents/plain.ipynb"],
        r"/login": ["/login"],
        r"/.*": ["/voila/query/" + kid, "/voila/execution/" + kid],
    }
    routes = voila_routes()
    unknown = [r for r in routes if r not in samples]
    assert not unknown, f"routes without a sample request in this test: {unknown}"
    assert not any("/voila/query" in r for r in routes)
    served_public = {"/voila/files/logo.png"}  # images beside the dashboards are public, by design
    for route in routes:
        for path in samples[route]:
            for method in ("GET", "POST"):
                status, headers, body = request(tokened, path, method=method)
                text = body + json.dumps(headers)
                assert TOKEN not in text, (method, path)
                assert kid not in text, (method, path, status)
                assert "PAGE-OK" not in text and "kernel env" not in text and "register_target" not in text, path
                if route in (r"/voila/render/(.*)", r"/voila/tree(?P<path>(?:(?:/[^/]+)+|/?))", r"/",
                             r"/voila/api/contents(?P<path>(?:(?:/[^/]+)+|/?))") or route.startswith("/api/kernels"):
                    assert status in (302, 403, 404, 405), (method, path, status)
                if route == r"/.*":
                    assert status == 404, (path, status)
                if path in ("/voila/files/data.csv", "/voila/files/plain.ipynb"):
                    assert status == (403 if method == "GET" else 405), (method, path, status)
                if status == 200 and route == r"/voila/files/(.*)":
                    assert path in served_public
    # the token is never logged (request lines are scrubbed), but in the URL printed at start
    assert TOKEN not in "".join(line for line in tokened.lines if not line.startswith("dashboards: "))


# ---------------------------------------------------------------------------------------------
# in Chromium: closing the tab frees the kernel; a page whose kernel is gone says so
# ---------------------------------------------------------------------------------------------
BANNER = "#svy-session-expired"
EXPIRED = {"en": "This dashboard session has expired. Reload the page to continue.",
           "fr": "La session de ce tableau de bord a expiré. Rechargez la page pour continuer.",
           "es": "La sesión de este tablero ha caducado. Vuelva a cargar la página para continuar."}


@pytest.fixture(scope="module")
def chromium():
    with chromium_browser() as browser:
        yield browser


def open_widgets_page(browser, srv, locale="en-US"):
    ctx = browser.new_context(locale=locale)
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(srv.base + "voila/render/widgets.ipynb")
    page.wait_for_selector(".widget-dropdown select")
    page.wait_for_function("() => document.querySelector('.widget-dropdown select').options.length === 3")
    return ctx, page, errors


@pytest.fixture(scope="module")
def browser_server(pub, dashboards):
    """No pool (a page's kernel is the only one), culling and the orphan timeout far away."""
    with start(pub, dashboards, "--pool-size", "0", "--orphan-timeout", "300") as srv:
        yield srv


def test_closing_the_tab_shuts_its_kernel_down(chromium, browser_server):
    ctx, page, errors = open_widgets_page(chromium, browser_server)
    try:
        kernels = wait_for(lambda: kernel_processes(browser_server), 30, "the page's kernel")
        assert len(kernels) == 1
        t0 = time.monotonic()
        page.close(run_before_unload=True)
        wait_for(lambda: not kernel_processes(browser_server), 20, "the kernel to end after the tab closed")
        took = time.monotonic() - t0
    finally:
        ctx.close()
    assert took < 20  # the orphan timeout is 300 s: the tab's beacon did it
    assert re.search(r"204 POST /voila/api/shutdown/[0-9a-f-]{36}", log(browser_server)) or \
        "Kernel shutdown: " + next(iter(kernels)) in log(browser_server)
    assert "'_xsrf' argument missing" not in log(browser_server)
    assert not errors, errors


def test_killed_kernel_shows_the_expired_banner(chromium, browser_server):
    """The page's kernel process is killed (as the OOM killer or a crash would): the page shows
    the "session expired, reload" banner; the dead kernel is removed, not restarted."""
    wait_for(lambda: not kernel_processes(browser_server), 30, "earlier kernels to end")
    ctx, page, _ = open_widgets_page(chromium, browser_server)
    try:
        (kid, pid), = wait_for(lambda: kernel_processes(browser_server), 30, "the page's kernel").items()
        assert page.locator(BANNER).count() == 0
        os.kill(pid, signal.SIGKILL)
        page.wait_for_selector(BANNER, state="visible", timeout=30_000)
        assert page.inner_text(BANNER + " .svy-expired-text").strip() == EXPIRED["en"]
        page.reload()  # the reload gets a new kernel and no banner
        page.wait_for_selector(".widget-dropdown select")
        assert page.locator(BANNER).count() == 0
        assert kid not in kernel_processes(browser_server)
    finally:
        ctx.close()
    assert "KernelRestarter: restarting kernel" not in log(browser_server)


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_culled_kernel_shows_the_expired_banner(chromium, pub, dashboards, lang):
    """An open tab whose kernel is culled (--cull-idle-timeout 4 s, tabs left open included):
    the banner appears in the browser's language, and changing a dropdown afterwards leaves it
    there (before, the dropdown changed with no effect and no message)."""
    with start(pub, dashboards, "--pool-size", "0", "--cull-idle-timeout", "4", "--cull-interval", "1") as srv:
        ctx, page, _ = open_widgets_page(chromium, srv, locale={"en": "en-US", "fr": "fr-FR"}[lang])
        try:
            kid = next(iter(wait_for(lambda: kernel_processes(srv), 30, "the page's kernel")))
            page.wait_for_selector(BANNER, state="visible", timeout=40_000)
            wait_for(lambda: kid not in kernel_processes(srv), 15, "the culled kernel to end")
            assert re.search(rf"Culling '\w+' kernel '\w+' \({kid}\)", log(srv))
            assert page.inner_text(BANNER + " .svy-expired-text").strip() == EXPIRED[lang]
            page.select_option(".widget-dropdown select", label="gamma")
            time.sleep(1)
            assert page.locator(BANNER).is_visible()
        finally:
            ctx.close()
