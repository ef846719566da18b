"""Benchmark "limits": what this machine allows, measured in the same run as everything else.

pingpong spinning      round trips between two processes over one shared-memory cache line, both spinning
pingpong eventfd       the same, each side parked on an eventfd between messages (what a parked worker costs)
copy into shm          numpy-speed copy of 256 MiB into shared memory that was touched before (GB/s)
copy into fresh shm    the same into pages never touched (the kernel clears each one first)

The runner prints Nexus's figures as a fraction of these (see ``fractions``).
"""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
import time

from .harness import BenchmarkResult, Figure, rate

NAME = "limits"

CHILD = r"""
import mmap, os, struct, sys
path, spin, efd_in, efd_out = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDWR)
m = mmap.mmap(fd, 4096)
last = 0
while True:
    if spin:
        while True:
            (seq,) = struct.unpack_from("<Q", m, 0)
            if seq != last:
                break
    else:
        os.eventfd_read(efd_in)
        (seq,) = struct.unpack_from("<Q", m, 0)
    last = seq
    if seq == 0xFFFFFFFF:
        break
    struct.pack_into("<Q", m, 64, seq)
    if not spin:
        os.eventfd_write(efd_out, 1)
"""


def _pingpong(spin: bool, n: int) -> float:
    path = f"/dev/shm/nexus-bench-{os.getpid()}-{spin}"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.ftruncate(fd, 4096)
    m = mmap.mmap(fd, 4096)
    a, b = os.eventfd(0), os.eventfd(0)
    child = subprocess.Popen([sys.executable, "-c", CHILD, path, "1" if spin else "0", str(a), str(b)], pass_fds=(a, b))
    try:

        def trip(seq: int) -> None:
            struct.pack_into("<Q", m, 0, seq)
            if spin:
                while struct.unpack_from("<Q", m, 64)[0] != seq:
                    pass
            else:
                os.eventfd_write(a, 1)
                os.eventfd_read(b)

        for seq in range(1, 1001):
            trip(seq)
        start = time.perf_counter()
        for seq in range(1001, 1001 + n):
            trip(seq)
        seconds = time.perf_counter() - start
        struct.pack_into("<Q", m, 0, 0xFFFFFFFF)
        if not spin:
            os.eventfd_write(a, 1)
        child.wait(10)
        return rate(n, seconds)
    finally:
        child.kill()
        m.close()
        os.close(fd)
        os.close(a)
        os.close(b)
        os.unlink(path)


def _copy(fresh: bool, size: int) -> float:
    import numpy as np

    path = f"/dev/shm/nexus-bench-copy-{os.getpid()}"
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, size)
        m = mmap.mmap(fd, size)
        src = np.ones(size // 8, dtype=np.int64)
        dst = np.frombuffer(m, dtype=np.int64)
        if not fresh:
            dst[:] = 0  # touched once: the pages exist and are mapped
        start = time.perf_counter()
        dst[:] = src
        seconds = time.perf_counter() - start
        del dst
        m.close()
        return size / seconds / 1e9
    finally:
        os.close(fd)
        os.unlink(path)


def run(quick: bool) -> BenchmarkResult:
    n = 5000 if quick else 50_000
    size = (64 if quick else 256) << 20
    rounds = 2 if quick else 3
    samples: dict[str, list[float]] = {"spin": [], "eventfd": [], "copy": [], "fresh": []}
    for _ in range(rounds):
        samples["spin"].append(_pingpong(True, n))
        samples["eventfd"].append(_pingpong(False, n // 5))
        samples["copy"].append(_copy(False, size))
        samples["fresh"].append(_copy(True, size))
    figures = [
        Figure("pingpong_spin", "shared-memory round trip, both spinning", "/s", samples["spin"], None),
        Figure("pingpong_eventfd", "shared-memory round trip with eventfd wake-ups", "/s", samples["eventfd"], None),
        Figure("copy_shm", "copy into touched shared memory", "GB/s", samples["copy"], None),
        Figure("copy_fresh", "copy into fresh shared memory", "GB/s", samples["fresh"], None),
    ]
    return BenchmarkResult(
        name=NAME,
        title="Limits of this machine (for the fractions below)",
        figures=figures,
        peer="none",
        peer_label="-",
        peer_available=True,  # nothing to compare with, and nothing missing
        method=f"median of {rounds} rounds; {n:,} round trips spinning, {n // 5:,} with wake-ups; {size >> 20} MiB copies",
        notes=[],
    )


# (benchmark, figure) of Nexus -> (limits figure, how to read it)
FRACTIONS = {
    # A receiver that parks pays an eventfd round trip per call; Nexus's receivers spin ~200 us before they
    # park, so calls one at a time can beat that figure (over 100%), and the spinning round trip is the ceiling.
    ("cluster", "actor_sync"): ("pingpong_eventfd", "1:1 actor calls one at a time, of a round trip with eventfd wake-ups"),
    ("cluster", "tasks_sync"): ("pingpong_eventfd", "tasks one at a time, of a round trip with eventfd wake-ups"),
    ("cluster", "actor_sync", "spin"): ("pingpong_spin", "1:1 actor calls one at a time, of the spinning round trip (the ceiling)"),
    ("cluster", "actor_async"): ("pingpong_spin", "1:1 actor calls submitted together, of the spinning round trip"),
    ("store", "put_large"): ("copy_shm", "put of a large array, of the copy bandwidth into touched shared memory"),
}


def fractions(results: dict[str, BenchmarkResult]) -> list[str]:
    """Nexus's figures as a fraction of the machine's limits measured in the same run."""
    limits = results.get(NAME)
    if limits is None:
        return []
    by_key = {f.key: f.nexus for f in limits.figures}
    lines = []
    for (bench, key, *_), (limit_key, text) in FRACTIONS.items():
        result = results.get(bench)
        if result is None:
            continue
        figure = next((f for f in result.figures if f.key == key), None)
        if figure is None or not by_key.get(limit_key):
            continue
        lines.append(f"{text}: {figure.nexus / by_key[limit_key]:.1%}")
    return lines
