import pytest

from gearq.net import RecoverPolicy, ServerAddress, ServerHealth


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_constant_recover_time():
    clock = FakeClock()
    health = ServerHealth(ServerAddress(), RecoverPolicy(recover_time=30), clock)
    assert health.available()
    assert health.mark_failed() == 30
    assert not health.available()
    clock.now += 29.9
    assert not health.available()
    assert health.retry_in() == pytest.approx(0.1)
    clock.now += 0.1
    assert health.available()
    assert health.mark_failed() == 30  # no growth with backoff 1.0
    health.mark_ok()
    assert health.available() and health.failures == 0 and health.retry_in() == 0


def test_backoff_grows_to_cap():
    policy = RecoverPolicy(recover_time=1, backoff=2, max_recover_time=5)
    assert [policy.pause(n) for n in range(6)] == [0, 1, 2, 4, 5, 5]


def test_jitter_adds_at_most_its_fraction():
    policy = RecoverPolicy(recover_time=10, jitter=0.5)
    assert policy.pause(1, rand=lambda: 0.0) == 10
    assert policy.pause(1, rand=lambda: 1.0) == 15


@pytest.mark.parametrize(
    "kwargs",
    [
        {"recover_time": -1},
        {"backoff": 0.5},
        {"recover_time": 10, "max_recover_time": 5},
        {"jitter": 2},
    ],
)
def test_bad_policies(kwargs):
    with pytest.raises(ValueError):
        RecoverPolicy(**kwargs)
