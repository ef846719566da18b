"""The %nexus magic: its tables as text and HTML, values formatted for people, its messages; then on a real cluster."""

from __future__ import annotations

import time

import pytest
from IPython.lib.pretty import pretty

import nexus
from nexus.notebook.magics import (
    SPARE_WORKER,
    Table,
    format_bytes,
    format_duration,
    misunderstood,
    nexus_magic,
    status_table,
    tasks_table,
    timeline_message,
    workers_table,
)
from nexus.state import TaskState, WorkerState

from ..conftest import wait_until

SUMMARY = {
    "driver_pid": 4242,
    "workers": 3,
    "actors": {"restarting": 1, "alive": 2},
    "tasks": {"failed": 1, "finished": 40, "running": 2},
    "object_store": {"capacity": 7232 * 2**20, "used": 12 * 2**20, "objects": 3, "spilled_now": 0},
    "channels": {"rejected_messages": 0, "dropped": 1},
}


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "—"), (2.3e-5, "23 µs"), (0.0123, "12.3 ms"), (1.25, "1.25 s"), (125.0, "2 min 05 s")],
)
def test_durations_are_written_for_people(seconds, shown):
    assert format_duration(seconds) == shown


@pytest.mark.parametrize(
    ("n", "shown"), [(None, "—"), (512, "512 B"), (1536, "1.5 KiB"), (12 * 2**20, "12.0 MiB"), (int(7.06 * 2**30), "7.06 GiB")]
)
def test_sizes_are_written_in_binary_units(n, shown):
    assert format_bytes(n) == shown


def test_a_table_as_text_is_a_header_and_aligned_columns():
    table = Table("workers", ["name", "pid", "actor"], [["worker-1", 7, None], ["worker-10", 12345, "A (1)"]], right=["pid"])
    assert repr(table).splitlines() == [
        "workers",
        "name         pid  actor",
        "worker-1       7  —",
        "worker-10  12345  A (1)",
    ]
    assert repr(Table("actors", ["id"], [])) == "actors: none"


def test_a_table_as_html_escapes_values_and_follows_the_theme():
    table = Table("tasks <recent>", ["name", "n"], [["<script>alert(1)</script>", 3]], right=["n"])
    page = table._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "tasks &lt;recent&gt;" in page
    assert "var(--jp-ui-font-color1, inherit)" in page and "var(--jp-border-color2, #ddd)" in page
    assert page.count("<tr>") == 2 and "text-align:right" in page, "a header row and a row; numbers aligned right"
    assert "background" not in page and "#fff" not in page and "#000" not in page, "no colours fixed for one theme"
    assert "none" in Table("objects", ["id"], [])._repr_html_()


def test_status_is_a_two_column_table_of_sentences_not_dicts():
    table = status_table(SUMMARY)
    text = repr(table)
    assert table.columns == ["what", "value"]
    rows = dict((what, value) for what, value in table.rows)
    assert rows["actors"] == "2 alive, 1 restarting"
    assert rows["tasks (recent)"] == "2 running, 40 finished, 1 failed"
    assert rows["object store"] == "12.0 of 7232 MiB, 3 objects"
    assert rows["workers"] == "3 alive" and rows["driver"] == "pid 4242"
    assert rows["channels"] == "0 messages rejected, 1 channel dropped as corrupt"
    assert "{" not in text and "}" not in text and "'" not in text, "no dict reprs"
    odd = status_table({"workers": 1, "actors": {}, "shiny_new": {"a_b": 1}})
    assert dict(map(tuple, odd.rows)) == {"workers": "1 alive", "actors": "none", "shiny new": "a b 1"}


def test_a_spare_worker_says_what_it_is_for():
    table = workers_table(
        [
            WorkerState("worker-1", 11, "task", True, None, 2),
            WorkerState("worker-3", 13, "actor", True, "A (9)", 0),
            WorkerState("worker-4", 14, "actor", True, None, 0),
        ]
    )
    actors = {row[0]: row[table.columns.index("actor")] for row in table.rows}
    assert actors == {"worker-1": "—", "worker-3": "A (9)", "worker-4": SPARE_WORKER}
    assert "None" not in repr(table)


