"""Key files: made private, read only when they are this user's and nobody else's, and clear about what is wrong."""

from __future__ import annotations

import json
import os
import stat

import pytest

from nexus.cluster.remote.files import private_folder, write_private
from nexus.cluster.remote.keys import create_head_keys, load_head_keys, load_node_key


def test_the_heads_keys_are_made_private_and_taken_again_when_it_restarts(tmp_path) -> None:
    keys = create_head_keys(str(tmp_path / "head"), "c1")
    for name in ("head.key", "node.key", "allowed/node.pub"):
        mode = stat.S_IMODE(os.stat(tmp_path / "head" / name).st_mode)
        assert mode == 0o600, (name, oct(mode))
    for folder in ("head", "head/allowed"):
        assert stat.S_IMODE(os.stat(tmp_path / folder).st_mode) == 0o700
    node = load_node_key(keys.node_key_file)
    assert node.head_public == keys.head.public
    assert keys.allowed() == {node.pair.public}
    again = create_head_keys(str(tmp_path / "head"), "c2")
    assert again.head == keys.head and again.cluster == "c1", "a restarted head keeps its keys (nodes keep their key file)"
    assert load_head_keys(str(tmp_path / "head")).head == keys.head


def test_a_key_file_others_can_read_is_refused_with_what_to_do(tmp_path) -> None:
    keys = create_head_keys(str(tmp_path / "head"), "c")
    os.chmod(keys.node_key_file, 0o644)
    with pytest.raises(PermissionError, match=r"can be read or written by others \(mode -rw-r--r--\): `chmod 600 .*node.key`"):
        load_node_key(keys.node_key_file)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_key_file_of_another_user_is_refused(tmp_path) -> None:
    keys = create_head_keys(str(tmp_path / "head"), "c")
    os.chown(keys.node_key_file, 65534, 65534)
    with pytest.raises(PermissionError, match="belongs to uid 65534, not to you"):
        load_node_key(keys.node_key_file)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_folder_of_another_user_is_never_used_for_keys(tmp_path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(PermissionError, match="not a private folder of this user"):
        create_head_keys(str(theirs), "c")
    open_folder = tmp_path / "open"
    open_folder.mkdir()
    os.chmod(open_folder, 0o777)
    with pytest.raises(PermissionError, match="chmod 700"):
        private_folder(open_folder)


def test_a_symlink_in_place_of_a_key_file_is_refused(tmp_path) -> None:
    keys = create_head_keys(str(tmp_path / "head"), "c")
    link = tmp_path / "link.key"
    link.symlink_to(keys.node_key_file)
    with pytest.raises(PermissionError, match="a symlink is refused"):
        load_node_key(link)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not a Nexus key file"),
        (json.dumps([1, 2]), "not a Nexus key file"),
        (json.dumps({"public": "short", "secret": "s", "head_public": "h"}), "holds no valid key"),
        (json.dumps({"cluster": "c"}), "has no 'public'"),
    ],
)
def test_a_file_that_is_not_a_key_file_says_so(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content.encode())
    os.close(fd)
    with pytest.raises(ValueError, match=message):
        load_node_key(path)


def test_a_public_and_secret_key_that_are_not_a_pair_are_refused(tmp_path) -> None:
    one = load_node_key(create_head_keys(str(tmp_path / "a"), "a").node_key_file)
    two = load_node_key(create_head_keys(str(tmp_path / "b"), "b").node_key_file)
    path = str(tmp_path / "mixed.key")
    write_private(path, {"head_public": one.head_public, "public": one.pair.public, "secret": two.pair.secret})
    with pytest.raises(ValueError, match="not a pair"):
        load_node_key(path)


def test_a_missing_key_file_says_where_it_was_looked_for(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=f"no key file at {tmp_path}/none.key"):
        load_node_key(tmp_path / "none.key")
