"""The views in Notebook 7: its server headless, Debian's Chromium driven by Playwright, a small notebook run in it.

Notebook 7 is built on JupyterLab's components in a shell of its own (one document a page, at
``/notebooks/<path>``), so the task stream and progress views must work there as they do in JupyterLab. The
test writes a notebook of its own: two functions run 30 times each, a ``TaskStream`` and a ``progress`` view
of their refs. It checks the task stream's picture (spans drawn in at least two colours, a legend naming both
functions, a time axis with labels) and that the progress rows of both functions reach done == total. Saves
``task-stream-notebook7.png`` (in ``$NEXUS_ARTIFACTS`` or ``artifacts/``) and, on a failure, what the page
showed: ``notebook7-failure.png`` and ``.txt``.

It runs cells as test_browser.py does, and waits the same way: for conditions (the kernel connected and idle,
each cell's execution finished, the views showing what they should), never for times; the timeouts are hang
guards only. The token is in the server's config file in the test's private config dir, not on the command line.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

from .test_browser import (
    CHROMIUM,
    STREAM,
    VIEW_UPDATE,
    Lab,
    Run,
    Stream,
    _free_port,
    _tail,
    in_chromium,
    open_notebook,
    page_helpers,
)

NOTEBOOK = "notebook7.ipynb"
CALLS = 30  # of each function

pytestmark = [
    pytest.mark.timeout(300),  # a hang guard, as test_browser.py's
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("NEXUS_REQUIRE_BROWSER"),
        reason="needs Debian's chromium (.ci/run installs it: apt-get install chromium)",
    ),
]

CELLS = [
    "import time, nexus\nnexus.init(num_cpus=2)",
    """@nexus.remote
def alpha(i):
    time.sleep(0.02)
    return i

@nexus.remote
def beta(i):
    time.sleep(0.02)
    return -i

stream = nexus.TaskStream(window=30)
stream""",
    f"refs = [alpha.remote(i) for i in range({CALLS})] + [beta.remote(i) for i in range({CALLS})]\nnexus.progress(refs)",
    f"assert nexus.get(refs) == list(range({CALLS})) + [-i for i in range({CALLS})]",
]
STREAM_CELL, PROGRESS_CELL = 1, 2

_HELPERS = page_helpers(NOTEBOOK)  # (Notebook 7: the one notebook of the page is in its main area)

# The live progress widget's rows (ipywidgets.HTML), not the static text/html kept for where widgets do not run:
# {function: [done, total]}, and the whole view's [done, total].
_PROGRESS = """(i) => {
    const view = window.__nexusInCell(i, '.widget-html-content .nexus-progress')[0];
    if (!view) return null;
    const rows = {};
    for (const r of view.querySelectorAll('.nexus-progress-row')) {
        rows[r.dataset.function] = [Number(r.dataset.done), Number(r.dataset.total)];
    }
    return {rows, all: [Number(view.dataset.done), Number(view.dataset.total)]};
}"""


class Notebook7Run(Run):
    """test_browser.py's Run, its failure report under names of this test's own."""

    FAILURE = "notebook7-failure"


@pytest.fixture()
def notebook7(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nbformat.write(nb, root / NOTEBOOK)
    config = tmp_path / ".jupyter"
    # No "get notified about Jupyter news?" toast over the notebook in the screenshot.
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port, token = _free_port(), secrets.token_hex(16)
    # The token in the config dir only this test reads (the command line is visible to every user of the machine).
    (config / "jupyter_server_config.json").write_text(json.dumps({"IdentityProvider": {"token": token}}))
    log = tmp_path / "notebook7.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("jupyter-notebook")),
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={port}",
                f"--ServerApp.root_dir={root}",
                "--ServerApp.open_browser=False",
                "--JupyterNotebookApp.extra_labextensions_path=[]",
                "--JupyterNotebookApp.expose_app_in_browser=True",  # window.jupyterapp: cells run with JupyterLab's commands
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
            except urllib.error.HTTPError as exc:  # it answers, but not to this token: the config file was not read
                raise RuntimeError(f"Notebook 7 refused the token from its config file ({exc}):\n{_tail(log)}") from None
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"Notebook 7 did not start (exit code {proc.poll()}):\n{_tail(log)}") from None
                time.sleep(0.25)
        print(f"Notebook 7's server answered in {time.monotonic() - start:.1f} s", flush=True)
        yield Lab(url, token, log, time.monotonic() - start)
    finally:
        proc.terminate()  # the server shuts its kernels down, and the kernel its cluster
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_views_work_in_notebook7(notebook7):
    in_chromium(Notebook7Run(notebook7), _drive)


def _drive(run: Run, page, shots: Path) -> None:
    open_notebook(run, page, _HELPERS, f"/notebooks/{NOTEBOOK}", "Notebook 7")

    view = Stream(run, STREAM_CELL)
    for i in range(len(CELLS)):
        run.run_cell(i)
        if i == STREAM_CELL:
            run.wait("the task stream to be shown", f"(i) => !!({STREAM})(i)", STREAM_CELL)
            run.step("the task stream shown")

    view.wait(
        "to draw spans of alpha and beta in at least two colours",
        "Number(v.dataset.drawn) > 0 && new Set((v.dataset.colours || '').split(' ').filter(Boolean)).size >= 2"
        " && ['alpha', 'beta'].every((f) => [...v.querySelectorAll('.nx-legend .nx-name')].some((e) => e.textContent === f))",
    )
    run.step("the task stream draws alpha and beta")
    ticks = view.eval("[...v.querySelectorAll('.nx-tick')].map((e) => e.textContent)")
    assert len(ticks) >= 3, f"the time axis has labels: {ticks}"
    legend = view.legend()
    assert {"alpha", "beta"} <= set(legend), f"the legend names both functions: {legend}"
    colours = view.eval("v.dataset.colours").split()
    assert len(set(colours)) >= 2, f"the two functions' spans are drawn in different colours: {colours}"
    view.shot(shots / "task-stream-notebook7.png")

    done = f"""(i) => {{
        const p = ({_PROGRESS})(i);
        return !!p && ['alpha', 'beta'].every((f) => p.rows[f] && p.rows[f][1] > 0 && p.rows[f][0] === p.rows[f][1])
            && p.all[1] === {2 * CALLS} && p.all[0] === p.all[1];
    }}"""
    run.wait("the progress view's rows of alpha and beta to reach done == total", done, PROGRESS_CELL, VIEW_UPDATE)
    run.step("the progress view shows all done")
    shown = page.evaluate(_PROGRESS, PROGRESS_CELL)
    assert shown["all"] == [2 * CALLS, 2 * CALLS], f"the progress view counts every ref, done: {shown}"
    print(f"steps: {run.timings()}", flush=True)
