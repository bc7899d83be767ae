"""``shared.remote.player_endpoint``: the one parser of a player's ``--connect``."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.remote import host_and_port, player_endpoint


@pytest.mark.parametrize("given, endpoint", [
    ("127.0.0.1", "tcp://127.0.0.1:5556"),
    ("localhost:6000", "tcp://localhost:6000"),
    ("game.example.org", "tcp://game.example.org:5556"),
    ("tcp://10.0.0.7:1", "tcp://10.0.0.7:1"),
    ("TCP://server:65535", "tcp://server:65535"),
    ("tcp://server", "tcp://server:5556"),
    ("[::1]:5556", "tcp://[::1]:5556"),
    ("[::1]", "tcp://[::1]:5556"),
    ("::1", "tcp://[::1]:5556"),
    ("tcp://[fe80::1]:7000", "tcp://[fe80::1]:7000"),
    ("  127.0.0.1:5000 ", "tcp://127.0.0.1:5000"),
])
def test_the_forms_a_player_may_give(given: str, endpoint: str) -> None:
    assert player_endpoint(given) == endpoint
    assert player_endpoint(endpoint) == endpoint  # idempotent: an endpoint parses to itself


def test_the_default_port_is_the_player_port_or_the_one_given() -> None:
    assert player_endpoint("server", port=7000) == "tcp://server:7000"
    assert host_and_port(player_endpoint("[::1]")) == ("::1", 5556)
    assert host_and_port(player_endpoint("a:1")) == ("a", 1)


@pytest.mark.parametrize("given, says", [
    ("127.0.0.1:abc", "the port 'abc' is not a number"),
    ("127.0.0.1:", "the port '' is not a number"),
    ("127.0.0.1:99999", "the port 99999 is outside 1..65535"),
    ("127.0.0.1:0", "the port 0 is outside 1..65535"),
    ("127.0.0.1:-1", "is not a number"),
    ("127.0.0.1:٣", "is not a number"),  # a digit, but not an ASCII one
    ("http://127.0.0.1:6556", "tcp:// only, not http://"),
    ("ipc:///tmp/x", "tcp:// only, not ipc://"),
    ("", "names no host"),
    ("   ", "names no host"),
    (":5556", "names no host"),
    ("tcp://:5556", "names no host"),
    ("[]:5556", "names no host"),
    ("[::1", "is not an address"),
    ("[::1]5556", "is not an address"),
    ("[server]:5556", "is not an IPv6 address"),
    ("1:2:3", "is not an IPv6 address"),
    ("host name", "is not a host name"),
    ("host/path:1", "is not a host name"),
    ("300.1.1.1", "is not a host name or address"),
    ("a:1:2", "is not an IPv6 address"),
])
def test_anything_else_is_one_line(given: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        player_endpoint(given)
    message = str(caught.value)
    assert says in message and "\n" not in message


def test_zeromqs_source_address_form_is_kept_and_checked() -> None:
    """``tcp://SOURCE;HOST:PORT`` connects from SOURCE (the tests' other loopback
    addresses): both halves are checked, the source's port is any."""
    assert player_endpoint("tcp://127.0.0.3:0;127.0.0.1:15353") == \
        "tcp://127.0.0.3:0;127.0.0.1:15353"
    assert player_endpoint("tcp://127.0.0.3;127.0.0.1") == "tcp://127.0.0.3:0;127.0.0.1:5556"
    for bad in ("tcp://127.0.0.3:0;127.0.0.1:99999", "tcp://x y;127.0.0.1:1",
                "tcp://127.0.0.3:0;http://127.0.0.1:1"):
        with pytest.raises(ConfigError):
            player_endpoint(bad)