def test_task_durations_are_rounded():
    table = tasks_table([TaskState("ab", "f", "task", "finished", "worker-1", "driver", "ab", 0.050258231)])
    assert "50.3 ms" in repr(table) and "0.0502" not in repr(table)
    assert "—" in repr(table), "no waiting_for: a dash"


def test_the_timeline_counts_tasks_and_calls_not_their_phases_or_submissions():
    events = [{"ph": "M", "name": "process_name"}]
    for cat in ("task", "call", "task"):
        events += [{"ph": "X", "cat": cat}] + [{"ph": "X", "cat": "phase"}] * 3 + [{"ph": "X", "cat": "submit"}]
        events += [{"ph": "s", "cat": "flow"}, {"ph": "f", "cat": "flow"}]
    message = timeline_message({"traceEvents": events}, "t.json")
    assert message == "3 task and call spans written to t.json: open it in https://ui.perfetto.dev"


@pytest.mark.parametrize(
    ("line", "word"),
    [("stats", "'stats'"), ("tasks runing", "'runing'"), ("init many", "'many'"), ("status now", "'now'")],
)
def test_a_line_not_understood_is_printed_with_the_word_and_the_subcommands(line, word, capsys):
    assert nexus_magic(line) is None, "nothing for the notebook to show as a quoted string"
    said = capsys.readouterr().out
    assert word in said and said.startswith("%nexus")
    if line == "stats":
        assert "status, workers, actors, tasks" in said
    if line == "tasks runing":
        assert "queued, running, finished, failed" in said
    assert misunderstood(line.split()) == said.strip()


def test_good_lines_are_understood():
    for line in ("", "init", "init 2", "status", "tasks", "tasks failed", "timeline", "timeline t.json", "view", "help"):
        assert misunderstood(line.split()) is None, line


def test_help_shows_as_text_not_a_quoted_string():
    shown = nexus_magic("help")
    assert pretty(shown) == str(shown) and "%nexus init [num_cpus]" in shown and "%nexus tasks [state]" in shown


@nexus.remote
def _nap(x):
    time.sleep(0.02)
    return x


@nexus.remote
def _fail():
    raise ValueError("no")


@nexus.remote
class _Echo:
    def echo(self, x):
        return x


def test_the_magic_on_a_real_cluster(tmp_path, capsys):
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "nexus")
    try:
        shell.run_line_magic("nexus", "init 2")
        echo = _Echo.remote()
        assert nexus.get([_nap.remote(i) for i in range(5)] + [echo.echo.remote(1)], timeout=60) == [0, 1, 2, 3, 4, 1]
        with pytest.raises(ValueError):
            nexus.get(_fail.remote(), timeout=60)

        status = shell.run_line_magic("nexus", "status")
        text = repr(status)
        assert "{" not in text and "Nexus cluster" in status._repr_html_()
        wait_until(lambda: "6 finished, 1 failed" in repr(shell.run_line_magic("nexus", "status")), timeout=60)
        assert "1 alive" in dict(map(tuple, shell.run_line_magic("nexus", "status").rows))["actors"]

        tasks = shell.run_line_magic("nexus", "tasks")
        assert " ms" in repr(tasks) or " µs" in repr(tasks)
        assert [row[1] for row in shell.run_line_magic("nexus", "tasks failed").rows] == ["_fail"]
        # The spare actor worker is started ahead for the next actor: named so, not "None"
        wait_until(lambda: SPARE_WORKER in repr(shell.run_line_magic("nexus", "workers")), timeout=60)
        assert "_Echo" in repr(shell.run_line_magic("nexus", "actors"))
        assert "objects" in repr(shell.run_line_magic("nexus", "objects"))

        path = str(tmp_path / "timeline.json")
        said = wait_until(lambda: (m := shell.run_line_magic("nexus", f"timeline {path}")).startswith("7 ") and m, timeout=60)
        assert said == f"7 task and call spans written to {path}: open it in https://ui.perfetto.dev"
        assert pretty(said) == said, "shown as text"

        assert shell.run_line_magic("nexus", "statsu") is None
        assert "'statsu'" in capsys.readouterr().out
    finally:
        shell.run_line_magic("nexus", "shutdown")
        InteractiveShell.clear_instance()
    assert not nexus.is_initialized()
