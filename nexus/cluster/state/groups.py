"""Placement groups as the head keeps them (Ray's): bundles of resources reserved on nodes, and where they go.

A group is a list of *bundles* (each a dict of resource amounts) and a
strategy: ``PACK`` (as few nodes as possible), ``SPREAD`` (different nodes,
as far as they go), ``STRICT_PACK`` (one node, or wait), ``STRICT_SPREAD``
(a different node for each bundle, or wait). :func:`plan` says where each
bundle can be reserved now, all or none, or why not.

A reserved bundle holds its resources on its node, so nothing outside the
group can use them, and *offers* them again under names of the group's own
(:func:`offers`): ``CPU_group_<i>_<id>`` for bundle ``i``, ``CPU_group_<id>``
for any bundle of the group on that node, and a marker
``bundle_group_<i>_<id>`` that binds work to the bundle's node even when it
needs nothing else. Work scheduled into the group asks for those names
(:func:`needs_in`), so the task queue and the actor placement fit and hold it
as any other need: it runs on the bundle's node, from the bundle's reservation.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .workers import InvalidTransitionError

__all__ = [
    "STRATEGIES",
    "GroupRecord",
    "GroupStatus",
    "check_bundles",
    "check_strategy",
    "group_in",
    "needs_in",
    "offers",
    "plan",
]

STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
MARKER = "bundle"  # the resource every bundle offers, so that work needing nothing else is bound to its node too
MARKER_AMOUNT = 1000.0  # what a bundle offers of its marker; work takes MARKER_TAKES of it
MARKER_TAKES = 0.001
_EPSILON = 1e-9  # sums of fractions (0.1 + 0.2) must still fit 0.3


class GroupStatus(enum.Enum):
    """Ray's states of a placement group (the names its ``placement_group_table`` shows)."""

    PENDING = "PENDING"  # not every bundle could be reserved yet
    CREATED = "CREATED"  # every bundle is reserved
    RESCHEDULING = "RESCHEDULING"  # a node with some of its bundles died: those are being reserved again
    REMOVED = "REMOVED"  # removed: its reservations are freed, its actors killed, its tasks cancelled


_NEXT = {
    GroupStatus.PENDING: frozenset({GroupStatus.CREATED, GroupStatus.REMOVED}),
    GroupStatus.CREATED: frozenset({GroupStatus.RESCHEDULING, GroupStatus.REMOVED}),
    GroupStatus.RESCHEDULING: frozenset({GroupStatus.CREATED, GroupStatus.REMOVED}),
    GroupStatus.REMOVED: frozenset(),
}


class GroupRecord:
    """One placement group: its bundles, strategy, where each bundle is reserved, and why it waits."""

    def __init__(self, group_id: int, name: str, bundles: list[dict[str, float]], strategy: str, detached: bool, ready_id: int) -> None:
        self.group_id = group_id
        self.name = name
        self.bundles = bundles
        self.strategy = strategy
        self.detached = detached
        self.ready_id = ready_id  # the object ready() refers to: stored once every bundle is reserved
        self.state = GroupStatus.PENDING
        self.nodes: list[int | None] = [None] * len(bundles)  # where each bundle is reserved (None: not now)
        self._why: str | Callable[[], str | None] | None = None  # why it is not placed now (see waiting_for)
        self.infeasible = False  # no node alive now could ever hold it (it waits for one that can to join)
        self.attempts = 0  # times placing it was tried
        self.parked: list[Any] = []  # actors created into it before it was placed: they wait for it

    @property
    def hex(self) -> str:
        return f"{self.group_id:024x}"

    @property
    def waiting_for(self) -> str | None:
        """Why it is not placed now (None: it is, or it is being placed), built the first time it is asked."""
        if callable(self._why):
            self._why = self._why()
        return self._why

    @waiting_for.setter
    def waiting_for(self, why: str | None) -> None:
        self._why = why

    def explain_later(self, why: Callable[[], str | None]) -> None:
        """It waits: ``why()`` says why, when someone asks (see :attr:`waiting_for`)."""
        self._why = why

    @property
    def placed(self) -> bool:
        return self.state is GroupStatus.CREATED

    def to(self, state: GroupStatus) -> None:
        if state not in _NEXT[self.state]:
            raise InvalidTransitionError(f"placement group {self.hex} cannot go from {self.state.value} to {state.value}")
        self.state = state

    def offers_of(self, index: int) -> dict[str, float]:
        return offers(self.group_id, index, self.bundles[index])


# -- checking what users give -----------------------------------------------------------------


