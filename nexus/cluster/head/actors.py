"""The head's actors: creating and placing them, their calls in order, bounded mailboxes, restarts, kills, names."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...core.errors import ActorDiedError, MailboxFullError, NexusError, PendingCallsLimitExceededError, SystemShutdownError
from ..events import ActorExited, ActorRestarting, CallDropped
from ..state.actors import ActorRecord, ActorStatus, Admission
from ..state.commands import Kill
from ..state.tasks import CallRecord
from ..state.workers import WorkerRecord
from ..strategies import label_selector, placement
from ..values import Blob, ObjectRef, error_blob, serialize, split_args
from .actor_lifetime import ActorLifetimes
from .placing import ActorPlacement

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["ActorDirectory"]

_now = time.monotonic_ns


class ActorDirectory:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.lock = rt.lock
        self.new_id = rt.ids.new
        self.objects = rt.objects
        self.outbox = rt.outbox
        self.actors: dict[int, ActorRecord] = {}
        self.named: dict[tuple[str, str], int] = {}
        self.placing = ActorPlacement(rt, self.actors, self.on_actor_failed, self._actor_args_made)
        self.lifetimes = ActorLifetimes(rt)
        rt.objects.on_ready[CallRecord] = self._call_args_made
        rt.objects.on_ready[ActorRecord] = self._actor_args_made

    def _call_args_made(self, call: CallRecord) -> None:
        self.pump_calls(call.actor)

    def _actor_args_made(self, actor: ActorRecord) -> None:
        self.rt.helper(self.place, actor)

    # -- creating --------------------------------------------------------------------------

    def create(self, cls_id: bytes, factory: Callable[[], Blob], name: str, args: tuple, kwargs: dict, options: dict) -> int:
        self.rt.scheduler.define(cls_id, factory)
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {name}")
        actor_id = self.new_id()
        try:
            self._create(actor_id, cls_id, name, args_blob, deps, options, None)
        except BaseException:
            self._discard(args_blob)
            raise
        return actor_id

    def _discard(self, blob: Blob) -> None:
        """A blob no object took (its creation failed): its arena region comes back."""
        if blob.region is not None and not blob.oid:
            with self.lock:
                self.rt.store.free_blob(blob)
            blob.region = None

    def _create(
        self,
        actor_id: int,
        cls_id: bytes,
        cls_name: str,
        args_blob: Blob,
        deps: list[int],
        options: dict,
        answer: Callable[[Blob | None], None] | None,
        creator: WorkerRecord | None = None,
    ) -> None:
        rt = self.rt
        name = options.get("name")
        namespace = options.get("namespace") or rt.namespace
        groups = rt.scheduler.groups  # (into a placement group: its bundle's names are its needs, see head.groups)
        with self.lock:  # (inherited reads the running tasks, which other threads change)
            inherited = groups.inherited(creator) if creator is not None else 0
        binding = groups.binding(options, cls_name, 0.0, inherited)
        where = None if binding is not None else label_selector(options.get("label_selector"), cls_name)
        if binding is not None:
            needs: dict[str, float] | None = binding.needs
        else:  # no CPU unless asked (as in Ray)
            needs = rt.resources.needs_of(options, cls_name, default_cpu=0.0, where=where)
        with self.lock:
            if name is not None and (namespace, name) in self.named:
                existing = self.actors.get(self.named[(namespace, name)])
                if existing is not None and existing.dead is None:
                    raise ValueError(
                        f"an actor named {name!r} already exists in namespace {namespace!r}; use get_if_exists=True or get_actor"
                    )
            actor = ActorRecord(actor_id, cls_name, name, namespace)
            actor.placement = None if binding is not None else placement(options.get("scheduling_strategy"), cls_name, rt.alive_nodes())
            actor.needs, actor.where = needs or {}, where
            if binding is not None:  # held in its bundle, or waits for room there or for its group to be placed
                groups.hold_or_park(actor, binding)
            elif needs is not None or where is not None:  # held on a node from now on, or waits for one (see placing)
                self.placing.hold_or_wait(actor)
            actor.set_options(options)
            actor.cls_id, actor.args_blob, actor.deps, actor.options = cls_id, args_blob, deps, options
            actor.args_oid = self.objects.args_object(args_blob)
            self.actors[actor_id] = actor
            self.lifetimes.track(actor_id, options, creator)  # (it ends with its last handle: see head.actor_lifetime)
            if name is not None:
                self.named[(namespace, name)] = actor_id
            if answer is not None and actor.waiting_for is not None:
                answer(None)  # created: it waits for its needs, the caller does not (as in Ray)
            elif answer is not None:
                actor.on_ready.append(answer)
            missing = self.objects.table.hold(deps, actor)  # placed once they are made (_actor_args_made)
        if missing == 0:
            self.place(actor)

    def place(self, actor: ActorRecord, waiting: bool = False) -> None:
        """Start ``actor`` in a worker process of its own (a pre-started spare when there is one)."""
        rt = self.rt
        with self.lock:
            if actor.dead is not None or rt.closing or actor.waiting_for is not None:
                return  # (one waiting for its needs to be free is placed when they are)
            if rt.scheduler.groups.parks(actor) or not self.placing.moved(actor):
                return  # (its bundle's node is gone: it starts when the bundle is reserved again, or it failed)
            w, node = self.placing.take_spare(actor)
            target = self.placing.target(actor)
        if w is None and node != rt.node_id:  # bound to a joined node without a spare now: its agent starts one
            if not waiting:  # (waited for on a helper thread: this one may be the one that reads every message)
                rt.helper(self.place, actor, True)
                return
            soft = target is not None and target[2]
            w = self.placing.spare_from(node, actor, fail=not soft)
            if w is None and not soft:
                return
            if w is None:  # soft: anywhere, then
                with self.lock:
                    w = next((x for x in reversed(rt.spares) if not x.remote), None)
                    if w is not None:
                        rt.spares.remove(w)
        if w is None:
            w = rt.spawn("actor")
            with self.lock:
                rt.spares.remove(w)
        elif w.remote and rt.spawn_on is not None:
            rt.spawn_on(w.node, "actor")  # that node keeps a spare
        with self.lock:
            if actor.dead is not None:  # killed while its process started: that one is a spare again
                rt.spares.append(w)
                return
            actor.placed(w)
            rt.receiver.changed()
        rt.helper(rt.replenish_spare)

        def start() -> None:
            if not rt.wait_started(w, rt.config.worker_start_timeout):
                if w.alive and not rt.closing:  # (one that died is settled by worker_died: restart or fail)
                    self.on_actor_ready(w, actor.actor_id, error_blob(NexusError(f"{w.name} did not start"), "the driver"))
                return
            with self.lock:
                if actor.dead is not None or actor.worker is not w or not w.alive:
                    return
                if actor.cls_id not in w.shipped:
                    self.outbox.send(w, ("def", actor.cls_id, rt.defs[actor.cls_id]))
                    w.shipped.add(actor.cls_id)
                deps, args = self.objects.ship_args(w, actor.deps, actor.args_oid, actor.args_blob)
                self.outbox.send(w, ("create_actor", actor.actor_id, actor.cls_id, actor.cls_name, args, deps, actor.options))
                if actor.max_restarts == 0:  # nothing will need them again: the worker's copy pins the arguments
                    self.objects.unpin(actor.deps)
                    actor.deps = []
                    self.objects.decref(actor.args_oid)
                    actor.args_oid = 0

        if w.link.ready.is_set():
            start()
        else:
            rt.helper(start)

    def on_actor_failed(self, actor: ActorRecord, exc: BaseException) -> None:
        """``actor`` cannot start at all (lock held): it is dead, its calls and its creator are told why."""
        actor.error_blob = error_blob(exc, "the driver")
        actor.die(str(exc))
        self.fail_calls(actor)
        callbacks, actor.on_ready = actor.on_ready, []
        for callback in callbacks:
            callback(actor.error_blob)

    def on_create_actor(
        self,
        w: WorkerRecord,
        request: int,
        actor_id: int,
        cls_id: bytes,
        def_blob: Blob | None,
        name: str,
        args_blob: Blob,
        deps: list[int],
        options: dict,
    ) -> None:
        if def_blob is not None:
            self.rt.defs[cls_id] = def_blob
        if args_blob.region is not None:
            with self.lock:
                w.allocs.pop(args_blob.region[0], None)  # the arguments' object owns the region from here on

        def answer(error: Blob | None) -> None:
            self.outbox.send(w, ("objects", request, [(0, error)]))

        try:
            self._create(actor_id, cls_id, name, args_blob, deps, options, answer, w)
        except Exception as exc:
            self._discard(args_blob)
            answer(error_blob(exc, "the driver"))

    def on_actor_ready(self, w: WorkerRecord, actor_id: int, error: Blob | None, sequential: bool = False, concurrency: int = 1) -> None:
        with self.lock:
            actor = self.actors.get(actor_id)
            if actor is None or actor.worker is not w or actor.state is not ActorStatus.STARTING:
                return
            if error is not None:
                actor.error_blob = error
                actor.die("its constructor raised")
                self.fail_calls(actor)
            else:
                actor.started(sequential, concurrency)
                self.rt.emit("actor", actor.label, "restarted" if actor.restarts else "created", w.name, "")
                self.pump_calls(actor)
            callbacks, actor.on_ready = actor.on_ready, []
            for callback in callbacks:
                callback(error)

    # -- calls -----------------------------------------------------------------------------

    def submit_call(self, actor_id: int, method: str, args: tuple, kwargs: dict, num_returns: int, tell: bool) -> list[ObjectRef]:
        rt = self.rt
        begin = _now() if rt.observed is not None else 0
        if not self.room_for_call(actor_id, method):  # before anything is stored for the call
            refs = []
            if not tell:
                blob = error_blob(MailboxFullError(f"dropped: the actor's mailbox was full (drop-newest), {method}"), "the driver")
                for _ in range(num_returns):
                    oid = self.new_id()
                    with self.lock:
                        self.objects.new(oid)
                        self.objects.store(oid, blob)
                    refs.append(ObjectRef(oid))
            return refs
        args, kwargs, deps = split_args(args, kwargs)
        args_blob = serialize((args, kwargs), f"the arguments of {method}")
        result_ids = [] if tell else [self.new_id() for _ in range(num_returns)]
        with self.lock:
            new = self.objects.table.new
            for oid in result_ids:
                new(oid)
            call = CallRecord(self.new_id(), method, args_blob, deps, result_ids)
            call.args_oid = self.objects.args_object(args_blob)
            actor = self.actors.get(actor_id)
            call.retries = actor.max_task_retries if actor is not None else 0
            if begin and rt.observed is not None:
                label: Any = method
                if actor is not None:
                    label = actor.labels.get(method) or actor.labels.setdefault(method, (actor.cls_name, method))
                rt.push((rt.seq(), "submitted", _now(), call.call_id, label, "call", call.call_id, 0, "driver", begin))
            self.enqueue_call(actor_id, call)
        refs = [ObjectRef(oid) for oid in result_ids]
        rt.receiver.assist()
        w = actor.worker if actor is not None else None
        if w is not None and len(w.link.unsent) >= rt.config.max_unsent_messages:  # the worker does not read
            self.outbox.wait_for_room(w, lambda: rt.closing, rt.receiver.assist)
        return refs

    def on_submit_call(
        self,
        w: WorkerRecord,
        actor_id: int,
        method: str,
        args_blob: Blob,
        deps: list[int],
        result_ids: list[int],
        trace: int = 0,
        parent: int = 0,
    ) -> None:
        rt = self.rt
        with self.lock:
            if not w.alive:  # a bounded call admitted after its worker died: its regions and refs are settled already
                gone = error_blob(ActorDiedError(f"the caller of {method} ({w.name}) died before its call was sent"), "the driver")
                for oid in result_ids:  # (made when its request came: stored now, they are freed)
                    self.objects.store(oid, gone)
                return
            for oid in result_ids:
                self.objects.made_by(w, oid)
            call = CallRecord(self.new_id(), method, args_blob, deps, result_ids, parent=parent)
            call.args_oid = self.objects.args_object(args_blob, w)
            actor = self.actors.get(actor_id)
            call.retries = actor.max_task_retries if actor is not None else 0
            call.trace = trace or call.call_id
            if rt.observed is not None:
                label = (actor.cls_name, method) if actor is not None else method
                rt.emit("submitted", call.call_id, label, "call", call.trace, parent, w.name, 0)
            self.enqueue_call(actor_id, call)

    def check_pending(self, actor: ActorRecord | None) -> None:
        if actor is not None and actor.over_pending_limit():
            raise PendingCallsLimitExceededError(
                f"actor {actor.cls_name} has {actor.max_pending} calls pending (its max_pending_calls); "
                "wait for some results before sending more"
            )

    def room_for_call(self, actor_id: int, method: str) -> bool:
        """Apply the actor's bounded mailbox before a new call: True to go on, False to drop the new call.

        Calls count while queued here or running (answers pending); BLOCK
        waits (outside the lock) for room, up to the mailbox's
        ``block_timeout``; FAIL raises MailboxFullError; DROP_OLDEST drops the
        oldest call not sent yet; DROP_NEWEST drops this one.
        """
        actor = self.actors.get(actor_id)
        if actor is not None and actor.mailbox is None and actor.max_pending < 0:
            return True  # the common case: no bound (a dict read is atomic; no lock)
        deadline: float | None = None
        while True:
            admitted = self._admit_once(actor_id, method)
            if admitted is not None:
                return admitted
            # WAIT: for answers to make room
            if self.rt.closing:
                raise SystemShutdownError("the cluster shut down while this call waited for room in the actor's mailbox")
            actor = self.actors[actor_id]
            spec = actor.mailbox
            now = time.monotonic()
            if deadline is None:
                deadline = float("inf") if spec.block_timeout is None else now + spec.block_timeout
            elif now >= deadline:
                raise MailboxFullError(f"actor {actor.label}'s mailbox stayed full for {spec.block_timeout} s")
            self.rt.receiver.assist()
            time.sleep(0.0005)

    def _admit_once(self, actor_id: int, method: str) -> bool | None:
        """One look at the actor's bounds: True (go on), False (drop the new call), None (wait); raises when full and FAIL."""
        with self.lock:
            actor = self.actors.get(actor_id)
            self.check_pending(actor)
            if actor is None:
                return True
            admission = actor.admit()
            if admission is Admission.ADMIT:
                return True
            spec = actor.mailbox
            if admission is Admission.FAIL:
                raise MailboxFullError(f"actor {actor.label} has {spec.capacity} calls pending, its mailbox's capacity")
            if admission is Admission.DROP_NEW:
                self.rt.events.publish(CallDropped(actor.label, method, spec.overflow.value))
                return False
            if admission is Admission.DROP_OLDEST:
                oldest = actor.queue.popleft()
                self.objects.unpin(oldest.deps)
                self.objects.decref(oldest.args_oid)
                blob = error_blob(MailboxFullError(f"dropped: actor {actor.label}'s mailbox was full (drop-oldest)"), "the driver")
                for oid in oldest.result_ids:
                    self.objects.store(oid, blob)
                self.rt.events.publish(CallDropped(actor.label, oldest.method, spec.overflow.value))
                return True
            return None

    def on_submit_call_bounded(
        self,
        w: WorkerRecord,
        request: int,
        actor_id: int,
        method: str,
        args_blob: Blob,
        deps: list[int],
        result_ids: list[int],
        trace: int = 0,
        parent: int = 0,
    ) -> None:
        """A call from a worker to an actor with bounds: admitted (answered None), dropped, refused, or made to wait.

        The worker waits for the answer, as a caller in the driver waits in
        ``submit_call``; a call that must wait for room waits on a helper
        thread, never on the receiver's.
        """

        def answer(reply: Any) -> None:
            self.outbox.send(w, ("objects", request, [(0, reply)]))

        def decided(admitted: bool | None) -> bool:
            if admitted is None:
                return False
            if admitted:
                self.on_submit_call(w, actor_id, method, args_blob, deps, result_ids, trace, parent)
            else:  # dropped (drop-newest): what it would have made fails with MailboxFullError
                self._give_back(w, args_blob)
                blob = error_blob(MailboxFullError(f"dropped: the actor's mailbox was full (drop-newest), {method}"), "the driver")
                with self.lock:
                    for oid in result_ids:
                        self.objects.store(oid, blob)
            answer(None)
            return True

        def refused(exc: Exception) -> None:
            self._give_back(w, args_blob)
            failed = error_blob(exc, "the driver")
            with self.lock:  # the caller raises at .remote() and drops its refs: the results end here
                for oid in result_ids:
                    self.objects.store(oid, failed)
            answer(failed)

        with self.lock:
            if not w.alive:
                return
            # The results exist from now on, held by the caller (which makes its refs before it waits): if it
            # gives up waiting (cancelled), its refs' release finds them, whatever is decided here later.
            for oid in result_ids:
                self.objects.made_by(w, oid)
        try:
            admitted = self._admit_once(actor_id, method)
            if admitted is None and w.actor is not None and w.actor.actor_id == actor_id:
                admitted = True  # an actor calling itself cannot wait for its own mailbox to have room: it is the room
            if decided(admitted):
                return
        except Exception as exc:
            refused(exc)
            return

        def wait_for_room() -> None:
            try:
                decided(self.room_for_call(actor_id, method))
            except Exception as exc:
                refused(exc)

        self.rt.helper(wait_for_room)

    def _give_back(self, w: WorkerRecord, blob: Blob) -> None:
        """A worker's blob no object took: the arena region it was given comes back."""
        if blob.region is not None:
            with self.lock:
                if w.allocs.pop(blob.region[0], None) is not None:
                    self.rt.store.free_for(w, *blob.region)

    def enqueue_call(self, actor_id: int, call: CallRecord) -> None:
        actor = self.actors.get(actor_id)
        if actor is None:
            blob = error_blob(ActorDiedError(f"actor {actor_id:x} is unknown to this cluster"), "the driver")
            for oid in call.result_ids:
                self.objects.store(oid, blob)
            self.objects.decref(call.args_oid)
            call.args_oid = 0
            return
        call.actor = actor
        if call.deps:
            self.objects.table.hold(call.deps, call)  # pump_calls once they are made (_args_made)
        actor.queue.append(call)
        if actor.dead is not None:
            self.fail_calls(actor)
        else:
            self.pump_calls(actor)

    def pump_calls(self, actor: ActorRecord) -> None:
        """Send queued calls in order; a call waiting for its arguments holds back the ones behind it."""
        w = actor.worker
        objects = self.objects
        post = self.outbox.post
        while (call := actor.sendable()) is not None:
            assert w is not None
            deps, args = objects.ship_args(w, call.deps, call.args_oid, call.args_blob)
            body = ("call", actor.actor_id, call.call_id, call.method, args, deps, call.result_ids, call.trace)
            unanswered = len(actor.inflight) - (1 if call.result_ids else 0)
            post(w, body, unanswered, actor.coalesce_after())
            if call.retries == 0 or not call.result_ids:
                objects.unpin(call.deps)
                objects.decref(call.args_oid)  # the worker's copy holds a pin of it from here on
                call.args_oid = 0
                call.deps = []  # consumed: a failure of the actor from here on must not release them again

    def call_done(self, actor: ActorRecord, call_id: int) -> None:
        call = actor.inflight.pop(call_id, None)
        if call is not None and (call.deps or call.args_oid):  # kept for a retry: not needed any more
            self.objects.unpin(call.deps)
            call.deps = []
            self.objects.decref(call.args_oid)
            call.args_oid = 0

    def _settle(self, calls: list[CallRecord], blob: Blob) -> None:
        objects = self.objects
        for call in calls:
            objects.unpin(call.deps)  # every dep that existed got a ref (table.hold), arrived or not
            call.deps = []
            objects.decref(call.args_oid)
            call.args_oid = 0
            for oid in call.result_ids:
                objects.store(oid, blob)

    def cancel_queued(self, oid: int, drop: bool = True) -> bool | None:
        """(lock held) Cancel the call that makes ``oid`` unless it began (as Ray's); None if no call makes it."""
        from ...core.errors import TaskCancelledError

        for actor in self.actors.values():
            call = next((c for c in actor.queue if oid in c.result_ids), None)
            sent = None if call is not None else next((c for c in actor.inflight.values() if oid in c.result_ids), None)
            if (call is not None or sent is not None) and not drop:
                return True
            if call is not None:
                actor.queue.remove(call)
                cancelled = TaskCancelledError(f"the call {actor.label}.{call.method} was cancelled before it ran")
                self._settle([call], error_blob(cancelled, "the driver"))
                self.pump_calls(actor)  # (the calls behind it may go now)
                return True
            if sent is not None and actor.worker is not None:  # (its worker drops it unless it has begun)
                self.outbox.send(actor.worker, ("cancel", sent.call_id))
                return True
        return None

    def fail_calls(self, actor: ActorRecord) -> None:
        """The actor is dead: its calls fail (those queued and in flight; later ones as they come, once each)."""
        assert actor.dead is not None
        rt = self.rt
        if not actor.exited:  # what its death itself settles, once (not again for each call made to it later)
            actor.exited = True
            if actor.held_on is not None:
                rt.resources.release(actor.needs, node=actor.held_on)  # a dead actor holds nothing
            actor.needs = {}
            rt.scheduler.groups.forget_actor(actor)
            if self.placing.pending:
                self.placing.retry()  # (what it held may be what one waits for)
            self.objects.unpin(actor.deps)
            actor.deps = []
            self.objects.decref(actor.args_oid)
            actor.args_oid = 0
            rt.events.publish(ActorExited(actor.label, str(actor.dead)))
            rt.emit("actor", actor.label, "died", actor.worker.name if actor.worker else "", str(actor.dead))
        waiting, actor.on_ready = actor.on_ready, []
        if waiting:
            died = actor.error_blob or error_blob(ActorDiedError(str(actor.dead)), "the driver")
            for answer in waiting:
                with contextlib.suppress(Exception):
                    answer(died)
        reason = actor.dead if isinstance(actor.dead, ActorDiedError) else ActorDiedError(str(actor.dead))
        blob = actor.error_blob if actor.error_blob is not None else error_blob(reason, "the driver")
        self._settle(actor.take_all_calls(), blob)

    # -- failures, kills, names ----------------------------------------------------------------

    def worker_died(self, actor: ActorRecord, w: WorkerRecord, code: int | None) -> None:
        """The process of ``actor`` died: it restarts if it may, else it is dead and its calls fail."""
        if actor.dead is not None or actor.worker is not w:
            return
        if actor.may_restart() and not self.rt.closing:
            self._restart(actor, f"its {w.name} exited with code {code}")
        else:
            spent = f" and its {actor.restarts} restarts (max_restarts) are spent" if actor.max_restarts else ""
            actor.die(f"its {w.name} exited with code {code}{spent}")
            self.fail_calls(actor)

    def _restart(self, actor: ActorRecord, reason: str) -> None:
        """Run its constructor again in a new process; calls in flight are retried or fail."""
        retried, failed = actor.begin_restart()
        blob = error_blob(
            ActorDiedError(
                f"actor {actor.label} died while running this call ({reason}); it is restarting, "
                "and the call is not retried (max_task_retries)"
            ),
            "the driver",
        )
        self._settle(failed, blob)
        self.rt.events.publish(ActorRestarting(actor.label, actor.restarts, reason, len(retried), len(failed)))
        self.rt.emit("actor", actor.label, "restarting", "", reason)
        self.rt.helper(self.place, actor)

    def kill(self, actor_id: int, no_restart: bool = True, why: str = "") -> None:
        """End actor ``actor_id`` (``why``: what its calls' errors say; by default that it was killed)."""
        with self.lock:
            actor = self.actors.get(actor_id)
            if actor is None or actor.dead is not None:
                return
            w = actor.worker
            if not no_restart:  # as if its process had crashed: it restarts if it may
                if w is not None:
                    self.lock.after(Kill(w.link))
                return
            self.end(actor, ActorDiedError(str(why)[:500] or f"actor {actor.label} was killed with nexus.kill"))

    def end(self, actor: ActorRecord, why: BaseException) -> None:
        """``actor`` dies for good now (lock held): its calls fail with ``why``, its name is free, its process is killed."""
        w = actor.worker
        actor.die(why)
        self.fail_calls(actor)
        if actor.name is not None:
            self.named.pop((actor.namespace, actor.name), None)
        if w is not None:
            self.lock.after(Kill(w.link))  # the receiver sees its pidfd and cleans up (worker_died)
