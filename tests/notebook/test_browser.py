"""A real browser: JupyterLab headless, Debian's Chromium driven by Playwright, the observation notebook run in it.

Checks that the ClusterView widget shows the workers and the actor, and what
the task stream draws: a time axis with labels, the functions in different
colours named in a legend, a task running (held until the test lets it go)
drawn growing, pause freezing the picture while spans still arrive (work the
test starts while paused shows only on resume), and text that takes the
colours of both JupyterLab themes. Saves screenshots
(``artifacts/observation-notebook.png``, ``task-stream-*.png``, or in ``$NEXUS_ARTIFACTS``),
and on a failure what the page showed: ``observation-notebook-failure.png``
and ``.txt`` (the page's text, each cell's source and outputs, the kernels
and sessions from the REST API, the server's log, how long each step took).

Every step waits for a condition, never for a time: the notebook's kernel
connected and idle (JupyterLab clears, without a word, a cell run while the
session has no kernel yet: key presses sent too early were lost that way, and
this test waited for a view that no cell would ever draw), each cell run with
JupyterLab's own ``notebook:run-cell`` command (``window.jupyterapp``, as
JupyterLab's Galata tests do) and its execution finished, an error in a cell
reported at once with its traceback. The timeouts are hang guards only.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = "observation.ipynb"

pytestmark = [
    pytest.mark.timeout(300),  # a hang guard: a cold start on a loaded 2-core machine took under 2 minutes
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("NEXUS_REQUIRE_BROWSER"),
        reason="needs Debian's chromium (.ci/run installs it: apt-get install chromium)",
    ),
]

# Hang guards (ms), each far above what its step takes on a cold, loaded machine (at most 14 s, 14 s, 6 s and 0.3 s
# seen there), and small enough that a hang is reported by its own message before pytest's timeout strikes.
PAGE_LOAD = 150_000
KERNEL_READY = 150_000
CELL_RUN = 120_000
VIEW_UPDATE = 60_000

# Work the test starts while the task stream is paused: a function of a name no span had before,
# so its spans appearing in the view (on resume) is the view gaining them, however long the notebook's work lasted.
MORE_WORK = "after_the_first_count"
MORE_CALLS = 20
MORE_CODE = f"""
@nexus.remote
def {MORE_WORK}(i):
    time.sleep(0.02)
    return i

assert nexus.get([{MORE_WORK}.remote(i) for i in range({MORE_CALLS})]) == list(range({MORE_CALLS}))
"""


# Helpers in the page: the notebook panel of NOTEBOOK in the running JupyterLab (window.jupyterapp, there with
# LabApp.expose_app_in_browser), and the elements matching a selector in the node of its cell i.
def page_helpers(notebook: str) -> str:
    """The helpers put in the page: the panel of ``notebook`` (JupyterLab's, and Notebook 7's: its shell has
    widgets('main') too), and the elements matching a selector in the node of its cell i."""
    return f"""
