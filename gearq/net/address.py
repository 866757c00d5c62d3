"""Job server addresses, as users write them and as the network layers use them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..protocol.errors import ArgumentError

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "ServerAddress", "ServerSpec", "parse_servers"]

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 4730


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """One job server. Job handles are only meaningful together with one of these."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, spec: ServerSpec) -> ServerAddress:
        """Accept ``"host:port"``, ``"host"``, ``"[::1]:4730"``, ``("host", port)``,
        ``{"host": ..., "port": ...}`` (either key may be left out) or a ServerAddress."""
        if isinstance(spec, ServerAddress):
            return spec
        if isinstance(spec, str):
            return cls._from_string(spec)
        if isinstance(spec, tuple):
            if len(spec) != 2:
                raise ArgumentError(f"server tuple must be (host, port), got {spec!r}")
            return cls(_host(spec[0], spec), _port(spec[1], spec))
        if isinstance(spec, Mapping):
            unknown = set(spec) - {"host", "port"}
            if unknown:
                raise ArgumentError(f"unknown server keys {sorted(unknown)} in {spec!r}")
            return cls(
                _host(spec.get("host", DEFAULT_HOST), spec),
                _port(spec.get("port", DEFAULT_PORT), spec),
            )
        raise ArgumentError(f"cannot read a server address from {spec!r}")

    @classmethod
    def _from_string(cls, text: str) -> ServerAddress:
        text = text.strip()
        if not text:
            raise ArgumentError("empty server address")
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ArgumentError(f"bad server address {text!r}")
            return cls(host, _port(rest[1:], text) if rest else DEFAULT_PORT)
        if text.count(":") > 1:  # a bare IPv6 address without a port
            return cls(text, DEFAULT_PORT)
        host, sep, port = text.partition(":")
        return cls(host or DEFAULT_HOST, _port(port, text) if sep else DEFAULT_PORT)


ServerSpec = str | tuple[str, int] | Mapping[str, object] | ServerAddress


def _host(value: object, spec: object) -> str:
    if not isinstance(value, str) or not value:
        raise ArgumentError(f"bad host in server address {spec!r}")
    return value


def _port(value: object, spec: object) -> int:
    if not isinstance(value, (int, str)):
        raise ArgumentError(f"bad port in server address {spec!r}")
    try:
        port = int(value)
    except ValueError:
        raise ArgumentError(f"bad port in server address {spec!r}") from None
    if isinstance(value, bool) or not 0 < port < 65536:
        raise ArgumentError(f"port out of range in server address {spec!r}")
    return port


def parse_servers(specs: str | ServerSpec | Iterable[ServerSpec] | None) -> list[ServerAddress]:
    """A list of distinct servers from one spec, a comma-separated string, or many specs.

    ``None`` or an empty list means the default server, localhost:4730.
    """
    if specs is None:
        return [ServerAddress()]
    if isinstance(specs, str):
        items: list[ServerSpec] = [s for s in specs.split(",") if s.strip()]
    elif isinstance(specs, (Mapping, ServerAddress)) or (
        isinstance(specs, tuple) and len(specs) == 2 and isinstance(specs[1], int)
    ):
        items = [specs]
    else:
        items = list(specs)
    out: list[ServerAddress] = []
    for item in items:
        address = ServerAddress.parse(item)
        if address not in out:
            out.append(address)
    return out or [ServerAddress()]
