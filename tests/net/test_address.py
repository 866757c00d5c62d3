import pytest

from gearq.net import ServerAddress, parse_servers
from gearq.protocol import ArgumentError


@pytest.mark.parametrize(
    ("spec", "host", "port"),
    [
        ("h1:4731", "h1", 4731),
        ("h1", "h1", 4730),
        (":4999", "localhost", 4999),
        ("[::1]:4732", "::1", 4732),
        ("[::1]", "::1", 4730),
        ("::1", "::1", 4730),
        (("10.0.0.1", 99), "10.0.0.1", 99),
        ({"host": "a"}, "a", 4730),
        ({"port": 5000}, "localhost", 5000),
        ({"host": "b", "port": "5001"}, "b", 5001),
        ({}, "localhost", 4730),
    ],
)
def test_parse_one(spec, host, port):
    address = ServerAddress.parse(spec)
    assert (address.host, address.port) == (host, port)


@pytest.mark.parametrize(
    "spec",
    ["", "h:0", "h:70000", "h:abc", "[::1", "[::1]x", {"hots": "a"}, ("a",), ("a", True), 42],
)
def test_parse_rejects(spec):
    with pytest.raises(ArgumentError):
        ServerAddress.parse(spec)


def test_str_round_trips():
    for text in ["h1:4731", "[::1]:4730"]:
        assert str(ServerAddress.parse(text)) == text
        assert ServerAddress.parse(str(ServerAddress.parse(text))) == ServerAddress.parse(text)


def test_parse_servers_forms():
    assert parse_servers(None) == [ServerAddress()]
    assert parse_servers([]) == [ServerAddress()]
    assert parse_servers("a:1, b:2,,a:1") == [ServerAddress("a", 1), ServerAddress("b", 2)]
    assert parse_servers(("a", 1)) == [ServerAddress("a", 1)]
    assert parse_servers(("a:1", "b:2")) == [ServerAddress("a", 1), ServerAddress("b", 2)]
    assert parse_servers([{"host": "x"}, "y:3"]) == [
        ServerAddress("x", 4730),
        ServerAddress("y", 3),
    ]
