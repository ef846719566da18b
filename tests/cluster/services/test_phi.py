"""The phi accrual detector, driven by a clock the test holds."""

from __future__ import annotations

import random

import pytest

from nexus.cluster.services.phi import PhiAccrualDetector


def _beats(detector: PhiAccrualDetector, intervals: list[float], start: float = 0.0) -> float:
    now = start
    detector.heartbeat(now)
    for interval in intervals:
        now += interval
        detector.heartbeat(now)
    return now


def test_a_steady_peer_is_trusted_and_a_silent_one_suspected_soon_after_its_beat_is_late() -> None:
    detector = PhiAccrualDetector(threshold=8.0, min_std=0.02)
    last = _beats(detector, [0.5] * 100)
    assert detector.phi(last) < 0.1 and detector.phi(last + 0.5) < 1.0
    assert not detector.suspected(last + 0.55)
    assert detector.suspected(last + 1.0)
    phis = [detector.phi(last + t / 10) for t in range(30)]
    assert phis == sorted(phis), "phi only grows with the silence"


def test_a_jittery_link_raises_phi_more_slowly_than_a_steady_one() -> None:
    rng = random.Random(19)
    steady, jittery = PhiAccrualDetector(), PhiAccrualDetector()
    s = _beats(steady, [0.5] * 200)
    j = _beats(jittery, [max(0.01, rng.gauss(0.5, 0.2)) for _ in range(200)])
    assert jittery.std > 0.1 and steady.std == steady.min_std
    assert jittery.phi(j + 1.0) < steady.phi(s + 1.0)


def test_the_acceptable_pause_and_the_threshold_move_the_moment_of_suspicion() -> None:
    eager, patient = PhiAccrualDetector(threshold=3.0), PhiAccrualDetector(threshold=3.0, acceptable_pause=2.0)
    last = _beats(eager, [0.5] * 50)
    _beats(patient, [0.5] * 50)
    assert eager.suspected(last + 1.5) and not patient.suspected(last + 1.5)


def test_no_heartbeat_yet_is_no_suspicion_and_the_first_interval_seeds_the_history() -> None:
    detector = PhiAccrualDetector(first_interval=1.0)
    assert detector.phi(100.0) == 0.0 and not detector.suspected(100.0)
    detector.heartbeat(0.0)
    assert detector.mean == pytest.approx(1.0)
    assert not detector.suspected(1.0) and detector.suspected(30.0)


def test_the_window_forgets_old_intervals() -> None:
    detector = PhiAccrualDetector(window=10)
    last = _beats(detector, [5.0] * 10 + [0.1] * 10)
    assert detector.mean == pytest.approx(0.1)
    assert detector.suspected(last + 5.0)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold > 0"):
        PhiAccrualDetector(threshold=0)
    with pytest.raises(ValueError, match="window >= 2"):
        PhiAccrualDetector(window=1)
