"""The "Python 3 (Nexus)" Jupyter kernel: IPython with ``nexus`` imported, ``%nexus`` loaded, a cluster started.

The cluster is local, or the one at ``NEXUS_ADDRESS`` when that is set.
Interrupting a cell interrupts a ``get`` or ``wait`` in it (KeyboardInterrupt
in the kernel), never the cluster: the workers ignore SIGINT.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from typing import Any

__all__ = ["KERNEL_NAME", "install", "kernel_json", "main"]

KERNEL_NAME = "nexus"
STARTUP = [
    "import os as _os, nexus",
    "get_ipython().run_line_magic('load_ext', 'nexus')",
    "try:\n    nexus.init(address=_os.environ.get('NEXUS_ADDRESS') or None, ignore_reinit_error=True)\n"
    "except Exception as _exc:\n    print(f'nexus: no cluster started: {_exc}')",
]


def kernel_json(python: str | None = None) -> dict[str, Any]:
    return {
        "argv": [python or sys.executable, "-m", "nexus.notebook.kernel", "-f", "{connection_file}"],
        "display_name": "Python 3 (Nexus)",
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {"debugger": False},
    }


def install(user: bool = False, prefix: str | None = None, name: str = KERNEL_NAME) -> str:
    """Install the kernel spec (for this interpreter); returns where it went."""
    from jupyter_client.kernelspec import KernelSpecManager

    source = tempfile.mkdtemp(prefix="nexus-kernel-")
    try:
        with open(os.path.join(source, "kernel.json"), "w") as f:
            json.dump(kernel_json(), f, indent=2)
        return str(KernelSpecManager().install_kernel_spec(source, kernel_name=name, user=user, prefix=prefix))
    finally:
        shutil.rmtree(source, ignore_errors=True)


def main() -> None:
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.exec_lines = list(STARTUP)
    app.initialize(sys.argv[1:])
    app.start()


if __name__ == "__main__":
    main()
