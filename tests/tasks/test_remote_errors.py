"""Rebuilding remote exceptions: builtins, the allow-list, synthesized classes, safety."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from gearq.protocol.errors import GearqError
from gearq.tasks import (
    ExceptionRegistry,
    Failure,
    FailureKind,
    RemoteError,
    RetryScheduled,
    SerializationError,
    TaskExpired,
    TaskRevoked,
    TimeLimitExceeded,
    decode_failure,
    encode_failure,
    is_remote,
    qualified_name,
    rebuild_exception,
    register_exception,
)


class Boom(Exception):
    pass


class NeedsKeyword(Exception):
    def __init__(self, *, code: int) -> None:
        super().__init__(f"code {code}")
        self.code = code


def _failure(exc_type: str, message: str = "msg") -> Failure:
    return Failure(FailureKind.ERROR, exc_type, message, "Traceback (most recent call last): x")


def _via_wire(exc: BaseException) -> Failure:
    try:
        raise exc
    except BaseException as caught:
        return decode_failure(encode_failure(caught))


def test_builtin_comes_back_as_itself_with_message_and_traceback() -> None:
    exc = rebuild_exception(_via_wire(ValueError("bad value")), task_id="t1")
    assert type(exc) is ValueError
    assert str(exc) == "bad value"
    assert is_remote(exc)
    assert exc.remote_type == "builtins.ValueError"  # type: ignore[attr-defined]
    assert "ValueError: bad value" in exc.remote_traceback  # type: ignore[attr-defined]
    assert exc.task_id == "t1"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="bad value"):
        raise exc


@pytest.mark.skipif(sys.version_info < (3, 11), reason="add_note is 3.11+")
def test_remote_traceback_is_a_note() -> None:
    exc = rebuild_exception(_via_wire(ValueError("bad")), task_id="t1")
    notes = getattr(exc, "__notes__", [])
    assert len(notes) == 1
    assert notes[0].startswith("Remote traceback of task t1:")
    assert "ValueError: bad" in notes[0]


def test_builtin_args_are_kept() -> None:
    exc = rebuild_exception(_via_wire(OSError(2, "No such file")))
    assert type(exc) is FileNotFoundError
    assert isinstance(exc, OSError)
    assert exc.errno == 2
    key = rebuild_exception(_via_wire(KeyError("k")))
    assert key.args == ("k",)


def test_unknown_class_becomes_named_remote_error_subclass() -> None:
    exc = rebuild_exception(_failure("myapp.Boom", "it went boom"), task_id="t9")
    assert isinstance(exc, RemoteError)
    assert isinstance(exc, GearqError)
    assert type(exc) is not RemoteError
    assert type(exc).__name__ == "Boom"
    assert exc.remote_type == "myapp.Boom"
    assert exc.remote_message == "it went boom"
    assert str(exc) == "it went boom"
    assert exc.remote_traceback.startswith("Traceback")
    assert exc.task_id == "t9"
    assert "myapp.Boom" in repr(exc)
    # The same remote type gives the same class; another module's Boom another class.
    assert type(rebuild_exception(_failure("myapp.Boom"))) is type(exc)
    assert type(rebuild_exception(_failure("other.Boom"))) is not type(exc)


def test_this_modules_class_is_not_rebuilt_unless_allowed() -> None:
    failure = _via_wire(Boom("x"))
    assert failure.exc_type == f"{__name__}.Boom"
    exc = rebuild_exception(failure, registry=ExceptionRegistry())
    assert isinstance(exc, RemoteError)
    assert type(exc).__name__ == "Boom"
    assert not isinstance(exc, Boom)


def test_registered_class_comes_back_as_itself() -> None:
    registry = ExceptionRegistry()
    assert registry.register(Boom) is Boom
    exc = rebuild_exception(_via_wire(Boom("x", 2)), registry=registry)
    assert type(exc) is Boom
    assert exc.args == ("x", 2)
    assert exc.remote_type == qualified_name(Boom)  # type: ignore[attr-defined]


def test_register_exception_uses_the_default_registry() -> None:
    @register_exception
    class Registered(Exception):
        pass

    exc = rebuild_exception(_via_wire(Registered("r")))
    assert type(exc) is Registered


def test_register_refuses_non_exceptions() -> None:
    with pytest.raises(TypeError):
        ExceptionRegistry().register(int)  # type: ignore[type-var]


def test_constructor_that_does_not_take_the_args_still_rebuilds() -> None:
    registry = ExceptionRegistry()
    registry.register(NeedsKeyword)
    exc = rebuild_exception(_via_wire(NeedsKeyword(code=3)), registry=registry)
    # NeedsKeyword("code 3") raises TypeError; gearq falls back to a RemoteError subclass.
    assert isinstance(exc, RemoteError)
    assert type(exc).__name__ == "NeedsKeyword"
    assert str(exc) == "code 3"


@pytest.mark.parametrize(
    "name",
    [
        "builtins.KeyboardInterrupt",
        "builtins.SystemExit",
        "builtins.GeneratorExit",
        "builtins.BaseException",
        "builtins.print",
        "builtins.object",
        "builtins.type",
        "builtins.__import__",
        "builtins.nonexistent",
        "os.system",
        "subprocess.Popen",
        "collections.OrderedDict",
    ],
)
def test_never_rebuilt_as_themselves(name: str) -> None:
    exc = rebuild_exception(_failure(name, "rm -rf /"))
    assert isinstance(exc, RemoteError)
    assert exc.remote_type == name


@pytest.mark.parametrize("name", ["", "Boom", "myapp.<locals>", "a.b-c", "x.1"])
def test_odd_type_names(name: str) -> None:
    exc = rebuild_exception(_failure(name))
    assert isinstance(exc, RemoteError)
    assert exc.remote_type == name
    if not name.rpartition(".")[2].isidentifier():
        assert type(exc) is RemoteError


def test_builtins_can_be_disallowed() -> None:
    exc = rebuild_exception(
        _via_wire(ValueError("v")), registry=ExceptionRegistry(allow_builtins=False)
    )
    assert isinstance(exc, RemoteError)
    assert type(exc).__name__ == "ValueError"


@pytest.fixture
def sentinel_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module that records being imported, with an exception class and a re-export."""
    name = "gearq_test_remote_sentinel"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            import builtins
            builtins.gearq_sentinel_imported = True

            class Boom(Exception):
                pass

            class Outer:
                class Inner(Exception):
                    pass

            from json import JSONDecodeError
            NotAnException = dict
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delattr("builtins.gearq_sentinel_imported", raising=False)
    yield name
    sys.modules.pop(name, None)
    import builtins

    if hasattr(builtins, "gearq_sentinel_imported"):
        del builtins.gearq_sentinel_imported