def check_bundles(bundles: Any) -> list[dict[str, float]]:
    """The bundles as plain dicts of floats; ValueError saying what is wrong with them and what to pass."""
    example = "such as [{'CPU': 1}, {'CPU': 1, 'GPU': 1}]"
    if isinstance(bundles, Mapping) or not isinstance(bundles, Sequence) or isinstance(bundles, (str, bytes)):
        raise ValueError(f"placement_group takes a list of bundles, each a dict of resource amounts ({example}), not {bundles!r}")
    if not bundles:
        raise ValueError(f"placement_group needs at least one bundle ({example}); it got an empty list")
    out = []
    for i, bundle in enumerate(bundles):
        if not isinstance(bundle, Mapping):
            raise ValueError(f"bundle {i} is {bundle!r}: a bundle is a dict of resource names to amounts ({example})")
        amounts: dict[str, float] = {}
        for key, value in bundle.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"bundle {i} names a resource {key!r}: resource names are non-empty strings")
            if "_group_" in key:
                raise ValueError(f"bundle {i} names {key!r}: '_group_' is kept for the names of groups' reservations")
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"bundle {i} asks for {value!r} {key}: an amount is a finite number, such as 1 or 0.5")
            if value < 0:
                raise ValueError(f"bundle {i} asks for {value:g} {key}: amounts cannot be negative")
            amounts[key] = float(value)
        if not any(amounts.values()):
            raise ValueError(
                f"bundle {i} is {dict(bundle)!r}: a bundle must reserve something (a positive amount of some resource, "
                "such as {'CPU': 1})"
            )
        out.append({k: v for k, v in amounts.items() if v})
    return out


def check_strategy(strategy: Any) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"a placement group's strategy is one of {', '.join(STRATEGIES)}, not {strategy!r}")
    return str(strategy)


# -- the names a reserved bundle offers ---------------------------------------------------------


def resource_name(resource: str, group_id: int, index: int = -1) -> str:
    """The name under which a group offers ``resource`` (of bundle ``index``; -1: of any of its bundles on a node)."""
    return f"{resource}_group_{group_id:024x}" if index < 0 else f"{resource}_group_{index}_{group_id:024x}"


def offers(group_id: int, index: int, bundle: Mapping[str, float]) -> dict[str, float]:
    """What reserving bundle ``index`` offers on its node (added to that node's resources while it is reserved)."""
    out: dict[str, float] = {}
    for key, amount in {**bundle, MARKER: MARKER_AMOUNT}.items():
        out[resource_name(key, group_id, index)] = amount
        out[resource_name(key, group_id)] = amount
    return out


def needs_in(own: Mapping[str, float], group_id: int, index: int) -> dict[str, float]:
    """What work that needs ``own`` holds when it runs in bundle ``index`` of the group (-1: any bundle of it).

    A bundle's work holds the bundle's names and the group's (the group's:
    all its bundles on one node, so that work into "any bundle" and work
    into bundle ``i`` never hold more together than the node's bundles have).
    """
    out = {resource_name(MARKER, group_id): MARKER_TAKES}
    if index >= 0:
        out[resource_name(MARKER, group_id, index)] = MARKER_TAKES
    for key, amount in own.items():
        if amount:
            out[resource_name(key, group_id)] = amount
            if index >= 0:
                out[resource_name(key, group_id, index)] = amount
    return out


def group_in(needs: Mapping[str, float] | None) -> int:
    """The group whose bundle ``needs`` are held in (see :func:`needs_in`), or 0."""
    if not needs:
        return 0
    prefix = f"{MARKER}_group_"
    for key in needs:
        if key.startswith(prefix) and "_" not in key[len(prefix) :]:
            return int(key[len(prefix) :], 16)
    return 0


# -- where the bundles go -----------------------------------------------------------------------


def _fits(bundle: Mapping[str, float], free: Mapping[str, float]) -> bool:
    return all(free.get(k, 0.0) + _EPSILON >= v for k, v in bundle.items())


def _take(bundle: Mapping[str, float], free: dict[str, float]) -> None:
    for k, v in bundle.items():
        free[k] = free.get(k, 0.0) - v


