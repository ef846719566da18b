"""The head's placement groups: creating them, reserving their bundles when they fit, removing them, lookups.

A group is placed (:func:`..state.groups.plan`) as soon as every bundle fits
what the nodes have free: at once, or at a later dispatch (:meth:`retry`,
before any task is placed, so that work ending frees room for a group first),
when a node joins or work ends. Its bundles are then reserved on their nodes
(``Resources.reserve``: held from everything else, offered under the group's
own names), its ``ready()`` object is stored, and the actors created into it
meanwhile are placed. A group that no node alive could hold waits as well,
saying why (Ray's ``INFEASIBLE``). When a node with some of its bundles dies,
those are reserved again elsewhere (``RESCHEDULING``). Removing a group kills
its actors, cancels its tasks (queued ones at once, running ones with their
worker) and frees its reservations. Every method is called with the table
lock held, or takes it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from ...core.errors import ActorDiedError, NexusError
from ..placement_groups import PlacementGroup, PlacementGroupID
from ..state.actors import ActorRecord
from ..state.groups import GroupRecord, GroupStatus, check_bundles, check_strategy, group_in, needs_in, never_fits, plan
from ..state.workers import WorkerRecord
from ..strategies import PlacementGroupSchedulingStrategy
from ..values import error_blob, serialize

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["GroupBinding", "GroupDirectory", "answer"]


class GroupBinding(NamedTuple):
    """Where a task or an actor goes in a group, and what it holds there (see ``state.groups.needs_in``)."""

    group_id: int
    bundle: int  # its index; -1: any bundle
    capture: bool  # what it starts (naming no strategy) goes in the group too
    needs: dict[str, float]


class GroupDirectory:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.lock = rt.lock
        self.groups: dict[int, GroupRecord] = {}
        self.named: dict[str, int] = {}
        self.pending: list[GroupRecord] = []  # not placed (or being placed again), oldest first
        self.captured: dict[int, int] = {}  # task id -> group: running tasks whose children go into their group
        self.actor_groups: dict[int, tuple[int, bool]] = {}  # actor id -> (its group, whether its children go there too)
        # task id -> (its worker, its group, the group's CPUs it holds): lent back to its bundle while it waits in get
        self.lent: dict[int, tuple[WorkerRecord, int, dict[str, float]]] = {}
        self.nodes_seen: frozenset[int] = frozenset()  # the nodes when the infeasible groups were last looked at

    # -- creating, placing -------------------------------------------------------------------------

    def create(self, bundles: Any, strategy: str, name: str, lifetime: str | None) -> tuple[int, int]:
        """A new group, placed now if it fits: (its id, the id of its ready object)."""
        bundles, strategy = check_bundles(bundles), check_strategy(strategy)
        if not isinstance(name, str) or lifetime not in (None, "detached"):
            raise ValueError(f"a placement group's name is a string and its lifetime None or 'detached', not {name!r}, {lifetime!r}")
        rt = self.rt
        with self.lock:
            if name and name in self.named:
                raise ValueError(
                    f"a placement group named {name!r} exists already: get it with get_placement_group({name!r}), or remove it first"
                )
            group = GroupRecord(rt.new_id(), name, bundles, strategy, lifetime == "detached", rt.new_id())
            # Its ready object's one ref is the group's own, as long as the cluster lives: ready() makes refs to it
            # anywhere, at any time (each counted as it is made), and it must still be there then.
            rt.objects.new(group.ready_id)
            self.groups[group.group_id] = group
            if name:
                self.named[name] = group.group_id
            self.pending.append(group)
            self._try(group)
        return group.group_id, group.ready_id

    def retry(self) -> None:
        """Place the groups that fit now (lock held; at a dispatch after something was freed or a node joined:
        ``Resources.freed``). One that no node could hold is looked at again only when the nodes changed."""
        self.rt.resources.freed = False
        nodes = frozenset(self.rt.resources.pools)
        changed, self.nodes_seen = nodes != self.nodes_seen, nodes
        for group in list(self.pending):
            if changed or (not group.infeasible and self._may_fit(group)):
                self._try(group)

    def _may_fit(self, group: GroupRecord) -> bool:
        """Whether what the whole cluster has free could hold the bundles not reserved yet: a bound, cheaper than a
        try (a plain task's worker going idle sets ``Resources.freed`` once per task when the CPUs are few)."""
        r = self.rt.resources
        want: dict[str, float] = {}
        for bundle, node in zip(group.bundles, group.nodes, strict=True):
            if node is None:
                for key, amount in bundle.items():
                    want[key] = want.get(key, 0.0) + amount
        cpu = want.pop("CPU", 0.0)
        if any(r.total.get(k, 0.0) - r.used.get(k, 0.0) + 1e-9 < v for k, v in want.items()):
            return False
        return not cpu or self.rt.tasks.free_cpus(self.rt.workers) + 1e-9 >= cpu

    def _try(self, group: GroupRecord) -> bool:
        """Reserve the bundles of ``group`` not reserved yet, all of them, if they fit now (lock held)."""
        rt = self.rt
        r = rt.resources
        group.attempts += 1
        total = {n: p.total for n, p in r.pools.items()}
        # (why it waits is said only when asked, from what was seen now: building it at each attempt cost most of one)
        group.infeasible = never_fits(group.bundles, group.strategy, total, explain=False) is not None
        if group.infeasible:
            group.explain_later(lambda: never_fits(group.bundles, group.strategy, total))
        else:
            free = {n: r.free(n, rt.tasks.free_cpus(rt.workers, n)) for n in r.pools}
            placed = {i: n for i, n in enumerate(group.nodes) if n is not None}
            chosen, _ = plan(group.bundles, group.strategy, free, placed, explain=False)
            if chosen is not None:
                for i, node in chosen.items():
                    r.reserve(node, group.bundles[i], group.offers_of(i))
                    group.nodes[i] = node
                group.to(GroupStatus.CREATED)
                group.waiting_for = None
                self.pending.remove(group)
                # ready() resolves to the handle, once (a group placed again after a node died is ready already)
                entry = rt.objects.entries.get(group.ready_id)
                if entry is not None and entry.blob is None:
                    rt.objects.store(group.ready_id, serialize(self._handle(group), "a placement group", inline=True))
                self._unpark(group)
                return True
            group.explain_later(lambda: plan(group.bundles, group.strategy, free, placed)[1])
        for actor in group.parked:
            actor.waiting_for = self._parked_why(group)
        return False

    def node_lost(self, node: int) -> None:
        """``node`` is gone (lock held; its pool is gone already): the bundles it had are reserved again elsewhere."""
        for group in self.groups.values():
            if node not in group.nodes or group.state is GroupStatus.REMOVED:
                continue
            group.nodes = [None if n == node else n for n in group.nodes]
            if group.state is GroupStatus.CREATED:
                group.to(GroupStatus.RESCHEDULING)
                self.pending.append(group)
            self._try(group)

    # -- actors in a group ------------------------------------------------------------------------

    def hold_or_park(self, actor: ActorRecord, binding: GroupBinding) -> None:
        """Hold ``actor``'s needs in its bundle (or have it wait for room there), or park it until its group is
        placed (lock held)."""
        group = self.groups[binding.group_id]
        if group.state is GroupStatus.REMOVED:  # (removed since binding() looked, which was not under this lock)
            raise ActorDiedError(f"actor {actor.cls_name} cannot be created: its placement group {group.hex} was removed")
        self.actor_groups[actor.actor_id] = (binding.group_id, binding.capture)
        if group.placed:
            self.rt.actors_dir.placing.hold_or_wait(actor)
        else:
            self._park(group, actor)

    def _park(self, group: GroupRecord, actor: ActorRecord) -> None:
        actor.waiting_for = self._parked_why(group)
        group.parked.append(actor)

    def _parked_why(self, group: GroupRecord) -> str:
        return f"its placement group {group.hex} is not placed yet: {group.waiting_for or 'its bundles are being reserved'}"

    def _unpark(self, group: GroupRecord) -> None:
        """``group`` is placed (lock held): the actors that waited for it hold their needs in it now, and start."""
        parked, group.parked = group.parked, []
        actors = self.rt.actors_dir
        for actor in parked:
            if actor.dead is not None:
                continue
            actor.waiting_for = None
            try:
                actors.placing.hold_or_wait(actor)
            except ValueError as exc:
                actors.on_actor_failed(actor, NexusError(f"actor {actor.cls_name} cannot be placed in its group: {exc}"))
                continue
            if actor.waiting_for is None and actor.missing == 0:
                actors.placing.start(actor)

    def parks(self, actor: ActorRecord) -> bool:
        """Whether an actor about to start again waits for its group instead: the node of its bundle is gone and the
        bundle is not reserved elsewhere yet (lock held)."""
        found = self.actor_groups.get(actor.actor_id) if self.actor_groups else None
        if found is None or actor.held_on is None or actor.held_on in self.rt.resources.pools:
            return False
        group = self.groups.get(found[0])
        if group is None or group.state is GroupStatus.REMOVED:
            return False
        actor.held_on = None
        pools = self.rt.resources.pools
        if group.placed and all(n in pools for n in group.nodes if n is not None):
            try:  # placed again already: its needs are held in the bundle's new node (or it waits for room there)
                self.rt.actors_dir.placing.hold_or_wait(actor)
                return actor.waiting_for is not None
            except ValueError:
                pass
        self._park(group, actor)  # (until its bundle is reserved again: at the latest when that node is gone for good)
        return True

    def forget_actor(self, actor: ActorRecord) -> None:
        """``actor`` died for good (lock held)."""
        if self.actor_groups:
            self.actor_groups.pop(actor.actor_id, None)

    # -- tasks and actors into a group ---------------------------------------------------------------

    def binding(self, options: dict[str, Any] | None, what: str, default_cpu: float, inherited: int = 0) -> GroupBinding | None:
        """Where ``options`` put a task or an actor in a group (``inherited``: the group of the one that starts it,
        when that one captures its children and these options name no strategy); None: in none.

        ValueError when the group is unknown or removed, the bundle does not exist, or it could never fit there.
        """
        strategy = options.get("scheduling_strategy") if options else None
        if isinstance(strategy, PlacementGroupSchedulingStrategy):
            group_id = getattr(strategy.placement_group.id, "value", None)
            index = strategy.placement_group_bundle_index
            capture = bool(strategy.placement_group_capture_child_tasks)
        elif strategy is None and inherited:
            group_id, index, capture = inherited, -1, True
        else:
            return None
        options = options or {}
        if options.get("label_selector"):
            raise ValueError(f"{what}: a label_selector and a PlacementGroupSchedulingStrategy do not go together (the bundle says where)")
        with self.lock:
            group = self.groups.get(group_id) if isinstance(group_id, int) else None
            if group is None:
                raise ValueError(f"{what}: its placement group is not one of this cluster's (was it made before nexus.init?)")
            if group.state is GroupStatus.REMOVED:
                raise ValueError(f"{what} cannot be scheduled into placement group {group.hex}: it was removed")
            count = len(group.bundles)
            if not isinstance(index, int) or isinstance(index, bool) or not -1 <= index < count:
                raise ValueError(
                    f"{what}: placement_group_bundle_index {index!r} does not exist: "
                    f"the group has {count} bundles (0 to {count - 1}; -1: any)"
                )
            own = _own_needs(options, what, default_cpu)
            bundles = [group.bundles[index]] if index >= 0 else group.bundles
            if not any(all(b.get(k, 0.0) + 1e-9 >= v for k, v in own.items()) for b in bundles):
                request = {k: int(v) if float(v).is_integer() else v for k, v in own.items()}
                where = (
                    f"bundle {index} of the placement group, {bundles[0]}"
                    if index >= 0
                    else f"any bundles for the placement group, {group.bundles}"
                )
                raise ValueError(  # (Ray's words, then what to do)
                    f"Cannot schedule {what} with the placement group because the resource request {request} "
                    f"cannot fit into {where}. Ask for less (num_cpus=0, say) or reserve more in placement group {group.hex}."
                )
            return GroupBinding(group.group_id, index, capture, needs_in(own, group.group_id, index))

    def inherited(self, w: WorkerRecord, parent: int = 0) -> int:
        """The group what worker ``w`` starts goes to when it names no strategy: that of its actor or task (``parent``),
        if that one captures its children (placement_group_capture_child_tasks); else 0."""
        if not self.captured and not self.actor_groups:
            return 0
        actor = w.actor
        if actor is not None:
            found = self.actor_groups.get(actor.actor_id)
            return found[0] if found is not None and found[1] else 0
        if parent:
            return self.captured.get(parent, 0)
        for task in self.rt.tasks.running.values():  # (an actor made by a task: no parent is said; the worker's task)
            if task.worker is w and task.task_id in self.captured:
                return self.captured[task.task_id]
        return 0

    def gone(self, group_id: int) -> bool:
        """Whether group ``group_id`` was removed (or never was: lock held)."""
        group = self.groups.get(group_id)
        return group is None or group.state is GroupStatus.REMOVED

    def removed(self, binding: GroupBinding) -> bool:
        """Whether the group of ``binding`` was removed since (lock held)."""
        return self.gone(binding.group_id)

    def bound(self, task_id: int, binding: GroupBinding | None) -> None:
        """A task is queued into a group: its children follow it there if it captures them."""
        if binding is not None and binding.capture:
            self.captured[task_id] = binding.group_id

    # -- tasks blocked in get ---------------------------------------------------------------------

    def lend(self, w: WorkerRecord) -> None:
        """``w``'s main thread waits in get (lock held): the group CPUs its tasks hold are their bundles' again
        meanwhile, as a worker's own CPU is the node's (a task in a bundle can wait for a child in that bundle)."""
        if not self.groups:
            return
        r = self.rt.resources
        for task in self.rt.tasks.running.values():
            if task.worker is w and task.needs and task.task_id not in self.lent:
                cpus = {k: v for k, v in task.needs.items() if k.startswith("CPU_group_")}
                if cpus:
                    r.release(cpus, node=w.node)
                    self.lent[task.task_id] = (w, group_in(task.needs), cpus)

    def reclaim(self, w: WorkerRecord | None = None, task_id: int = 0) -> None:
        """What ``w``'s tasks (or task ``task_id``) lent is theirs again: it goes on, ends or is retried (lock held;
        the bundle may hold more than it has for a while, as a node's CPUs may: nothing new starts there meanwhile)."""
        ids = [task_id] if task_id else [t for t, loan in self.lent.items() if loan[0] is w]
        for tid in ids:
            loan = self.lent.pop(tid, None)
            if loan is None:
                continue
            lender, group_id, cpus = loan
            group = self.groups.get(group_id)
            if group is not None and group.state is not GroupStatus.REMOVED:  # (a removed group's names are gone)
                self.rt.resources.hold(cpus, node=lender.node)

    # -- removing ----------------------------------------------------------------------------------

    def remove(self, group_id: int) -> None:
        """Remove a group: its actors die, its tasks are cancelled, its reservations are freed (a no-op the second time)."""
        rt = self.rt
        with self.lock:
            group = self.groups.get(group_id)
            if group is None:
                raise ValueError(f"no placement group {group_id:x} in this cluster (placement_group_table() lists them)")
            if group.state is GroupStatus.REMOVED:
                return
            group.to(GroupStatus.REMOVED)
            group.waiting_for = None
            if group in self.pending:
                self.pending.remove(group)
            if self.named.get(group.name) == group_id:
                del self.named[group.name]
            why = f"its placement group {group.hex} was removed"
            for actor_id, (gid, _capture) in list(self.actor_groups.items()):
                actor = rt.actors.get(actor_id)
                if gid == group_id and actor is not None and actor.dead is None:
                    rt.actors_dir.end(actor, ActorDiedError(f"actor {actor.label} was killed: {why}"))
                if gid == group_id:
                    self.actor_groups.pop(actor_id, None)
            group.parked.clear()
            for task_id in [t for t, gid in self.captured.items() if gid == group_id]:
                del self.captured[task_id]
            for task_id in [t for t, loan in self.lent.items() if loan[1] == group_id]:
                del self.lent[task_id]
            rt.scheduler.cancel_group(group_id, why)
            for i, node in enumerate(group.nodes):
                if node is not None:
                    rt.resources.unreserve(node, group.bundles[i], group.offers_of(i))
            group.nodes = [None] * len(group.bundles)
            # ready() of a group removed before it was placed raises (once placed, it stays resolved)
            removed = NexusError(f"placement group {group.hex} was removed before it was placed")
            rt.objects.store(group.ready_id, error_blob(removed, "the driver"))
            rt.scheduler.dispatch()  # what it held is free for others now

    # -- looking up ---------------------------------------------------------------------------------

    def lookup(self, name: str) -> tuple[int, list[dict[str, float]], int]:
        with self.lock:
            group_id = self.named.get(name)
            if group_id is None:
                raise ValueError(f"no placement group named {name!r} (placement_group_table() lists the groups and their names)")
            group = self.groups[group_id]
            return group.group_id, [dict(b) for b in group.bundles], group.ready_id

    def current(self, parent: int) -> tuple[int, list[dict[str, float]], int] | None:
        """The group that the running task or actor call ``parent`` runs in, or None."""
        rt = self.rt
        with self.lock:
            task = rt.tasks.running.get(parent)
            group_id = group_in(task.needs) if task is not None else 0
            if not group_id:
                actor = next((a for a in rt.actors.values() if parent in a.inflight), None)
                found = self.actor_groups.get(actor.actor_id) if actor is not None else None
                group_id = found[0] if found is not None else 0
            group = self.groups.get(group_id)
            if group is None or group.state is GroupStatus.REMOVED:
                return None
            return group.group_id, [dict(b) for b in group.bundles], group.ready_id

    def table(self, group_id: int | None = None) -> dict[str, Any]:
        """Ray's ``placement_group_table``: every group by its hex id, or the entry of one (``{}`` when unknown)."""
        with self.lock:
            if group_id is not None:
                group = self.groups.get(group_id)
                return {} if group is None else _entry(group)
            return {group.hex: _entry(group) for group in self.groups.values()}

    def explain(self, task_ids_why: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
        """Why queued tasks wait (``Runtime.waiting_tasks``' form), saying so for those whose group is not placed."""
        if not self.pending:
            return task_ids_why
        with self.lock:
            waiting = {g.group_id: g for g in self.pending}
            queued = {t.task_id: t for t in self.rt.tasks.queue}
            out = []
            for task_id, name, why in task_ids_why:
                task = queued.get(task_id)
                group = waiting.get(group_in(task.needs)) if task is not None else None
                out.append((task_id, name, self._parked_why(group) if group is not None else why))
            return out

    def _handle(self, group: GroupRecord) -> PlacementGroup:
        return PlacementGroup(PlacementGroupID(group.group_id), group.bundles, group.ready_id)


def _own_needs(options: dict[str, Any], what: str, default_cpu: float) -> dict[str, float]:
    """What a task or an actor asks for itself (``num_cpus``, ``num_gpus``, ``memory``, ``resources``), amounts it needs only."""
    cpu = options.get("num_cpus")
    own = {"CPU": float(default_cpu if cpu is None else cpu)}
    if options.get("num_gpus"):
        own["GPU"] = float(options["num_gpus"])
    if options.get("memory"):
        own["memory"] = float(options["memory"])
    resources = options.get("resources") or {}
    if not isinstance(resources, dict):
        raise ValueError(f"{what}: resources is a dict of resource names to amounts, not {resources!r}")
    own.update({k: float(v) for k, v in resources.items()})
    for key, amount in own.items():
        if amount < 0:
            raise ValueError(f"{what} asks for {amount:g} {key}: resource amounts cannot be negative")
    return {k: v for k, v in own.items() if v}


_SCHEDULING_STATE = {GroupStatus.CREATED: "FINISHED", GroupStatus.REMOVED: "REMOVED"}


def _entry(group: GroupRecord) -> dict[str, Any]:
    """One group as Ray's ``placement_group_table`` shows it (and why it waits, when it does)."""
    state = _SCHEDULING_STATE.get(group.state) or ("INFEASIBLE" if group.infeasible else "NO_RESOURCES")
    return {
        "placement_group_id": group.hex,
        "name": group.name,
        "bundles": {i: dict(b) for i, b in enumerate(group.bundles)},
        "bundles_to_node_id": {i: f"{n:06x}" for i, n in enumerate(group.nodes) if n is not None},
        "strategy": group.strategy,
        "state": group.state.value,
        "is_detached": group.detached,
        "stats": {"scheduling_state": state, "scheduling_attempt": group.attempts},
        "waiting_for": group.waiting_for,
    }


def answer(rt: Runtime, op: str, *args: Any) -> Any:
    """(``Runtime.control_placement_group``) a placement group operation, for the driver, a worker or an attached driver."""
    groups = rt.scheduler.groups
    ops: dict[str, Callable[..., Any]] = {
        "create": groups.create,
        "remove": groups.remove,
        "lookup": groups.lookup,
        "table": groups.table,
        "current": groups.current,
    }
    if op not in ops:
        raise ValueError(f"no placement group operation {op!r} (there are {', '.join(ops)})")
    return ops[op](*args)
