"""``init`` as Ray's: the first ``.remote()``, ``get``, ``put`` or ``wait`` in a process without a cluster
starts a local one (each case in a fresh process; ``NEXUS_AUTO_INIT=0`` turns that off), and ``num_gpus``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_PROGRAMS = {
    "remote": "@nexus.remote\ndef f(x):\n    return x + 1\nprint(nexus.get(f.remote(1)))",
    "actor": "@nexus.remote\nclass A:\n    def v(self):\n        return 2\nprint(nexus.get(A.remote().v.remote()))",
    "put": "print(nexus.get(nexus.put(2)))",
    "wait": "print(len(nexus.wait([], num_returns=0, timeout=0)[0]) + 2)",
    "get": "print(len(nexus.get([])) + 2)",
}


def _run(program: str, **env: str) -> subprocess.CompletedProcess[str]:
    code = f"import nexus\n{program}\nprint(nexus.is_initialized())\nnexus.shutdown()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **env})


@pytest.mark.parametrize("first", sorted(_PROGRAMS))
def test_the_first_call_that_needs_a_cluster_starts_a_local_one(first: str) -> None:
    done = _run(_PROGRAMS[first])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "True"], done.stdout


def test_no_cluster_is_started_with_nexus_auto_init_0() -> None:
    done = _run(_PROGRAMS["put"], NEXUS_AUTO_INIT="0")
    assert done.returncode == 1 and "call nexus.init() first (NEXUS_AUTO_INIT=0" in done.stderr, done.stderr


def test_num_gpus_is_the_clusters_gpu_resource_and_tasks_and_actors_take_it() -> None:
    program = (
        "print(nexus.init(num_cpus=1, num_gpus=2) is not None, nexus.cluster_resources()['GPU'])\n"
        "@nexus.remote(num_gpus=1)\ndef g():\n    return 'on a GPU'\n"
        "@nexus.remote(num_gpus=2)\nclass Both:\n    def v(self):\n        return 'both'\n"
        "print(nexus.get(g.remote()), nexus.get(Both.remote().v.remote()))\n"
        "nexus.shutdown()\nnexus.init(num_cpus=1, num_gpus=0)\nprint('GPU' in nexus.cluster_resources())\n"
        "try:\n    nexus.get(g.remote())\nexcept ValueError as exc:\n    print('never', 'num_gpus=' in str(exc))"
    )
    done = _run(program)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["True 2.0", "on a GPU both", "False"], done.stdout
    assert "never True" in done.stdout
    bad = _run("nexus.init(num_gpus=-1)")
    assert bad.returncode == 1 and "num_gpus is a number of GPUs" in bad.stderr


def test_the_checks_ray_makes_at_decoration_and_at_options() -> None:
    import nexus

    with pytest.raises(TypeError, match="has no options"):

        @nexus.remote()
        def f() -> None: ...

    with pytest.raises(ValueError, match="'async def' is for actor methods"):

        @nexus.remote
        async def g() -> None: ...

    @nexus.remote
    class A:
        pass

    with pytest.raises(TypeError, match="is a string, not 5"):
        A.options(name=5)
    with pytest.raises(TypeError, match="is a string"):
        nexus.remote(name=["x"])(lambda: None)


def test_ray_forms_init_and_options_take() -> None:
    program = (
        "import numpy as np\n"
        "nexus.init(num_cpus=0)\nprint(nexus.get(nexus.put(3)))\nnexus.shutdown()\n"
        "nexus.init(num_cpus=1, _default_actor_lifetime='detached')\n"
        "print(nexus.ObjectID is nexus.ObjectRef)\n"
        "@nexus.remote\ndef add(a, b=0):\n    return a + b\n"
        "print(nexus.get(add._remote(args=[1], kwargs={'b': 2}, num_cpus=1)))\n"
        "big = np.zeros(80 << 17)\n"
        "@nexus.remote\ndef heavy():\n    return len(big)\n"
        "try:\n    heavy.remote()\nexcept ValueError as e:\n    print('refused:', str(e)[:38])\n"
        "print(nexus.get(add.remote(4)))\n"
    )
    done = _run(program)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:5] == ["3", "True", "3", "refused: The remote function heavy is too large", "4"], done.stdout
    for bad, error in (("lifetime='forever'", "ValueError"), ("namespace=3", "TypeError"), ("get_if_exists=True", "ValueError")):
        failed = _run(f"@nexus.remote\nclass A:\n    pass\nA.options({bad})")
        assert failed.returncode == 1 and error in failed.stderr, failed.stderr
    wrong = _run("nexus.init(_default_actor_lifetime='forever')")
    assert wrong.returncode == 1 and "_default_actor_lifetime is" in wrong.stderr


def test_init_takes_the_memory_resource_as_ray_does() -> None:
    done = _run(
        "nexus.init(num_cpus=1, _memory=1 << 30)\nprint(nexus.cluster_resources()['memory'])\nnexus.shutdown()\n"
        "nexus.init(num_cpus=1, resources={'memory': 5.0})\nprint(nexus.cluster_resources()['memory'])\nnexus.shutdown()\n"
        "nexus.init(num_cpus=1, local_mode=True)\nprint(nexus.cluster_resources()['memory'] > 0)\nnexus.shutdown()\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:3] == [str(float(1 << 30)), "5.0", "True"], done.stdout
    wrong = _run("nexus.init(_memory='lots')")
    assert wrong.returncode == 1 and "_memory is a number of bytes, 0 or more, not 'lots'" in wrong.stderr
