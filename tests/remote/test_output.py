"""What a node's workers print: read from their pipes by the agent's relay, a line at a time, their last words kept."""

from __future__ import annotations

import subprocess
import sys
import time

from nexus.cluster.remote.output import CHUNK, OutputRelay, batches


def test_lines_of_a_worker_that_crashes_are_read_to_its_last_words() -> None:
    relay = OutputRelay()
    code = "import sys; print('one'); print('two', file=sys.stderr); sys.stdout.write('last words'); sys.stdout.flush(); sys.exit(3)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    relay.watch(proc)
    try:
        proc.wait(30)
        lines: list[tuple[int, bool, str]] = []
        deadline = time.monotonic() + 10
        while len(lines) < 3 and time.monotonic() < deadline:
            lines += relay.take()
            time.sleep(0.02)
    finally:
        relay.close()
    assert sorted(lines) == sorted([(proc.pid, False, "one"), (proc.pid, True, "two"), (proc.pid, False, "last words")])
    assert [t for _, _, t in lines if t != "two"] == ["one", "last words"], "in order, the unended last line too"


def test_batches_join_a_streams_lines_and_keep_frames_small() -> None:
    lines = [(1, False, "a"), (1, False, "b"), (1, True, "c"), (2, False, "d"), (2, False, "x" * (CHUNK + 10))]
    assert batches(lines) == [(1, False, "a\nb"), (1, True, "c"), (2, False, "d"), (2, False, "x" * CHUNK)]
