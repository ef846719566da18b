"""A journal actor the virtual actors' hooks write to (named "journal"), for the tests to read what ran."""

from __future__ import annotations

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
