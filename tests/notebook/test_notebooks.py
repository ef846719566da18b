"""The tutorial notebooks run top to bottom in a real kernel (nbclient), and their outputs say what they should."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

EXPECTED = {
    "01-quickstart.ipynb": ["[0, 1, 4, 9, 16, 25, 36, 49]", "15", "8 ready; sum of squares: 140"],
    "02-actors-and-supervision.ipynb": ["[10, 20, 30]", "restarted; balance starts over: 1", "WorkerCrashedError", "ActorRestarting"],
    "03-zero-copy-numpy.ipynb": ["writeable: False", "(199999990000000, False)", "read-only:", "[1 1 2]"],
    "04-live-observation.ipynb": ["25 hello user 0-0", "Nexus cluster", "spans written to timeline.json", "spans in the task stream:"],
}


def _text(nb: nbformat.NotebookNode) -> str:
    out = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            out.append(output.get("text", ""))
            data = output.get("data", {})
            out.append(data.get("text/plain", ""))
            out.append(data.get("text/html", ""))
    return "\n".join(out)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_top_to_bottom(name, tmp_path):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = _text(nb)
    for expected in EXPECTED[name]:
        assert expected in text, f"{name}: {expected!r} not in the outputs"
    if name == "04-live-observation.ipynb":
        # The notebook flushes the hub before it counts, so every span has reached the view: 25 tasks and their 100 calls.
        spans = int(text.split("spans in the task stream:")[1].split()[0])
        assert spans >= 125, f"the task stream gained the spans of the work that ran ({spans} of 125)"