window.__nexusPanel = () => {{
    const app = window.jupyterapp;
    if (!app || !app.shell) return null;
    for (const w of app.shell.widgets('main')) {{
        if (w.context && w.context.path === {notebook!r} && w.content && w.sessionContext) return w;
    }}
    return null;
}};
window.__nexusInCell = (i, selector) => [...window.__nexusPanel().content.widgets[i].node.querySelectorAll(selector)];
"""


_HELPERS = page_helpers(NOTEBOOK)

_KERNEL_READY = """() => {
    const panel = window.__nexusPanel && window.__nexusPanel();
    if (!panel || !panel.context.isReady || !panel.sessionContext.isReady) return false;
    const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
    return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""

# Starts running cell i with JupyterLab's command; the outcome lands in window.__nexusRuns[i].
_RUN_CELL = """(i) => {
    const panel = window.__nexusPanel(), notebook = panel.content;
    window.jupyterapp.shell.activateById(panel.id);  // the command runs in the current notebook
    notebook.deselectAll();
    notebook.activeCellIndex = i;
    if (notebook.activeCellIndex !== i) throw new Error(`cell ${i} could not be selected`);
    const run = (window.__nexusRuns = window.__nexusRuns || {})[i] = {done: false, ok: null, error: null};
    window.jupyterapp.commands.execute('notebook:run-cell').then(
        (ok) => { run.ok = ok; run.done = true; },
        (err) => { run.error = String(err); run.done = true; },
    );
}"""

_CELLS = """() => window.__nexusPanel().content.widgets.map((cell) => ({
    type: cell.model.type,
    source: cell.model.sharedModel.getSource(),
    count: cell.model.type === 'code' ? cell.model.executionCount : null,
    state: cell.model.type === 'code' ? cell.model.executionState : null,
    outputs: cell.model.type === 'code' ? cell.model.outputs.toJSON() : [],
}))"""

# Runs code in the notebook's kernel (not in a cell); the reply lands in window.__nexusMore.
_EXECUTE = """(code) => {
    const kernel = window.__nexusPanel().sessionContext.session.kernel;
    const more = window.__nexusMore = {done: false, reply: null, errors: []};
    const future = kernel.requestExecute({code, store_history: false});
    future.onIOPub = (msg) => {
        if (msg.header.msg_type === 'error' || (msg.header.msg_type === 'stream' && msg.content.name === 'stderr')) {
            more.errors.push(msg.content);
        }
    };
    future.done.then((reply) => { more.reply = reply.content; more.done = true; },
                     (err) => { more.reply = {status: 'error', evalue: String(err)}; more.done = true; });
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lab:
    """A running JupyterLab server: its address, token, log and REST API."""

    def __init__(self, url: str, token: str, log: Path, started_in: float) -> None:
        self.url, self.token, self.log, self.started_in = url, token, log, started_in

    def api(self, path: str) -> object:
        with urllib.request.urlopen(f"{self.url}/api/{path}?token={self.token}", timeout=10) as answer:
            return json.load(answer)


@pytest.fixture()
def lab(tmp_path):
    shutil.copy(ROOT / "notebooks" / "04-live-observation.ipynb", tmp_path / NOTEBOOK)
    config = tmp_path / ".jupyter"
    # No "get notified about Jupyter news?" toast over the notebook in the screenshots.
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), secrets.token_hex(16)
    lab_bin = Path(sys.executable).with_name("jupyter-lab")
    log = tmp_path / "jupyterlab.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(lab_bin),
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={tmp_path}",
                "--LabApp.news_url=",
                "--ServerApp.open_browser=False",
                "--LabServerApp.extra_labextensions_path=[]",
                "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the test runs cells with JupyterLab's commands
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(tmp_path / ".runtime")),
        )
    url = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    try:
        deadline = start + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start (exit code {proc.poll()}):\n{_tail(log)}") from None
                time.sleep(0.25)
        print(f"JupyterLab's server answered in {time.monotonic() - start:.1f} s", flush=True)
        yield Lab(url, token, log, time.monotonic() - start)
    finally:
        proc.terminate()  # the server shuts its kernels down, and the kernel its cluster
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _output_text(output: dict) -> str:
    if output.get("output_type") == "error":
        return _ANSI.sub("", "\n".join(output.get("traceback") or [f"{output.get('ename')}: {output.get('evalue')}"]))
    if output.get("output_type") == "stream":
        text = output.get("text", "")
        return "".join(text) if isinstance(text, list) else str(text)
    data = output.get("data", {})
    text = data.get("text/plain", "")
    return "".join(text) if isinstance(text, list) else str(text)


class Run:
    """Drives the notebook in the page; remembers how long each step took for the report."""

    FAILURE = "observation-notebook-failure"  # the names of its failure's report (.png, .txt)

    def __init__(self, lab: Lab) -> None:
        self.page: Any = None
        self.lab = lab
        self.t0 = self.last = time.monotonic()
        self.steps: list[tuple[str, float]] = [("server start", lab.started_in)]

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.steps.append((name, now - self.last))
        self.last = now
        print(f"[{now - self.t0:6.1f} s] {name} (+{self.steps[-1][1]:.1f} s)", flush=True)

    def timings(self) -> str:
        total = self.lab.started_in + time.monotonic() - self.t0
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.steps) + f"; total {total:.1f} s"

    def wait(self, what: str, predicate: str, arg: object = None, timeout: float = VIEW_UPDATE) -> None:
        """Wait for a JS predicate; on a timeout, say what did not happen."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        try:
            self.page.wait_for_function(predicate, arg=arg, timeout=timeout, polling=250)
        except PlaywrightTimeout:
            raise AssertionError(f"{what}: not within {timeout / 1000:.0f} s") from None

    def cells(self) -> list[dict]:
        return self.page.evaluate(_CELLS)

    def _cells_report(self) -> list[dict]:
        """The cells, read with a timeout (the page may be what is stuck)."""
        handle = self.page.wait_for_function(f"() => ({{cells: ({_CELLS})()}})", timeout=10_000)
        return handle.json_value()["cells"]

    def run_cell(self, i: int) -> dict:
        """Run cell i and wait for its execution to finish; a cell that fails fails the test with its traceback."""
        self.page.evaluate(_RUN_CELL, i)
        source = (self.cells()[i]["source"].splitlines() or [""])[0]
        self.wait(f"cell {i} ({source!r}) to finish running", "(i) => window.__nexusRuns[i].done", i, CELL_RUN)
        run = self.page.evaluate("(i) => window.__nexusRuns[i]", i)
        cell = self.cells()[i]
        errors = [_output_text(o) for o in cell["outputs"] if o.get("output_type") == "error"]
        if errors:
            raise AssertionError(f"cell {i} ({source!r}) failed:\n" + "\n".join(errors))
        if run["error"] is not None:
            raise AssertionError(f"running cell {i} ({source!r}) failed in JupyterLab: {run['error']}")
        if cell["type"] == "code" and cell["count"] is None:
            raise AssertionError(f"cell {i} ({source!r}) was not executed (no execution count)")
        self.step(f"cell {i}")
        return cell

    def execute(self, code: str) -> None:
        """Run code in the notebook's kernel, outside the cells, and wait for it."""
        self.page.evaluate(_EXECUTE, code)
        self.wait("the test's own work to finish in the kernel", "() => window.__nexusMore.done", timeout=CELL_RUN)
        more = self.page.evaluate("() => window.__nexusMore")
        if more["reply"]["status"] != "ok":
            errors = [_ANSI.sub("", "\n".join(e.get("traceback") or [e.get("text", "")])) for e in more["errors"]]
            raise AssertionError("the test's own work failed in the kernel:\n" + "\n".join(errors) + f"\n{more['reply']}")

    def _cells_text(self) -> str:
        return "\n".join(
            f"--- cell {i} [{c['count']}] {c['state']}\n{c['source']}\n>>>\n" + "\n".join(_output_text(o) for o in c["outputs"])
            for i, c in enumerate(self._cells_report())
        )

    def report(self, shots: Path, error: BaseException) -> str:
        """Save what the page showed (screenshot, text, cells, kernel, server log): the next failure says what it saw."""
        png, txt = shots / f"{self.FAILURE}.png", shots / f"{self.FAILURE}.txt"
        parts = [f"failure: {type(error).__name__}: {error}", f"steps: {self.timings()}"]
        probes: list[tuple[str, Callable[[], str]]] = [
            ("kernels (REST)", lambda: json.dumps(self.lab.api("kernels"), indent=1)),
            ("sessions (REST)", lambda: json.dumps(self.lab.api("sessions"), indent=1)),
        ]
        if self.page is not None:  # each with a timeout of its own: after pytest's, nothing else stops a stuck call
            probes[:0] = [("screenshot", lambda: self.page.screenshot(path=str(png), full_page=True, timeout=15_000) and str(png))]
            probes += [("cells", self._cells_text), ("page text", lambda: self.page.inner_text("body", timeout=15_000))]
        for name, probe in probes:
            try:
                parts.append(f"== {name} ==\n{probe()}")
            except Exception as exc:  # a page that broke still leaves the rest of the report
                parts.append(f"== {name} ==\n(unavailable: {type(exc).__name__}: {exc})")
        parts.append(f"== JupyterLab's log (tail) ==\n{_tail(self.lab.log, 200)}")
        txt.write_text("\n\n".join(parts))
        return f"what the page showed: {png if png.exists() else '(no screenshot)'} and {txt}; steps: {self.timings()}"


def in_chromium(run: Run, drive: Callable[[Run, Any, Path], None]) -> None:
    """Drive the page in Debian's Chromium (headless); a failure is reported with what the page showed."""
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("NEXUS_ARTIFACTS", ROOT / "artifacts"))
    shots.mkdir(parents=True, exist_ok=True)
    for old in (f"{run.FAILURE}.png", f"{run.FAILURE}.txt"):
        (shots / old).unlink(missing_ok=True)  # an earlier run's report must not pass for this one's
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = run.page = browser.new_page(viewport={"width": 1400, "height": 1800})
            run.step("Chromium started")
            try:
                drive(run, page, shots)
            except BaseException as error:  # an assertion, a Playwright error, or pytest-timeout's hang guard
                where = run.report(shots, error)
                if isinstance(error, AssertionError):
                    raise AssertionError(f"{error}\n{where}") from None
                print(where, flush=True)
                raise
        finally:
            browser.close()