def test_remote_data_never_imports_a_module(sentinel_module: str) -> None:
    import builtins

    exc = rebuild_exception(_failure(f"{sentinel_module}.Boom"))
    assert isinstance(exc, RemoteError)
    assert sentinel_module not in sys.modules
    assert not hasattr(builtins, "gearq_sentinel_imported")


def test_allowed_module_is_imported_and_its_classes_rebuilt(sentinel_module: str) -> None:
    registry = ExceptionRegistry()
    registry.allow_module(sentinel_module)
    exc = rebuild_exception(_failure(f"{sentinel_module}.Boom", "b"), registry=registry)
    assert type(exc).__module__ == sentinel_module
    assert type(exc).__qualname__ == "Boom"
    assert not isinstance(exc, RemoteError)
    inner = rebuild_exception(_failure(f"{sentinel_module}.Outer.Inner"), registry=registry)
    assert type(inner).__qualname__ == "Outer.Inner"
    # Only classes defined in the module itself, and only exceptions.
    for name in ("JSONDecodeError", "NotAnException", "Missing", "Outer", "json.JSONDecodeError"):
        other = rebuild_exception(_failure(f"{sentinel_module}.{name}"), registry=registry)
        assert isinstance(other, RemoteError), name


def test_allowed_module_that_does_not_exist() -> None:
    registry = ExceptionRegistry()
    registry.allow_module("gearq_test_no_such_module")
    exc = rebuild_exception(_failure("gearq_test_no_such_module.Boom"), registry=registry)
    assert isinstance(exc, RemoteError)


def test_gearq_errors_come_back_as_themselves() -> None:
    exc = rebuild_exception(_via_wire(SerializationError("cannot")))
    assert type(exc) is SerializationError
    # ...but not gearq names that are not GearqErrors or not loaded.
    assert isinstance(rebuild_exception(_failure("gearq.tasks.envelope.Call")), RemoteError)
    assert isinstance(rebuild_exception(_failure("gearq.nope.Missing")), RemoteError)


@pytest.mark.parametrize(
    ("kind", "cls"),
    [
        (FailureKind.TIME_LIMIT, TimeLimitExceeded),
        (FailureKind.RETRY, RetryScheduled),
        (FailureKind.EXPIRED, TaskExpired),
        (FailureKind.REVOKED, TaskRevoked),
    ],
)
def test_kinds_give_gearq_types(kind: FailureKind, cls: type[RemoteError]) -> None:
    failure = Failure(kind, "builtins.ValueError", "m", "tb", attempt=2, eta=1700000000.0)
    exc = rebuild_exception(failure, task_id="t")
    assert type(exc) is cls
    assert exc.kind is kind
    assert (exc.remote_type, exc.remote_message, exc.attempt, exc.task_id) == (
        "builtins.ValueError",
        "m",
        2,
        "t",
    )
    if isinstance(exc, RetryScheduled):
        assert (exc.eta, exc.next_attempt) == (1700000000.0, 3)


def test_failure_kind_parse() -> None:
    assert FailureKind.parse("retry") is FailureKind.RETRY
    assert FailureKind.parse("from-the-future") is FailureKind.ERROR
    assert FailureKind.parse(None) is FailureKind.ERROR


def test_from_exception_of_a_remote_error_keeps_the_remote_identity() -> None:
    inner = rebuild_exception(_failure("myapp.Boom", "deep"))
    try:
        raise inner
    except RemoteError as caught:
        failure = Failure.from_exception(caught)
    assert failure.exc_type == "myapp.Boom"
    assert failure.message == "deep"
    assert "Remote traceback (myapp.Boom)" in failure.traceback


def test_from_exception_names_nested_classes() -> None:
    class Local(Exception):
        pass

    failure = Failure.from_exception(Local("l"))
    assert failure.exc_type.endswith("test_from_exception_names_nested_classes.<locals>.Local")
    assert failure.traceback.strip() == f"{failure.exc_type}: l"  # never raised: no frames


def test_is_remote() -> None:
    assert not is_remote(ValueError("local"))
    assert is_remote(RemoteError("r"))
    assert is_remote(rebuild_exception(_failure("builtins.ValueError")))
