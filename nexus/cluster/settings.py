"""One TOML file for a cluster (``nexus.toml``, or the file ``NEXUS_CONFIG`` names), read into typed, frozen objects.

::

    [cluster]        # what nexus.init() starts on this host
    num_cpus = 4
    [head]           # nexus start --head
    bind = "127.0.0.1"
    port = 6380
    [node]           # nexus start --address ... (a node that joins a head)
    address = "10.0.0.1:6380"
    key = "/home/me/.nexus/node.key"
    [tuning]         # the scheduler's tunables: ClusterConfig's fields
    prefetch = 4

:func:`load_settings` reads and checks the whole file before anything starts:
every problem is reported at once, each naming its key path, the value
expected, the value given and the fix (:class:`ConfigError`). Unknown keys
are errors (a misspelt key would otherwise be silently ignored), with the
closest known key suggested. ``nexus.init(config=...)`` and the ``nexus`` CLI
take the result; what the caller passes explicitly wins over the file.
The editions' commented templates (``nexus config init --edition``) are
:func:`template` and validate as they are.

The file is user data that steers processes: one owned by another user, or
that others may write, is refused (a second local user could otherwise plant
a ``nexus.toml`` where ours is looked for).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import stat
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .config import ClusterConfig, parse_membership

__all__ = [
    "EDITIONS",
    "ClusterSettings",
    "ConfigError",
    "HeadSettings",
    "NodeSettings",
    "Problem",
    "Settings",
    "find_config",
    "load_settings",
    "parse_settings",
    "template",
]

EDITIONS = ("core", "std", "enterprise")
FILE_NAME = "nexus.toml"
TRANSPORTS = ("shm", "zmq", "zmq+ipc", "zmq+tcp")
HEAD_KEYS = ("node_timeout", "phi_threshold", "membership")  # (ClusterConfig's fields that [head] sets)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a config file: where (``head.port``), what was expected, what was given, and the fix."""

    path: str
    expected: str
    given: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, got {self.given}; {self.fix}"


class ConfigError(ValueError):
    """A config file that cannot be used: every problem in it (``problems``), each on a line of the message."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source, self.problems = source, problems
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{lines}")


def _key(doc: str, low: float | None = None, high: float | None = None, fix: str = "") -> Any:
    return {"doc": doc, "low": low, "high": high, "fix": fix}


@dataclass(frozen=True)
class ClusterSettings:
    """``[cluster]``: the cluster ``nexus.init()`` starts on this host (its arguments of the same names)."""

    num_cpus: int | None = field(default=None, metadata=_key("worker processes for tasks", 1, 4096))
    object_store_memory: int | None = field(default=None, metadata=_key("bytes of the shared-memory object store", 1 << 20))
    namespace: str | None = field(default=None, metadata=_key("the namespace of named actors"))
    transport: str | None = field(
        default=None,
        metadata=_key("the channel to the workers", fix=f"one of {', '.join(TRANSPORTS)}, or an installed plugin's name"),
    )
    observe: bool = field(default=True, metadata=_key("whether events are recorded for timelines and metrics"))
    resources: dict[str, float] = field(default_factory=dict, metadata=_key("amounts of other resources", 0))


@dataclass(frozen=True)
class HeadSettings:
    """``[head]``: ``nexus start --head`` (its options of the same names)."""

    bind: str = field(
        default="127.0.0.1", metadata=_key("the address to listen on", fix='"127.0.0.1" (loopback only) or an address of this host')
    )
    port: int = field(default=6380, metadata=_key("the head's port", 0, 65535, "a port number (0: any free one)"))
    node_timeout: float = field(default=5.0, metadata=_key("seconds of silence before a node is declared dead", 0.1, 3600))
    phi_threshold: float = field(default=8.0, metadata=_key("phi from which a silent node is suspected", 0.5, 100))
    membership: str = field(
        default="memory", metadata=_key("where the head keeps the members", fix='"memory" or "etcd://HOST:PORT[/PREFIX/]"')
    )
    num_cpus: int | None = field(default=None, metadata=_key("CPUs this node offers", 0, 4096))
    management: bool = field(default=True, metadata=_key("whether the head serves its REST management port"))
    management_bind: str = field(default="127.0.0.1", metadata=_key("the management port's address to listen on"))
    management_port: int = field(default=0, metadata=_key("the management port", 0, 65535, "a port number (0: any free one)"))


@dataclass(frozen=True)
class NodeSettings:
    """``[node]``: a node that joins a head (``nexus start`` without ``--head``)."""

    address: str = field(default="", metadata=_key("the head's HOST:PORT", fix='the address `nexus start --head` printed, "10.0.0.1:6380"'))
    key: str = field(default="", metadata=_key("the path of the head's node.key file, not the key itself"))
    num_cpus: int | None = field(default=None, metadata=_key("CPUs this node offers", 0, 4096))


@dataclass(frozen=True)
class Settings:
    """A whole config file, checked: its sections, and where it was read from (``source``; "" for the defaults)."""

    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    head: HeadSettings = field(default_factory=HeadSettings)
    node: NodeSettings = field(default_factory=NodeSettings)
    tuning: ClusterConfig = field(default_factory=ClusterConfig)
    source: str = ""

    def system_config(self) -> ClusterConfig:
        """The cluster's tunables: ``[tuning]``, with what ``[head]`` says of membership and failure detection."""
        head = self.head
        return self.tuning.replace(node_timeout=head.node_timeout, phi_threshold=head.phi_threshold, membership=head.membership)