def test_the_views_update_live_in_jupyterlab(lab):
    in_chromium(Run(lab), _drive)


def open_notebook(run: Run, page: Any, helpers: str, url: str, app: str) -> None:
    """Open the notebook at ``url`` in ``app`` (JupyterLab, Notebook 7) and wait for its kernel to be idle."""
    page.add_init_script(helpers)
    page.goto(f"{run.lab.url}{url}?token={run.lab.token}", timeout=PAGE_LOAD)
    run.wait(f"{app} to open the notebook", "() => !!(window.__nexusPanel && window.__nexusPanel())", timeout=PAGE_LOAD)
    run.step(f"{app} open")
    # A cell run before the kernel is connected is dropped (cleared, without a word): wait for it to be, and idle.
    run.wait("the notebook's kernel to start, connect and be idle", _KERNEL_READY, timeout=KERNEL_READY)
    run.step("kernel idle")


def _drive(run: Run, page, shots: Path) -> None:
    open_notebook(run, page, _HELPERS, f"/lab/tree/{NOTEBOOK}", "JupyterLab")

    cells = run.cells()
    cell_of = {
        key: next(i for i, c in enumerate(cells) if key in c["source"])
        for key in ("ClusterView()", "TaskStream(", "get(refs)", "progress(")
    }
    cluster, stream = cell_of["ClusterView()"], cell_of["TaskStream("]
    # The live widgets' HTML (ipywidgets.HTML), not the static text/html a notebook keeps for where widgets do not run.
    cluster_view = "(i) => window.__nexusInCell(i, '.widget-html-content .nexus-cluster').map((e) => e.textContent).join('')"
    view = Stream(run, stream)

    for i in range(len(cells)):
        run.run_cell(i)
        if i == cluster:
            run.wait(
                "the ClusterView widget to show the workers and the Greeter actor",
                f"(i) => ['worker-1', 'worker-2', 'Greeter'].every((w) => ({cluster_view})(i).includes(w))",
                cluster,
            )
            run.step("ClusterView shows the workers and the actor")
        elif i == stream:
            run.wait("the task stream to be shown", f"(i) => !!({STREAM})(i)", stream)
        elif i == cell_of["get(refs)"]:
            view.wait("to draw the spans of the notebook's work", "Number(v.dataset.drawn) > 0")
            run.step("the task stream draws spans")

    text = page.evaluate(cluster_view, cluster)
    assert all(w in text for w in ("worker-1", "worker-2", "Greeter")), f"the ClusterView shows the workers and the actor: {text!r}"
    _check_the_picture(view)
    _check_running_work(run, view, shots)
    _check_pause(run, view)
    _check_progress(run, cell_of["progress("])
    _check_themes(run, view, shots, cluster)
    page.screenshot(path=str(shots / "observation-notebook.png"), full_page=True)
    print(f"steps: {run.timings()}", flush=True)


