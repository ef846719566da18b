"""A journal actor the virtual actors' hooks write to (named "journal"), for the tests to read what ran; and the
checks of call order that both hostings pass."""

from __future__ import annotations

import threading
from typing import Any

import nexus


@nexus.remote
class Journal:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)

    def read(self) -> list[str]:
        return self.lines


def open_journal() -> None:
    Journal.options(name="journal", get_if_exists=True).remote()


def journal_lines() -> list[str]:
    return nexus.get(nexus.get_actor("journal").read.remote(), timeout=30)


def calls_keep_their_order(log: Any, calls: int = 300) -> None:
    """Calls to ``log`` (a virtual actor with ``add(item)`` and ``read()``), told and awaited in turn, arrive in
    the order they were made: the first through the directory, those after under a lease."""
    refs = []
    for i in range(calls):
        if i % 3:
            log.add.tell(i)
        else:
            refs.append(log.add.remote(i))
        if i % 50 == 49:
            nexus.get(refs, timeout=30)
    assert nexus.get(log.read.remote(), timeout=30) == list(range(calls))


def threads_keep_their_order(log: Any, threads: int, calls: int) -> None:
    """Threads of one process calling ``log`` (fresh, sharing its lease) each find their calls in their order."""

    def call(t: int) -> None:
        for i in range(calls):
            if i % 4:
                log.add.tell((t, i))
            else:
                nexus.get(log.add.remote((t, i)), timeout=30)

    started = [threading.Thread(target=call, args=(t,)) for t in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(60)
    seen = [tuple(x) for x in nexus.get(log.read.remote(), timeout=30)]
    assert sorted(seen) == sorted((t, i) for t in range(threads) for i in range(calls)), "every call arrived, once"
    for t in range(threads):
        assert [i for u, i in seen if u == t] == list(range(calls)), f"thread {t}'s calls kept their order"
