"""App configuration (code and environment), task options and the retry backoff."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gearq.client import Priority
from gearq.net import ServerAddress
from gearq.protocol.errors import ArgumentError
from gearq.tasks import SAME_ARGS, App, AsyncTask, Task, TaskOptions, retry_delay
from gearq.tasks.app import config_from_env
from gearq.tasks.task import parse_priority


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SERVERS", "STRATEGY", "RECOVER_TIME", "SERIALIZER", "EAGER"):
        monkeypatch.delenv(f"GEARQ_{name}", raising=False)
    app = App("proj")
    assert app.servers == (ServerAddress("localhost", 4730),)
    assert app.conf.strategy == "sequence"
    assert app.conf.recover_time == 30.0
    assert app.conf.serializer == "msgpack"
    assert app.conf.eager is False
    assert app.config is app.conf


def test_environment_fills_what_code_does_not_give(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEARQ_SERVERS", "h1:4731, h2:4732")
    monkeypatch.setenv("GEARQ_STRATEGY", "round_robin")
    monkeypatch.setenv("GEARQ_RECOVER_TIME", "2.5")
    monkeypatch.setenv("GEARQ_SERIALIZER", "json")
    monkeypatch.setenv("GEARQ_DEFAULT_TIMEOUT", "7")
    monkeypatch.setenv("GEARQ_EAGER", "yes")
    monkeypatch.setenv("GEARQ_REQUIRE_WORKER", "0")
    app = App("proj")
    assert app.servers == (ServerAddress("h1", 4731), ServerAddress("h2", 4732))
    assert app.conf.strategy == "round_robin"
    assert app.conf.recover_time == 2.5
    assert app.conf.serializer == "json"
    assert app.conf.default_timeout == 7.0
    assert app.conf.eager is True and app.conf.require_worker is False
    # keyword arguments win over the environment ...
    explicit = App("proj", servers="h9:1", serializer="msgpack", eager=False)
    assert explicit.servers == (ServerAddress("h9", 1),)
    assert explicit.conf.serializer == "msgpack" and explicit.conf.eager is False
    assert explicit.conf.strategy == "round_robin"  # not given: from the environment
    # ... and from_env lets the environment win over its defaults
    env_first = App.from_env("proj", servers="h9:1", recover_time=99)
    assert env_first.servers[0] == ServerAddress("h1", 4731)
    assert env_first.conf.recover_time == 2.5
    # env=False ignores it
    assert App("proj", env=False).conf.serializer == "msgpack"


def test_tasks_take_the_app_serializer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEARQ_SERIALIZER", "json")
    app = App("proj")

    @app.task
    def f() -> None:
        return None

    @app.task(serializer="msgpack")
    def g() -> None:
        return None

    assert f.options.serializer == "json" and g.options.serializer == "msgpack"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GEARQ_RECOVER_TIME", "soon"),
        ("GEARQ_RECOVER_TIME", "-1"),
        ("GEARQ_EAGER", "maybe"),
        ("GEARQ_STRATEGY", "fastest"),
        ("GEARQ_SERIALIZER", "pickle"),
        ("GEARQ_SERVERS", "host:notaport"),
    ],
)
def test_bad_environment_is_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(Exception) as info:
        App("proj")
    assert isinstance(info.value, (ArgumentError, ValueError, LookupError))


def test_config_from_env_reads_a_mapping() -> None:
    found = config_from_env({"GEARQ_SERVERS": "a:1", "GEARQ_EXIT_WAIT": "3", "OTHER": "x"})
    assert found == {"servers": "a:1", "exit_wait": 3.0}


def test_configure_validates_and_unknown_settings_fail() -> None:
    app = App("proj", env=False)
    app.configure(recover_time=1.0, servers="x:1")
    assert app.conf.recover_time == 1.0 and app.servers == (ServerAddress("x", 1),)
    with pytest.raises(ArgumentError):
        app.configure(recover_time=-5)
    assert app.conf.recover_time == 1.0
    with pytest.raises(ArgumentError):
        app.configure(colour="blue")
    with pytest.raises(ArgumentError):
        App("proj", colour="blue")


def test_task_options_and_names() -> None:
    app = App("proj", env=False)

    @app.task
    def plain(x: int) -> int:
        return x

    @app.task(
        name="custom.name",
        queue="q",
        priority="high",
        background=True,
        unique=SAME_ARGS,
        max_retries=3,
        retry_on=KeyError,
        retry_backoff=0.5,
        retry_backoff_max=4,
        retry_jitter=False,
        time_limit=2.5,
        serializer="json",
        bind=False,
    )
    def fancy(x: int) -> int:
        return x

    @app.task
    async def coro() -> None:
        return None

    assert plain.name == f"{__name__}.test_task_options_and_names.<locals>.plain"
    assert plain.function_name == plain.name.encode()
    assert isinstance(plain, Task) and not isinstance(plain, AsyncTask)
    assert isinstance(coro, AsyncTask)
    assert app.tasks == {plain.name: plain, "custom.name": fancy, coro.name: coro}
    assert fancy.options == TaskOptions(
        name="custom.name",
        queue="q",
        priority=Priority.HIGH,
        background=True,
        unique="-",
        max_retries=3,
        retry_on=(KeyError,),
        retry_backoff=0.5,
        retry_backoff_max=4,
        retry_jitter=False,
        time_limit=2.5,
        serializer="json",
        bind=False,
    )
    assert fancy.function_name == b"q:custom.name"
    assert fancy.delayed_function_name == b"q:custom.name@eta"
    assert fancy.__name__ == "fancy" and fancy.__wrapped__ is not None  # type: ignore[attr-defined]
    assert plain(3) == 3 and plain.run(4) == 4
    from gearq.tasks.runner import TaskWorker

    assert isinstance(app.worker(concurrency=2), TaskWorker)


def test_bad_task_options() -> None:
    app = App("proj", env=False)
    with pytest.raises(TypeError, match="unknown task options"):
        app.task(colour="red")(lambda: None)  # type: ignore[call-overload]
    with pytest.raises(ArgumentError):
        app.task(queue="a:b")(lambda: None)
    with pytest.raises(ArgumentError):
        app.task(priority="urgent")(lambda: None)
    with pytest.raises(ArgumentError):
        app.task(max_retries=-1)(lambda: None)
    with pytest.raises(ArgumentError):
        app.task(retry_on=(int,))(lambda: None)  # type: ignore[arg-type]
    with pytest.raises(ArgumentError):
        app.task(time_limit=0)(lambda: None)
    with pytest.raises(LookupError):
        app.task(serializer="pickle")(lambda: None)


def test_duplicate_task_names() -> None:
    app = App("proj", env=False)

    def one() -> None:
        return None

    def two() -> None:
        return None

    app.task(name="same")(one)
    app.task(name="same")(one)  # the same function again: fine
    with pytest.raises(ArgumentError, match="already registered"):
        app.task(name="same")(two)


def test_priorities() -> None:
    assert parse_priority("HIGH") is Priority.HIGH
    assert parse_priority(Priority.LOW) is Priority.LOW
    assert [parse_priority(i) for i in (0, 2, 3, 6, 7, 9)] == [
        Priority.HIGH, Priority.HIGH, Priority.NORMAL, Priority.NORMAL, Priority.LOW, Priority.LOW,
    ]  # fmt: skip
    for bad in (10, -1, "top", True, 1.5):
        with pytest.raises(ArgumentError):
            parse_priority(bad)  # type: ignore[arg-type]


def test_retry_delay_examples() -> None:
    options = TaskOptions(name="t", retry_backoff=1.0, retry_backoff_max=10, retry_jitter=False)
    assert [retry_delay(options, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert retry_delay(options, 10_000) == 10
    with pytest.raises(ArgumentError):
        retry_delay(options, 0)
    zero = TaskOptions(name="t", retry_backoff=0)
    assert retry_delay(zero, 3) == 0


@given(
    base=st.floats(0.001, 100),
    cap=st.floats(0.001, 1000),
    attempt=st.integers(1, 5000),
    seed=st.integers(0, 2**32),
)
def test_retry_delay_jitter_bounds(base: float, cap: float, attempt: int, seed: int) -> None:
    options = TaskOptions(name="t", retry_backoff=base, retry_backoff_max=cap)
    exact = min(base * 2 ** min(attempt - 1, 1023), cap)
    delay = retry_delay(options, attempt, rng=random.Random(seed))
    assert exact / 2 <= delay <= exact


def test_should_retry() -> None:
    options = TaskOptions(name="t", max_retries=2, retry_on=(OSError,))
    assert options.should_retry(ConnectionError(), 1)
    assert options.should_retry(OSError(), 2)
    assert not options.should_retry(OSError(), 3)
    assert not options.should_retry(ValueError(), 1)
