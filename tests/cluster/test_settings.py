"""The config file (nexus.toml): read into typed frozen settings, every problem named by its key, the editions'
templates valid, and nexus.init(config=...) starting the cluster it describes."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

import nexus
from nexus.cluster.config import ClusterConfig
from nexus.cluster.settings import EDITIONS, ConfigError, Settings, find_config, load_settings, parse_settings, template


def _problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(text, "t.toml")
    return {p.path: str(p) for p in caught.value.problems}


def test_a_file_is_read_into_typed_frozen_settings() -> None:
    settings = parse_settings(
        """
        [cluster]
        num_cpus = 3
        resources = { GPU = 1 }
        [head]
        port = 0
        node_timeout = 2          # an integer where a number is wanted is taken
        membership = "etcd://127.0.0.1:2379"
        [node]
        address = "10.0.0.1:6380"
        key = "/home/me/.nexus/node.key"
        [tuning]
        prefetch = 8
        """,
        "t.toml",
    )
    assert settings.cluster.num_cpus == 3 and settings.cluster.resources == {"GPU": 1.0}
    assert settings.head.port == 0 and settings.head.node_timeout == 2.0 and isinstance(settings.head.node_timeout, float)
    assert settings.node.address == "10.0.0.1:6380" and settings.tuning.prefetch == 8 and settings.source == "t.toml"
    tunables = settings.system_config()
    assert tunables.prefetch == 8 and tunables.node_timeout == 2.0 and tunables.membership == "etcd://127.0.0.1:2379"
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.head.port = 1  # type: ignore[misc]
    assert parse_settings("") == Settings(source="nexus.toml"), "an empty file is the defaults"


def test_every_problem_is_reported_at_once_naming_its_key_what_was_expected_given_and_the_fix() -> None:
    found = _problems(
        """
        [head]
        port = 70000
        bnid = "0.0.0.0"
        node_timeout = "5"
        membership = "etc://x"
        [cluster]
        num_cpus = true
        resources = { GPU = -1 }
        transport = "tcp"
        [node]
        address = "nowhere"
        [tuning]
        prefetch = 1.5
        node_timeout = 3
        [clutser]
        """
    )
    assert set(found) == {
        "head.port",
        "head.bnid",
        "head.node_timeout",
        "head.membership",
        "cluster.num_cpus",
        "cluster.resources.GPU",
        "cluster.transport",
        "node.address",
        "tuning.prefetch",
        "tuning.node_timeout",
        "clutser",
    }
    assert found["head.port"] == (
        "head.port: expected an integer from 0 to 65535 (the head's port), got 70000 (an integer); a port number (0: any free one)"
    )
    assert "did you mean 'bind'?" in found["head.bnid"] and "did you mean 'cluster'?" in found["clutser"]
    assert "expected a number" in found["head.node_timeout"] and "got '5' (a string)" in found["head.node_timeout"]
    assert "got True (a boolean)" in found["cluster.num_cpus"], "true is no integer, though Python says so"
    assert "at least 0" in found["cluster.resources.GPU"] and "zmq+tcp" in found["cluster.transport"]
    assert "etcd://HOST:PORT" in found["head.membership"] and "HOST:PORT" in found["node.address"]
    assert "set head.node_timeout instead" in found["tuning.node_timeout"], "one key, one place"
    assert "got 1.5 (a number)" in found["tuning.prefetch"]


def test_bad_toml_and_values_that_do_not_go_together_are_problems_too() -> None:
    assert "line 1" in _problems("[head\nport = 1")["(file)"]
    assert "a table" in _problems('head = "x"')["head"]
    assert "channel_bytes must be a power of two" in _problems("[tuning]\nchannel_bytes = 5000")["tuning"]


def test_each_editions_template_validates_as_it_is_and_says_what_it_is_for() -> None:
    for edition in EDITIONS:
        text = template(edition)
        assert text.startswith(f'# Nexus configuration: the "{edition}" edition'), edition
        parse_settings(text, edition)
    assert parse_settings(template("enterprise")).head.membership.startswith("etcd://")
    with pytest.raises(ValueError, match="core, std, enterprise"):
        template("pro")


def test_the_file_is_found_by_argument_environment_or_in_this_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_config(None, {}) is None and load_settings(None, {}) == Settings()
    (tmp_path / "nexus.toml").write_text("[cluster]\nnum_cpus = 2\n")
    assert find_config(None, {}) == Path("nexus.toml") and load_settings(None, {}).cluster.num_cpus == 2
    other = tmp_path / "other.toml"
    other.write_text("[cluster]\nnum_cpus = 5\n")
    assert load_settings(None, {"NEXUS_CONFIG": str(other)}).cluster.num_cpus == 5
    assert load_settings(other, {"NEXUS_CONFIG": "nowhere"}).cluster.num_cpus == 5, "the argument first"
    with pytest.raises(ConfigError, match="No such file"):
        load_settings(tmp_path / "missing.toml")


def test_a_file_that_others_may_write_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text("[cluster]\nnum_cpus = 2\n")
    os.chmod(path, 0o666)
    with pytest.raises(ConfigError, match="only you may write") as caught:
        load_settings(path)
    assert f"chmod go-w {path}" in str(caught.value)
    os.chmod(path, 0o644)
    assert load_settings(path).cluster.num_cpus == 2


def test_init_starts_the_cluster_the_file_describes_and_what_it_is_passed_wins(tmp_path: Path) -> None:
    path = tmp_path / "nexus.toml"
    text = '[cluster]\nnum_cpus = 2\nnamespace = "from-file"\nresources = { slot = 3 }\n[tuning]\nprefetch = 7\n'
    path.write_text(text + '[head]\nmembership = "etcd://127.0.0.1:1"\n')  # (a head's: not this cluster's)
    info = nexus.init(config=path)
    try:
        assert nexus.cluster_resources().get("CPU") == 2.0 and nexus.cluster_resources().get("slot") == 3.0
        assert info["namespace"] == "from-file"
        from nexus.cluster.session import current

        assert getattr(current(), "config").prefetch == 7 and getattr(current(), "config").membership == "memory"
    finally:
        nexus.shutdown()
    with pytest.warns(RuntimeWarning, match="task_retry_delay_ms are Ray's internal tunables"):
        nexus.init(config=str(path), num_cpus=1, _system_config={"prefetch": 3, "task_retry_delay_ms": 100})
    try:
        assert nexus.cluster_resources().get("CPU") == 1.0, "an argument wins over the file"
        assert getattr(current(), "config").prefetch == 3
    finally:
        nexus.shutdown()
    with pytest.raises(ValueError, match="unknown _system_config key"):
        nexus.init(config=path, _system_config={"prefetchh": 3})
    assert not nexus.is_initialized()
    path.write_text("[cluster]\nnum_cpus = 0\n")
    with pytest.raises(ConfigError, match="cluster.num_cpus: expected an integer from 1 to 4096"):
        nexus.init(config=path)
    assert not nexus.is_initialized()
    with pytest.raises(ConfigError):
        nexus.init(config=load_settings(tmp_path / "missing.toml"))


def test_cluster_config_from_a_base_keeps_the_environment_and_overrides_above_it() -> None:
    base = ClusterConfig(prefetch=9, inline_max=4096)
    made = ClusterConfig.from_environment({"prefetch": 2}, {"NEXUS_INLINE_MAX": "8192"}, base=base)
    assert made.prefetch == 2 and made.inline_max == 8192