SECTIONS: dict[str, type] = {"cluster": ClusterSettings, "head": HeadSettings, "node": NodeSettings, "tuning": ClusterConfig}


# -- reading ----------------------------------------------------------------------------------------------------


def find_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file to read: ``path``, else ``$NEXUS_CONFIG``, else ``./nexus.toml`` if there is one; else None."""
    environ = os.environ if environ is None else environ
    if path is not None:
        return Path(path)
    named = environ.get("NEXUS_CONFIG")
    if named:
        return Path(named)
    here = Path(FILE_NAME)
    return here if here.is_file() else None


def load_settings(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of ``path`` (or of the file :func:`find_config` finds; the defaults when there is none).

    ConfigError when the file is missing, not ours, not TOML, or says something wrong.
    """
    found = find_config(path, environ)
    if found is None:
        return Settings()
    source = str(found)
    try:
        info = os.stat(found)
        text = found.read_bytes()
    except OSError as exc:
        raise ConfigError(source, [Problem("(file)", "a readable TOML file", f"{exc.strerror or exc}", "check the path")]) from None
    if info.st_uid not in (os.geteuid(), 0) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        given = f"owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o}"
        raise ConfigError(source, [Problem("(file)", "a file of yours that only you may write", given, f"chmod go-w {source}")])
    return parse_settings(text.decode("utf-8", errors="replace"), source)