# The task stream's root in cell i, and what its canvas shows: which of the palette's colours its pixels have.
STREAM = "(i) => window.__nexusInCell(i, '.nexus-stream-view')[0]"
_PALETTE = "['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#ff9da7', '#9c755f', '#bab0ac', '#e15759']"
_COLOURS_DRAWN = f"""(v) => {{
    const canvas = v.querySelector('canvas');
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    const palette = {_PALETTE}.map((h) => [1, 3, 5].map((k) => parseInt(h.slice(k, k + 2), 16)));
    const found = new Set();
    for (let p = 0; p < pixels.length; p += 4) {{
        if (pixels[p + 3] !== 255) continue;
        palette.forEach((c, i) => {{ if (c[0] === pixels[p] && c[1] === pixels[p + 1] && c[2] === pixels[p + 2]) found.add(i); }});
    }}
    return [...found];
}}"""


class Stream:
    """The task stream in the page: reads of its root element (its data attributes say what it drew last)."""

    def __init__(self, run: Run, cell: int) -> None:
        self.run, self.cell = run, cell

    def eval(self, body: str) -> Any:
        return self.run.page.evaluate(f"(i) => {{ const v = ({STREAM})(i); return ({body}); }}", self.cell)

    def wait(self, what: str, condition: str, timeout: float = VIEW_UPDATE) -> None:
        self.run.wait(f"the task stream {what}", f"(i) => {{ const v = ({STREAM})(i); return !!v && ({condition}); }}", self.cell, timeout)

    def legend(self) -> list[str]:
        return self.eval("[...v.querySelectorAll('.nx-legend .nx-name')].map((e) => e.textContent)")

    def canvas(self) -> str:
        return self.eval("v.querySelector('canvas').toDataURL()")

    def shot(self, path: Path) -> None:
        handle = self.run.page.evaluate_handle(f"(i) => ({STREAM})(i)", self.cell)
        handle.as_element().screenshot(path=str(path))


