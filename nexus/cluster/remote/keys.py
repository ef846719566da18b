"""A cluster's CURVE keys, as files only their owner can read.

``nexus start --head`` makes, in its private folder (mode 0700):

- ``head.key``: the head's own key pair (the server's, in CURVE terms);
- ``node.key``: what a node needs to join, to be copied to the hosts that
  join (scp): the head's public key and one node key pair, whose public half
  is on the head's allow-list;
- ``allowed/``: the allow-list, a file per public key a peer may
  authenticate with (``<name>.pub``).

Every key file is written 0600 and read only after checking that it is a
regular file of this user that nobody else can read or write: a key another
local user could read is a key they have. The files are JSON; keys are the
40-character Z85 text ZeroMQ uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from typing import Any

import zmq
from zmq.utils import z85

from .files import private_folder, write_private

__all__ = ["HeadKeys", "KeyPair", "NodeKey", "create_head_keys", "load_head_keys", "load_node_key", "quiet_auth_log"]


@dataclass(frozen=True)
class KeyPair:
    public: str
    secret: str

    @staticmethod
    def new() -> KeyPair:
        public, secret = zmq.curve_keypair()
        return KeyPair(public.decode("ascii"), secret.decode("ascii"))


@dataclass(frozen=True)
class NodeKey:
    """What ``--key FILE`` holds: the head's public key and this peer's own pair."""

    cluster: str
    head_public: str
    pair: KeyPair
    path: str = ""


@dataclass(frozen=True)
class HeadKeys:
    folder: str
    cluster: str
    head: KeyPair
    node_key_file: str

    def allowed(self) -> set[str]:
        """The public keys on the allow-list now (read each time: a key added while the head runs counts)."""
        keys = set()
        folder = os.path.join(self.folder, "allowed")
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(folder):
                if name.endswith(".pub"):
                    path = os.path.join(folder, name)
                    with contextlib.suppress(OSError, ValueError, KeyError):
                        keys.add(_key_text(_read_private(path)["public"], path))
        return keys


def _read_private(path: str) -> dict:
    """The JSON of a key file, after checking it is this user's regular file that nobody else can read or write."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileNotFoundError(f"no key file at {path}") from None
    except OSError as exc:
        raise PermissionError(f"cannot open the key file {path}: {exc.strerror} (a symlink is refused)") from None
    with os.fdopen(fd) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise PermissionError(f"{path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise PermissionError(f"the key file {path} belongs to uid {st.st_uid}, not to you: copy it and `chmod 600` the copy")
        if st.st_mode & 0o077:
            raise PermissionError(
                f"the key file {path} can be read or written by others (mode {stat.filemode(st.st_mode)}): `chmod 600 {path}`"
            )
        try:
            data = json.loads(f.read(1 << 16))
        except ValueError:
            raise ValueError(f"{path} is not a Nexus key file (not JSON)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a Nexus key file")
    return data


def _key_text(value: object, path: str) -> str:
    if not isinstance(value, str) or len(value) != 40:
        raise ValueError(f"{path} holds no valid key (a key is 40 characters of Z85)")
    try:
        z85.decode(value)
    except Exception:
        raise ValueError(f"{path} holds no valid key (not Z85)") from None
    return value


def create_head_keys(folder: str, cluster: str) -> HeadKeys:
    """Make the head's keys in ``folder`` (made private if missing), or take the ones made there before."""
    folder = private_folder(folder)
    head_file = os.path.join(folder, "head.key")
    node_file = os.path.join(folder, "node.key")
    if os.path.exists(head_file) and os.path.exists(node_file):
        return load_head_keys(folder)
    head, node = KeyPair.new(), KeyPair.new()
    private_folder(os.path.join(folder, "allowed"))
    write_private(os.path.join(folder, "allowed", "node.pub"), {"public": node.public})
    write_private(node_file, {"cluster": cluster, "head_public": head.public, "public": node.public, "secret": node.secret})
    write_private(head_file, {"cluster": cluster, "public": head.public, "secret": head.secret})
    return HeadKeys(folder, cluster, head, node_file)


def load_head_keys(folder: str) -> HeadKeys:
    folder = private_folder(folder)
    path = os.path.join(folder, "head.key")
    data = _read_private(path)
    head = KeyPair(_key_text(data.get("public"), path), _key_text(data.get("secret"), path))
    return HeadKeys(folder, str(data.get("cluster", "")), head, os.path.join(folder, "node.key"))


def load_node_key(path: str | os.PathLike[str]) -> NodeKey:
    """The key file a node (or a driver, or ``nexus status``) joins with; clear errors for a wrong or loose one."""
    path = os.path.abspath(os.fspath(path))
    data = _read_private(path)
    try:
        pair = KeyPair(_key_text(data["public"], path), _key_text(data["secret"], path))
        head_public = _key_text(data["head_public"], path)
    except KeyError as exc:
        raise ValueError(f"{path} is not a node key file: it has no {exc.args[0]!r} (use the node.key `nexus start --head` made)") from None
    if zmq.curve_public(pair.secret.encode("ascii")).decode("ascii") != pair.public:
        raise ValueError(f"{path}: its public and secret keys are not a pair")
    return NodeKey(str(data.get("cluster", "")), head_public, pair, path)


def quiet_auth_log(name: str) -> Any:
    """A logger for a ZAP authenticator (``zmq.auth``) that says nothing: refusals are counted and said by the
    socket's owner, at a limited rate, rather than once per attempt by the authenticator."""
    import logging

    logger = logging.getLogger(name)
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return logger
