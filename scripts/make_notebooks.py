"""Write the tutorial notebooks in notebooks/ from the cells below (run after editing them; CI executes the result)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parents[1] / "notebooks"


def md(text: str) -> tuple[str, str]:
    return "md", textwrap.dedent(text).strip()


def code(text: str) -> tuple[str, str]:
    return "code", textwrap.dedent(text).strip()


NOTEBOOKS = {
    "01-quickstart.ipynb": [
        md("""
            # Quickstart: tasks and actors on a local cluster

            `nexus.init()` starts a cluster on this machine: this notebook becomes the *driver*,
            and worker processes run your tasks and actors. The last line of the next cell shows
            a summary of it.
        """),
        code("""
            import nexus

            nexus.init(num_cpus=2)
        """),
        md("""
            A function decorated with `@nexus.remote` becomes a **task**: `.remote(...)` runs it in a
            worker and returns an `ObjectRef` at once; `nexus.get` waits for the value.
        """),
        code("""
            @nexus.remote
            def square(x):
                return x * x

            refs = [square.remote(i) for i in range(8)]
            print(nexus.get(refs))
        """),
        md("""
            A decorated class becomes an **actor**: one instance living in a process of its own.
            Calls from one caller run in order; `.tell(...)` sends without waiting for an answer.
        """),
        code("""
            @nexus.remote
            class Counter:
                def __init__(self):
                    self.n = 0

                def add(self, k=1):
                    self.n += k
                    return self.n

            counter = Counter.remote()
            counter.add.tell(10)
            print(nexus.get(counter.add.remote(5)))
        """),
        md("Refs can be passed to other tasks: they arrive as values. `nexus.wait` returns the refs that are ready."),
        code("""
            @nexus.remote
            def total(values):
                return sum(values)

            ready, pending = nexus.wait(refs, num_returns=len(refs), timeout=10)
            print(len(ready), "ready;", "sum of squares:", nexus.get(total.remote(nexus.get(ready))))
        """),
        code("nexus.shutdown()"),
    ],
    "02-actors-and-supervision.ipynb": [
        md("""
            # Actors that survive crashes

            An actor with `max_restarts` starts again when its process dies, with its constructor run
            again; calls in flight are sent again when `max_task_retries` allows. Every restart is an
            event on `nexus.event_stream()`.
        """),
        code("""
            import os
            import signal
            import time

            import nexus
            from nexus.cluster.events import ActorRestarting, ClusterEvent

            nexus.init(num_cpus=2)
            events = []
            subscription = nexus.event_stream().subscribe(ClusterEvent, events.append)
        """),
        code("""
            @nexus.remote(max_restarts=2, max_task_retries=1)
            class Account:
                def __init__(self):
                    self.balance = 0

                def deposit(self, amount):
                    self.balance += amount
                    return self.balance

                def pid(self):
                    return os.getpid()

            account = Account.remote()
            print(nexus.get([account.deposit.remote(10) for _ in range(3)]))
        """),
        md("Kill the actor's process, as the out-of-memory killer would:"),
        code("""
            os.kill(nexus.get(account.pid.remote()), signal.SIGKILL)
            while not any(isinstance(e, ActorRestarting) for e in events):
                time.sleep(0.05)
            print("restarted; balance starts over:", nexus.get(account.deposit.remote(1)))
        """),
        md("""
            Tasks are retried when their worker dies (`max_retries`, 3 by default) and, if you ask,
            when they raise (`retry_exceptions`). When retries are spent the error is a defined one,
            never a hang:
        """),
        code("""
            @nexus.remote(max_retries=0)
            def crash():
                os._exit(1)

            try:
                nexus.get(crash.remote())
            except nexus.NexusError as exc:
                print(type(exc).__name__)
        """),
        code("""
            print(sorted({type(e).__name__ for e in events}))
            nexus.shutdown()
        """),
    ],
    "03-zero-copy-numpy.ipynb": [
        md("""
            # Large arrays without copies

            A large numpy array goes once into the host's shared-memory object store; every process
            then reads it in place, as a read-only view.
        """),
        code("""
            import gc

            import numpy as np

            import nexus

            nexus.init(num_cpus=2)
            big = np.arange(20_000_000, dtype=np.int64)  # 160 MB
            ref = nexus.put(big)
        """),
        code("""
            view = nexus.get(ref)
            print(view.nbytes // 2**20, "MiB; writeable:", view.flags.writeable, "; owns its memory:", view.flags.owndata)
        """),
        code("""
            @nexus.remote
            def total(a):
                return int(a.sum()), a.flags.writeable

            print(nexus.get(total.remote(ref)))
        """),
        md("Writing needs an explicit copy:"),
        code("""
            try:
                view[0] = 1
            except ValueError as exc:
                print("read-only:", exc)
            mine = view.copy()
            mine[0] = 1
            print(mine[:3])
        """),
        md("Memory comes back when the last ref and the last view are gone:"),
        code("""
            before = nexus.state.summary()["object_store"]["used"]
            del view, ref
            gc.collect()
            after = nexus.state.summary()["object_store"]["used"]
            print(f"{before // 2**20} MiB -> {after // 2**20} MiB in use")
            nexus.shutdown()
        """),
    ],
    "04-live-observation.ipynb": [
        md("""
            # Watching the cluster

            `nexus.TaskStream` draws what runs where, live: a row per worker (grouped by host), a colour per function or
            method, running work growing at the right edge. Hover a span for its name, duration, worker and sizes; wheel to
            zoom, drag to pan, *live* to follow the present again, click a span for its caller and callees; *pause* freezes
            the picture while what happens meanwhile is still kept. `ClusterView` shows where work is placed, `progress`
            follows a set of results, and `%load_ext nexus` adds the `%nexus` magic.
        """),
        code("""
            import time

            import nexus

            %load_ext nexus
            nexus.init(num_cpus=2)
        """),
        code("""
            @nexus.remote
            class Greeter:
                def hello(self, name):
                    time.sleep(0.05)
                    return f"hello {name}"

            @nexus.remote
            def greet_all(greeter, names):
                return nexus.get([greeter.hello.remote(n) for n in names])

            @nexus.remote
            def square(x):
                time.sleep(0.02)
                return x * x

            greeter = Greeter.remote()
            view = nexus.ClusterView()
            view
        """),
        code("""
            stream = nexus.TaskStream(window=30)
            stream
        """),
        code("""
            refs = [greet_all.remote(greeter, [f"user {i}-{j}" for j in range(4)]) for i in range(25)]
            squares = [square.remote(i) for i in range(50)]
            nexus.progress(refs + squares)
        """),
        code("""
            results = nexus.get(refs)
            print(len(results), results[0][0], sum(nexus.get(squares)))
        """),
        code("%nexus status"),
        code("%nexus timeline timeline.json"),
        code("""
            from nexus.observe import hub

            hub().flush()  # the views catch up 10 times a second; flush() hands them every event so far, now
            print("spans in the task stream:", len(stream.model.spans))
        """),
    ],
}


def main() -> None:
    ROOT.mkdir(exist_ok=True)
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in cells]
        nbformat.write(nb, ROOT / name)


if __name__ == "__main__":
    main()
