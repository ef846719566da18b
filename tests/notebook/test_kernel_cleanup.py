"""A notebook kernel that stops without nexus.shutdown() leaves nothing behind: shut down, restarted or killed.

jupyter_client stops a kernel with a shutdown request, then SIGTERM and SIGKILL to the kernel's whole process
group; ipykernel terminates its own children first. Workers in a session of their own are spared that: a kernel
that exits runs nexus's exit hook, and one that is killed leaves workers that see their driver gone and remove
the cluster's files.
"""

from __future__ import annotations

import glob
import os
import tempfile

import pytest

from ..conftest import wait_until

START = """
import os, nexus
nexus.init(num_cpus=2)
runtime = nexus.cluster.api._runtime()
print("PIDS", os.getpid(), *[w.pid for w in runtime.every_worker])
"""


def _cluster_files(pid: int) -> list[str]:
    shm = [n for n in os.listdir("/dev/shm") if n.startswith(f"nexus-{pid}-")]
    return shm + glob.glob(os.path.join(tempfile.gettempdir(), f"nexus-{pid}-*"))


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _start_cluster_in(client) -> tuple[int, list[int]]:
    out: list[str] = []

    def keep(msg):
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(msg["content"]["traceback"]))

    reply = client.execute_interactive(START, timeout=120, output_hook=keep)
    assert reply["content"]["status"] == "ok", "".join(out)
    line = next(line for line in "".join(out).splitlines() if line.startswith("PIDS"))
    kernel, *workers = (int(p) for p in line.split()[1:])
    assert _cluster_files(kernel) and workers
    return kernel, workers


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["shutdown", "restart", "kill"])
def test_a_kernel_stopped_without_nexus_shutdown_leaves_no_process_or_file(how):
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", startup_timeout=120)
    try:
        kernel, workers = _start_cluster_in(client)
        if how == "shutdown":
            manager.shutdown_kernel(now=False)  # what JupyterLab's "Shut Down Kernel" does
        elif how == "restart":
            manager.restart_kernel(now=False)
        else:
            manager.shutdown_kernel(now=True)  # SIGKILL to the kernel's group
        wait_until(lambda: all(_gone(pid) for pid in workers), timeout=60)
        wait_until(lambda: not _cluster_files(kernel), timeout=60)
        if how == "restart":  # the new kernel works, and can start a cluster of its own
            again, _ = _start_cluster_in(client)
            assert again != kernel
    finally:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