def _check_the_picture(view: Stream) -> None:
    """A time axis with labels, a colour per function (named in the legend), a row per worker."""
    ticks = view.eval("[...v.querySelectorAll('.nx-tick')].map((e) => e.textContent)")
    assert len(ticks) >= 3 and all(re.fullmatch(r"-?\d+(\.\d)? s|-?\d+ ms|now", t) for t in ticks), f"axis labels: {ticks}"
    legend = view.legend()
    assert {"greet_all", "Greeter.hello", "square"} <= set(legend), f"the legend names each function and method: {legend}"
    drawn = view.eval(f"({_COLOURS_DRAWN})(v)")
    assert len(drawn) >= 2, f"spans of different functions are drawn in different colours: palette colours found {drawn}"
    rows = view.eval("[...v.querySelectorAll('.nx-row')].map((e) => e.textContent)")
    assert any(r.startswith("worker-1") for r in rows) and any("Greeter" in r for r in rows), f"a row per worker: {rows}"


HOLD = "held_until_the_test_says"


def _check_running_work(run: Run, view: Stream, shots: Path) -> None:
    """A task that runs until the test lets it go is drawn while it runs, growing; then as a finished span."""
    release = shots / f"release-{os.getpid()}"
    release.unlink(missing_ok=True)
    run.execute(
        f"""
import os as _os
@nexus.remote
def {HOLD}(path):
    while not _os.path.exists(path):
        time.sleep(0.01)
    return 1

held = {HOLD}.remote({str(release)!r})
"""
    )
    try:
        view.wait(
            f"to draw {HOLD} running", f"Number(v.dataset.running) >= 1 && v.querySelector('.nx-legend').textContent.includes('{HOLD}')"
        )
        first = view.eval("Number(v.dataset.runningWidth)")
        view.wait("to draw the running span growing", f"Number(v.dataset.runningWidth) > {first} + 2")
        run.step("the task stream draws a running span, growing")
        view.shot(shots / "task-stream-running.png")
    finally:
        release.write_text("go")
    view.wait(f"to draw {HOLD} finished", "Number(v.dataset.running) === 0")
    run.execute("assert nexus.get(held, timeout=60) == 1")
    release.unlink(missing_ok=True)


