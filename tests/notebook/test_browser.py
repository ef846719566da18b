"""A real browser: JupyterLab headless, Debian's Chromium driven by Playwright, the observation notebook run in it.

Checks that the ClusterView shows the workers and the actor and that the
TraceView gains spans while work runs; saves a screenshot
(``artifacts/observation-notebook.png``, or ``$NEXUS_ARTIFACTS``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("NEXUS_REQUIRE_BROWSER"),
        reason="needs Debian's chromium (.ci/run installs it: apt-get install chromium)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def lab(tmp_path):
    shutil.copy(ROOT / "notebooks" / "04-live-observation.ipynb", tmp_path / "observation.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    lab_bin = Path(sys.executable).with_name("jupyter-lab")
    proc = subprocess.Popen(
        [
            str(lab_bin), "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--LabApp.news_url=",
            "--ServerApp.open_browser=False", "--LabServerApp.extra_labextensions_path=[]",
            *(["--allow-root"] if os.geteuid() == 0 else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / ".jupyter"), JUPYTER_RUNTIME_DIR=str(tmp_path / ".runtime")),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("JupyterLab did not start") from None
            time.sleep(0.5)
    try:
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_views_update_live_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    url, token = lab
    shots = Path(os.environ.get("NEXUS_ARTIFACTS", ROOT / "artifacts"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(f"{url}/lab/tree/observation.ipynb?token={token}", timeout=120_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], .jp-mod-idle", timeout=120_000)
        page.locator(".jp-Notebook .jp-Cell").first.click()
        cells = page.locator(".jp-Notebook .jp-Cell").count()
        for _ in range(cells - 3):  # everything up to the cell that waits for the results: the work runs meanwhile
            page.keyboard.press("Shift+Enter")
            time.sleep(0.3)
        view = page.locator(".nexus-cluster").first
        view.wait_for(timeout=120_000)
        page.wait_for_function(
            "() => [...document.querySelectorAll('.nexus-cluster')].some(e => e.textContent.includes('Greeter'))",
            timeout=60_000,
        )
        text = view.text_content() or ""
        assert "worker-1" in text and "worker-2" in text, "the ClusterView shows the workers"
        page.wait_for_selector(".nexus-trace svg rect", timeout=60_000)
        first = later = page.locator(".nexus-trace svg rect").count()
        deadline = time.monotonic() + 30
        while later <= first and time.monotonic() < deadline:
            time.sleep(0.5)
            later = page.locator(".nexus-trace svg rect").count()
        page.screenshot(path=str(shots / "observation-notebook.png"), full_page=True)
        assert later > first > 0, f"the TraceView gains spans while work runs ({first} -> {later})"
        browser.close()