def parse_settings(text: str, source: str = FILE_NAME) -> Settings:
    """``text`` (TOML) checked and read into Settings; ConfigError listing every problem."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover (3.10)
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [Problem("(file)", "TOML", f"a syntax error: {exc}", "fix the line it names")]) from None
    problems: list[Problem] = []
    sections: dict[str, Any] = {}
    for name, value in data.items():
        if name not in SECTIONS:
            problems.append(Problem(name, f"a section: {', '.join(f'[{s}]' for s in SECTIONS)}", repr(name), _did_you_mean(name, SECTIONS)))
        elif not isinstance(value, dict):
            problems.append(Problem(name, "a table", _shown(value), f"write it as [{name}] with its keys below"))
        else:
            sections[name] = _section(name, SECTIONS[name], value, problems)
    if problems:
        raise ConfigError(source, problems)
    return Settings(**sections, source=source)


def _section(name: str, cls: type, table: dict[str, Any], problems: list[Problem]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    before = len(problems)
    for key, value in table.items():
        if cls is ClusterConfig and key in HEAD_KEYS:
            problems.append(Problem(f"{name}.{key}", "a key of [tuning]", repr(key), f"it is the head's: set head.{key} instead"))
            continue
        if key not in fields:
            problems.append(Problem(f"{name}.{key}", f"a key of [{name}]", repr(key), _did_you_mean(key, fields)))
            continue
        checked = _value(f"{name}.{key}", hints[key], value, fields[key].metadata, problems)
        if checked is not _BAD:
            values[key] = checked
    _check_meaning(name, cls, values, problems)
    if len(problems) > before:
        return None
    try:
        return cls(**values)
    except ValueError as exc:  # (a check across keys, such as ClusterConfig's)
        problems.append(Problem(name, "values that go together", "these", str(exc)))
        return None


_BAD = object()


def _value(path: str, hint: Any, value: Any, meta: Mapping[str, Any], problems: list[Problem]) -> Any:
    """``value`` as ``hint`` wants it (an int for a float is taken), within the bounds of ``meta``; else _BAD."""
    doc, fix = meta.get("doc", ""), meta.get("fix", "")
    args = typing.get_args(hint)
    if type(None) in args:  # (X | None: leaving the key out means None; TOML has no null)
        hint = next(a for a in args if a is not type(None))
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value in typing.get_args(hint):
            return value
        choices = ", ".join(repr(a) for a in typing.get_args(hint))
        problems.append(Problem(path, f"one of {choices}", _shown(value), fix or f"pick one of {choices}"))
        return _BAD
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(Problem(path, f"a table ({doc})", _shown(value), fix or "write it as {NAME = AMOUNT, ...}"))
            return _BAD
        out = {}
        for k, v in value.items():
            one = _value(f"{path}.{k}", typing.get_args(hint)[1], v, meta, problems)
            if one is not _BAD:
                out[str(k)] = one
        return out if len(out) == len(value) else _BAD
    wanted = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
    ok = isinstance(value, hint) and not (hint is not bool and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        problems.append(Problem(path, f"{wanted} ({doc})" if doc else wanted, _shown(value), fix or f"write {wanted}"))
        return _BAD
    low, high = meta.get("low"), meta.get("high")
    if hint in (int, float) and ((low is not None and value < low) or (high is not None and value > high)):
        span = _span(low, high)
        problems.append(
            Problem(path, f"{wanted} {span} ({doc})" if doc else f"{wanted} {span}", _shown(value), fix or f"write a value {span}")
        )
        return _BAD
    return value


def _check_meaning(name: str, cls: type, values: dict[str, Any], problems: list[Problem]) -> None:
    """The checks of one section's values that their types cannot say."""
    transport = values.get("transport") if cls is ClusterSettings else None
    if transport is not None and transport not in TRANSPORTS:
        from importlib.metadata import entry_points

        plugins = {e.name for e in entry_points(group="nexus.transports")}
        if transport not in plugins:
            known = ", ".join(sorted({*TRANSPORTS, *plugins}))
            problems.append(Problem(f"{name}.transport", f"a transport: {known}", repr(transport), "pick one of those"))
    if cls is ClusterSettings and "CPU" in (values.get("resources") or {}):
        problems.append(Problem(f"{name}.resources.CPU", "resources other than CPU", "CPU", "set num_cpus instead"))
    membership = values.get("membership") if cls is HeadSettings else None
    if membership is not None:
        try:
            parse_membership(membership)
        except ValueError:
            forms = '"memory" or "etcd://HOST:PORT[/PREFIX/]"'
            problems.append(Problem(f"{name}.membership", forms, repr(membership), "write one of those forms"))
    address = values.get("address") if cls is NodeSettings else None
    if address:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            problems.append(Problem(f"{name}.address", "HOST:PORT", repr(address), 'write it as the head printed it, "10.0.0.1:6380"'))


def _span(low: float | None, high: float | None) -> str:
    def shown(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    if low is not None and high is not None:
        return f"from {shown(low)} to {shown(high)}"
    return f"at least {shown(low)}" if low is not None else f"at most {shown(high)}"  # type: ignore[arg-type]


def _did_you_mean(key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f"did you mean {close[0]!r}?" if close else f"the known ones are {', '.join(known)}"


def _shown(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array", dict: "a table"}
    return f"{value!r} ({kind.get(type(value), type(value).__name__)})"


def init_arguments(config: Any, given: dict[str, Any], system_config: Any) -> tuple[dict[str, Any], Any]:
    """``nexus.init``'s arguments: those ``given`` (not None), else the ``[cluster]`` of ``config`` (a path,
    Settings, or None: the file :func:`find_config` finds); and its tunables, ``[tuning]`` under ``system_config``
    (a ClusterConfig passed is taken whole; a dict's keys win over the file's)."""
    settings = config if isinstance(config, Settings) else load_settings(config)
    chosen = {k: v if v is not None else getattr(settings.cluster, k) for k, v in given.items()}
    chosen["resources"] = chosen["resources"] or None
    if isinstance(system_config, ClusterConfig):
        return chosen, system_config
    return chosen, ClusterConfig.from_environment(system_config, os.environ, base=settings.tuning)  # ([head] is a head's)


# -- the editions' templates ----------------------------------------------------------------------------------


def template(edition: str) -> str:
    """The commented config file of ``edition`` (core: one host; std: a head and nodes; enterprise: etcd and
    a head reachable by other hosts); ValueError naming the editions."""
    if edition not in EDITIONS:
        raise ValueError(f"an edition is one of {', '.join(EDITIONS)}, not {edition!r}")
    return resources.files(__package__).joinpath("editions").joinpath(f"{edition}.toml").read_text()