def _check_pause(run: Run, view: Stream) -> None:
    """Paused, the picture stays as it was while the work done meanwhile still arrives; resumed, it shows that work."""
    view.eval("v.querySelector('.nx-pause').click()")
    view.wait("to be paused", "v.dataset.paused === 'true'")
    run.execute("assert stream.paused")  # (the kernel's side knows: a static picture made now says so too)
    picture, spans, received = view.canvas(), view.eval("Number(v.dataset.spans)"), view.eval("Number(v.dataset.received)")
    assert MORE_WORK not in view.legend()
    run.execute(MORE_CODE)  # more work while paused: its spans are sent and kept, not drawn
    run.step("the test's own work ran, paused")
    view.wait(
        f"to keep receiving while paused ({spans} spans before)",
        f"Number(v.dataset.spans) >= {spans + MORE_CALLS} && Number(v.dataset.received) > {received}",
    )
    assert view.canvas() == picture, "the paused picture did not change while spans arrived"
    assert MORE_WORK not in view.legend(), "the paused picture does not show work done since the pause"
    view.eval("v.querySelector('.nx-pause').click()")
    view.wait(
        f"to show the work done while paused once resumed ({MORE_WORK})",
        f"v.querySelector('.nx-legend').textContent.includes('{MORE_WORK}')",
    )
    assert view.canvas() != picture
    run.step("pause froze the picture and kept the data")


_LUMINANCE = r"""(node) => {
    const [r, g, b] = getComputedStyle(node).color.match(/[\d.]+/g).map(Number);
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
}"""


def _check_progress(run: Run, cell: int) -> None:
    """The progress view has a row per function, each done once the notebook's work is."""
    rows = """(i) => Object.fromEntries(window.__nexusInCell(i, '.widget-html-content .nexus-progress-row')
        .map((r) => [r.dataset.function, [Number(r.dataset.done), Number(r.dataset.total)]]))"""
    run.wait(
        "the progress view to show greet_all and square done",
        f"(i) => {{ const r = ({rows})(i); return ['greet_all', 'square'].every((f) => r[f] && r[f][0] === r[f][1]); }}",
        cell,
    )
    counts = run.page.evaluate(rows, cell)
    assert counts["greet_all"] == [25, 25] and counts["square"] == [50, 50], f"progress per function: {counts}"
    text = run.page.evaluate("(i) => window.__nexusInCell(i, '.widget-html-content .nexus-progress')[0].textContent", cell)
    assert "done in" in text, f"the total line says how long it took: {text!r}"


def _shoot(run: Run, cell: int, selector: str, path: Path) -> None:
    handle = run.page.evaluate_handle(f"(i) => window.__nexusInCell(i, {selector!r})[0]", cell)
    handle.as_element().screenshot(path=str(path))


def _check_themes(run: Run, view: Stream, shots: Path, cluster: int) -> None:
    """Readable in both of JupyterLab's themes: the views' text takes the theme's colours (dark on light, light on
    dark)."""
    labels = f"(i) => [...({STREAM})(i).querySelectorAll('.nx-row, .nx-tick, .nx-name')].map({_LUMINANCE})"
    cells = f"(i) => window.__nexusInCell(i, '.widget-html-content .nexus-cluster td').map({_LUMINANCE})"
    light = run.page.evaluate(labels, view.cell)
    assert light and max(light) < 0.5, f"dark text in the light theme: luminances {light}"
    placed = run.page.evaluate(cells, cluster)
    assert placed and max(placed) < 0.6, f"the placement map's text is dark in the light theme: {placed}"
    view.shot(shots / "task-stream-light.png")
    _shoot(run, cluster, ".widget-html-content .nexus-cluster", shots / "placement-map-light.png")
    run.page.evaluate("() => window.jupyterapp.commands.execute('apputils:change-theme', {theme: 'JupyterLab Dark'})")
    run.wait("JupyterLab's dark theme", "() => document.body.dataset.jpThemeLight === 'false'", timeout=VIEW_UPDATE)
    run.wait("the task stream's text to take the dark theme's colours", f"(i) => Math.min(...({labels})(i)) > 0.5", view.cell)
    view.wait("to draw again in the dark theme", f"Number(v.dataset.frames) > {view.eval('Number(v.dataset.frames)')}")
    drawn = view.eval(f"({_COLOURS_DRAWN})(v)")
    assert len(drawn) >= 2, f"spans in colours in the dark theme too: {drawn}"
    view.shot(shots / "task-stream-dark.png")
    run.wait("the placement map's text to take the dark theme's colours", f"(i) => Math.min(...({cells})(i)) > 0.5", cluster)
    _shoot(run, cluster, ".widget-html-content .nexus-cluster", shots / "placement-map-dark.png")
    run.step("both themes")