def _sum(bundles: Sequence[Mapping[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for bundle in bundles:
        for k, v in bundle.items():
            total[k] = total.get(k, 0.0) + v
    return total


def _shown(amounts: Mapping[str, float]) -> str:
    return "{" + ", ".join(f"{k!r}: {v:g}" for k, v in amounts.items()) + "}"


def _have(nodes: Mapping[int, Mapping[str, float]], keys: Any) -> str:
    said = [
        f"node {n:06x}: " + (", ".join(f"{max(a.get(k, 0.0), 0.0):g} {k}" for k in keys) or "nothing") for n, a in list(nodes.items())[:4]
    ]
    more = f"; and {len(nodes) - 4} more" if len(nodes) > 4 else ""
    return "; ".join(said) + more


def _match(wants: list[list[int]]) -> list[int] | None:
    """A distinct node for each bundle among those it may go to (``wants[i]``), or None: augmenting paths (Kuhn)."""
    owner: dict[int, int] = {}  # node -> bundle

    def assign(i: int, seen: set[int]) -> bool:
        for node in wants[i]:
            if node in seen:
                continue
            seen.add(node)
            if node not in owner or assign(owner[node], seen):
                owner[node] = i
                return True
        return False

    for i in range(len(wants)):
        if not assign(i, set()):
            return None
    out = [0] * len(wants)
    for node, i in owner.items():
        out[i] = node
    return out


def never_fits(
    bundles: Sequence[Mapping[str, float]], strategy: str, total: Mapping[int, Mapping[str, float]], explain: bool = True
) -> str | None:
    """Why no node alive now could ever hold the group (what they have in all, nothing held), or None.

    ``explain=False``: "" instead of the reason (building it costs more than the check).
    """

    def have() -> str:
        return _have(total, sorted({k for b in bundles for k in b}))

    for i, bundle in enumerate(bundles):
        if not any(_fits(bundle, t) for t in total.values()):
            if not explain:
                return ""
            return f"bundle {i} {_shown(bundle)} is larger than any node alive now ({have()}); it waits for a node that has it"
    if strategy == "STRICT_PACK":
        whole = _sum(bundles)
        if not any(_fits(whole, t) for t in total.values()):
            if not explain:
                return ""
            return f"STRICT_PACK needs {_shown(whole)} on one node and no node alive now has that ({have()}); it waits for one that has"
    if strategy == "STRICT_SPREAD" and _match([[n for n, t in total.items() if _fits(b, t)] for b in bundles]) is None:
        return (
            (
                f"STRICT_SPREAD needs {len(bundles)} different nodes, one for each bundle, and only {len(total)} "
                "alive now could hold them; it waits for more nodes to join"
            )
            if explain
            else ""
        )
    return None


def plan(
    bundles: Sequence[Mapping[str, float]],
    strategy: str,
    free: Mapping[int, Mapping[str, float]],
    placed: Mapping[int, int] | None = None,
    explain: bool = True,
) -> tuple[dict[int, int] | None, str]:
    """Where to reserve the bundles not ``placed`` yet (index -> node) with what ``free`` says each node has free now.

    All or none: returns (the nodes by bundle index, "") or (None, why they do
    not fit now). ``free`` is ordered: earlier nodes are preferred (the head's
    own host first). ``placed`` (index -> node) are the bundles reserved
    already (a group whose node died places the others again, beside them).
    ``explain=False``: "" instead of the reason (building it costs more than the plan).
    """
    placed = dict(placed or {})
    todo = [i for i in range(len(bundles)) if i not in placed]
    left = {n: dict(f) for n, f in free.items()}
    keys = sorted({k for i in todo for k in bundles[i]}) if explain else []
    if strategy in ("STRICT_PACK", "PACK"):
        # one node for every bundle: the node of those placed already, else any (the first that has room)
        whole = _sum([bundles[i] for i in todo])
        targets = sorted(set(placed.values())) if placed else list(left)
        for node in targets:
            if node in left and _fits(whole, left[node]):
                return dict.fromkeys(todo, node), ""
        if strategy == "STRICT_PACK" and not explain:
            return None, ""
        if strategy == "STRICT_PACK":
            where = f"node {targets[0]:06x}, where its other bundles are," if placed and targets else "one node"
            return None, f"STRICT_PACK needs {_shown(whole)} free on {where} and none has that free now ({_have(left, keys)})"
    if strategy == "STRICT_SPREAD":
        taken = set(placed.values())
        chosen = _match([[n for n in left if n not in taken and _fits(bundles[i], left[n])] for i in todo])
        if chosen is None and not explain:
            return None, ""
        if chosen is None:
            return None, (
                f"STRICT_SPREAD needs {len(bundles)} different nodes with a bundle's resources free, and fewer have them "
                f"now ({_have(left, keys)})"
            )
        return dict(zip(todo, chosen, strict=True)), ""
    # PACK (over several nodes) and SPREAD: one bundle at a time, counting what the earlier ones took
    count: dict[int, int] = {}
    for node in placed.values():
        count[node] = count.get(node, 0) + 1
    out: dict[int, int] = {}
    order = list(left)
    for i in todo:
        bundle = bundles[i]
        if strategy == "PACK":  # the nodes it uses already, most used first; then the others, the roomiest first
            ranked = sorted(order, key=lambda n: (-count.get(n, 0), -left[n].get("CPU", 0.0)))
        else:  # SPREAD: the nodes it uses least first
            ranked = sorted(order, key=lambda n: count.get(n, 0))
        to = next((n for n in ranked if _fits(bundle, left[n])), None)
        if to is None and not explain:
            return None, ""
        if to is None:
            return None, f"bundle {i} {_shown(bundle)} fits on no node's free resources now ({_have(left, sorted(bundle))})"
        out[i] = to
        _take(bundle, left[to])
        count[to] = count.get(to, 0) + 1
    return out, ""
