"""The tunables of a cluster, in one frozen object passed to the parts that use them.

Each figure names the measurement or reason behind it. A cluster takes its
config at ``init`` (``nexus.init(_system_config={...})``, as in Ray, for tests
and experiments) and hands it to each worker with its channel; the defaults
are what the benchmarks were tuned with. :meth:`ClusterConfig.from_environment`
is the one place that reads the environment for tunables
(``NEXUS_SCHED_BATCH``, ``NEXUS_INLINE_MAX``).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["RAY_ONLY_KEYS", "ClusterConfig", "parse_membership", "split_system_config"]

RAY_ONLY_KEYS = frozenset(
    {
        # Ray's internal tunables (``ray.init(_system_config=...)``, Ray's ``ray_config_def.h``) that Ray's own tests
        # and scripts commonly pass, and that mean nothing here: Nexus's scheduler, store and failure detection
        # are not Ray's (its tunables are ClusterConfig's fields). A ``_system_config`` naming one of these is
        # accepted with one warning naming them, and they are ignored; any other key that is not a field is an
        # error, as a misspelt field would otherwise be silently ignored. Keep this list short: add a key when
        # code written for Ray that passes it is meant to run unchanged.
        "automatic_object_spilling_enabled",  # (spilling: the arena spills to disk when full, always)
        "fetch_warn_timeout_milliseconds",
        "health_check_failure_threshold",  # (node failure: node_heartbeat, node_timeout, phi_threshold)
        "health_check_initial_delay_ms",
        "health_check_period_ms",
        "inline_object_status_in_refs",
        "lineage_pinning_enabled",
        "max_direct_call_object_size",  # (values travelling in the message: inline_max)
        "num_heartbeats_timeout",
        "object_spilling_config",
        "object_timeout_milliseconds",
        "raylet_death_check_interval_milliseconds",
        "raylet_heartbeat_timeout_milliseconds",
        "task_retry_delay_ms",  # (a task is retried as soon as its worker's death is seen)
        "timeout_ms_task_wait_for_death_info",
        "worker_register_timeout_seconds",  # (worker_start_timeout)
    }
)


def split_system_config(overrides: Mapping[str, Any] | None, fields: frozenset[str]) -> dict[str, Any]:
    """``overrides`` (``init``'s ``_system_config``) without the keys of :data:`RAY_ONLY_KEYS`, which are named in
    one warning; ValueError naming the keys that are neither in ``fields`` nor Ray's."""
    given = dict(overrides or {})
    unknown = sorted(k for k in given if k not in fields and k not in RAY_ONLY_KEYS)
    if unknown:
        raise ValueError(f"unknown _system_config key(s) {', '.join(unknown)}; the tunables are ClusterConfig's fields")
    ignored = sorted(k for k in given if k not in fields)
    if ignored:
        warnings.warn(
            f"_system_config key(s) {', '.join(ignored)} are Ray's internal tunables, which mean nothing in Nexus: "
            "ignored (Nexus's tunables are ClusterConfig's fields)",
            RuntimeWarning,
            stacklevel=4,
        )
    return {k: v for k, v in given.items() if k in fields}


def parse_membership(spec: str) -> tuple[str, str, int, str]:
    """``"memory"`` or ``"etcd://HOST:PORT[/PREFIX/]"`` as (kind, host, port, prefix); ValueError saying the forms."""
    if spec == "memory":
        return "memory", "", 0, ""
    if isinstance(spec, str) and spec.startswith("etcd://"):
        where, _, path = spec[len("etcd://") :].partition("/")
        host, _, port = where.rpartition(":")
        prefix = "/" + path if path else "/nexus/members/"
        if host and port.isdigit() and 0 < int(port) < 65536 and prefix.endswith("/"):
            return "etcd", host, int(port), prefix
    raise ValueError(
        f"membership is 'memory' (the head's own) or 'etcd://HOST:PORT' (optionally with a prefix ending in '/', "
        f"such as etcd://127.0.0.1:2379/nexus/members/), not {spec!r}"
    )


@dataclass(frozen=True)
class ClusterConfig:
    """What a cluster's head, node agent and scheduler are tuned with (all times in seconds)."""

    default_task_retries: int = 3
    """``max_retries`` of a task by default (as in Ray): retried this often when its worker dies."""
    prefetch: int = 4
    """Most tasks in flight to one worker while a backlog waits (see the task scheduler)."""
    prefetch_quick: int = 16
    """The same for a function whose last run took less than ``quick_task``: its tasks go in batches."""
    quick_task: float = 100e-6
    prefetch_young: float = 0.002
    """A worker whose current task has run longer than this gets no prefetched tasks: they would wait behind it."""
    steal_after: float = 0.01
    """A worker busy this long with one task has the tasks queued behind it taken back for an idle worker."""
    max_queued_tasks: int = 200_000
    """Tasks waiting at the driver beyond which a submitting thread waits for the workers (back-pressure)."""
    max_queued_bytes: int = 1 << 30
    """Bytes of inline arguments of waiting tasks beyond which a submitting thread waits likewise."""
    max_unsent_messages: int = 4096
    """Messages waiting for room in one worker's channel beyond which a thread that submits to it waits."""
    coalesce_after: int = 4
    """A worker with this many calls or tasks unanswered gets further ones coalesced into one ``batch`` message."""
    coalesce_max: int = 64
    """Most messages held in a worker's outbox; a full outbox is sent at once."""
    max_start_failures: int = 3
    """Workers in a row that die before they start, after which the pool stops replacing them."""
    worker_start_timeout: float = 60.0
    """How long ``init`` (and an actor's placement) waits for a worker process to say hello."""
    default_actor_lifetime: str = "non_detached"
    """An actor's ``lifetime`` when it gives none (``init(_default_actor_lifetime=)``, as Ray's): ``"detached"``
    actors outlive their handles and their owner."""
    surplus_workers: int = 32
    """Task workers that may start beyond one a CPU while tasks wait in ``get`` (their CPUs lent): the queued
    tasks run there instead of on top of a waiting one (see head.surplus); 0 runs them on top, always."""
    spare_actor_workers: int = 1
    """Worker processes started ahead for actors, so that creating one does not wait for an interpreter."""
    role_grace: float = 0.002
    """After a get() returns, the receiver thread leaves receiving to callers this long: the next get() usually comes sooner."""
    assist_every: float = 20e-6
    """A submitting thread drains the channels at most this often (each drain polls every channel)."""
    pin_cache: int = 64
    """Read mappings of recently read objects the driver keeps for the next get of them."""
    prefault_first: int = 64 << 20
    """The arena memory faulted in ahead of time at start (in the background)."""
    prefault_ahead: int = 256 << 20
    """How far past the highest region ever handed out the arena is kept faulted in."""
    spin: float = 200e-6
    """How long a receiver polls its channels before it parks: longer than a typical call, far shorter than a wake-up."""
    hold_under: float = 100e-6
    """A worker holds an answer back (to go with the next ones in one message) only after a call this quick,
    before one expected to be as quick."""
    hold_max: int = 64
    """Most answers a worker holds back at once."""
    hold_age: float = 1e-3
    """Answers are never held much longer than this past the first of them."""
    sched_batch: bool = True
    """Workers' receiving threads run under SCHED_BATCH (see worker.actors._set_policy); ``NEXUS_SCHED_BATCH=0``."""
    sample_every: float = 1.0
    """Seconds between samples of each process's CPU, memory and waiting work."""
    observed_events: int = 65536
    """Events the driver keeps for the observation layer (the oldest go first)."""
    inline_max: int = 64 << 10
    """Values whose out-of-band buffers (numpy arrays, bytes) total less than this travel inline, in the
    message, and live in the driver's memory; larger ones go to the arena. Measured: below ~64 KiB copying
    through the ring is cheaper than the arena's allocation request and read mapping; above it, the arena
    wins (``python -m benchmarks --only store`` measures both sides). At most a quarter of ``channel_bytes``:
    a message must fit its channel."""
    channel_bytes: int = 8 << 20
    """Bytes of each direction of a worker's shared-memory channel (the shm transport; a power of two >= 4096)."""
    arena_chunk: int = 64 << 20
    """The arena's memory is reserved (fallocate) in steps of this size, as allocations first reach it, so a
    full /dev/shm is an ObjectStoreFullError at the allocation, not a SIGBUS at the first write."""
    prefault_step: int = 2 << 20
    """The arena is faulted in ahead (see ``prefault_first``) this much at a time, the lock released between steps."""

    node_heartbeat: float = 0.5
    """How often a node tells the head it is alive (seconds)."""
    node_timeout: float = 5.0
    """A node not heard from for this long is declared dead (and fenced: it must join again as a new node)."""
    membership: str = "memory"
    """Where the cluster's members are kept: ``"memory"`` (the head's own) or ``"etcd://HOST:PORT[/PREFIX/]"``
    (etcd 3.4+: each node a key under a lease; virtual actors' activations are claimed there too)."""
    phi_threshold: float = 8.0
    """phi (the accrual detector over a node's beats) from which the head suspects a node: about 1.2 s of silence
    at 0.5 s beats on a steady link, 24 false suspicions an hour on a lossy one (benchmark "services")."""

    def __post_init__(self) -> None:
        channel = self.channel_bytes
        if channel < 4096 or channel & (channel - 1):
            raise ValueError(f"channel_bytes must be a power of two >= 4096, not {channel}")
        if not 0 < self.inline_max <= channel // 4:
            raise ValueError(
                f"inline_max must be between 1 and a quarter of channel_bytes ({channel // 4}), not {self.inline_max}: "
                "an inline value travels in one message"
            )
        parse_membership(self.membership)
        if not self.phi_threshold > 0:
            raise ValueError(f"phi_threshold is a positive number, not {self.phi_threshold!r}")
        for name in ("arena_chunk", "prefault_step"):
            value = getattr(self, name)
            if value < 4096 or value % 4096:
                raise ValueError(f"{name} must be a positive multiple of 4096 bytes, not {value}")

    @classmethod
    def from_environment(
        cls, overrides: Mapping[str, Any] | None, environ: Mapping[str, str], base: ClusterConfig | None = None
    ) -> ClusterConfig:
        """``base`` (a config file's ``[tuning]``; else the defaults), then what ``environ`` (``os.environ``) sets,
        then ``overrides`` (``init``'s ``_system_config``).

        ``NEXUS_SCHED_BATCH=0`` turns ``sched_batch`` off; ``NEXUS_INLINE_MAX``
        sets ``inline_max`` (bytes). An override that is one of Ray's internal tunables (:data:`RAY_ONLY_KEYS`) is
        ignored, with a warning; any other unknown override is a ValueError.
        """
        overrides = split_system_config(overrides, frozenset(f.name for f in dataclasses.fields(cls)))
        values: dict[str, Any] = {}
        if environ.get("NEXUS_SCHED_BATCH", "1") == "0":
            values["sched_batch"] = False
        inline = environ.get("NEXUS_INLINE_MAX")
        if inline:
            try:
                values["inline_max"] = int(inline)
            except ValueError:
                raise ValueError(f"NEXUS_INLINE_MAX is a number of bytes, not {inline!r}") from None
        start = dataclasses.asdict(base) if base is not None else {}
        return cls(**{**start, **values, **overrides})

    def to_json(self) -> str:
        """The config as workers get it (on their bootstrap pipe, with their channel)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ClusterConfig:
        return cls(**json.loads(text))

    def replace(self, **changes: object) -> ClusterConfig:
        """A copy with ``changes``; unknown names raise TypeError."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
