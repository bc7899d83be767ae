"""The browser client's address: ``HOST:PORT`` as ``lifenet web --http`` and ``lifenet
up --http`` take it (here, so that both sides read it the same way: ``up`` starts the
gateway without importing it)."""

from __future__ import annotations

from shared.errors import ConfigError

DEFAULT_HTTP = "127.0.0.1:8080"


def parse_http(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` (port 0: any free one), or ``ConfigError``."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"--http {value!r}: give HOST:PORT, e.g. {DEFAULT_HTTP}")
    return host, int(port)
