"""What a tab may send the gateway, checked as strictly as the server checks its own.

A tab sends small JSON text messages (``docs/protocol.md``, "The browser's
WebSocket"); ``parse`` turns one into a typed request or raises ``BadInput`` with a
reason the page shows. The checks are the server's: a name as ``lifenet client`` would
send it (``client.commands.check_name``, which asks the protocol's own schema), a token
as the protocol's ``Token`` check, integers that are integers (a ``bool`` is not),
coordinates inside the world, a rotation of 0..3, a pattern from the library (the
gateway sends the RLE the server parses; a tab never sends pattern text), a policy the
terminal client offers. Anything else is refused whole, and nothing is sent on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from shared.policies import POLICIES

MAX_MESSAGE = 4096  # bytes of one message from a tab (aiohttp's max_msg_size too)
MAX_REGION_SIDE = 2048  # a tab's region, each side (a screen of cells at any zoom)
_TOKEN = re.compile(r"[0-9a-f]{1,64}")


class BadInput(ValueError):
    """A tab's message that the gateway refuses (the reason is shown to the tab)."""


@dataclass(frozen=True)
class Join:
    name: str
    token: str | None
    policy: str


@dataclass(frozen=True)
class PlaceAsk:
    pattern: str
    y: int
    x: int
    rotate: int
    flip: bool


@dataclass(frozen=True)
class Policy:
    policy: str


@dataclass(frozen=True)
class View:
    y: int
    x: int
    h: int
    w: int


@dataclass(frozen=True)
class Leave:
    pass


Request = Join | PlaceAsk | Policy | View | Leave


def _int(body: dict[str, Any], name: str, lo: int, hi: int) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadInput(f"{name} must be an integer")
    if not lo <= value <= hi:
        raise BadInput(f"{name} {value} is outside {lo}..{hi}")
    return value


def _fields(body: dict[str, Any], required: set[str],
            optional: frozenset[str] = frozenset()) -> None:
    missing = required - body.keys()
    if missing:
        raise BadInput(f"missing {', '.join(sorted(missing))}")
    unknown = body.keys() - required - optional - {"type"}
    if unknown:
        raise BadInput(f"unknown field {', '.join(sorted(unknown))}")


def _policy(value: Any) -> str:
    if not isinstance(value, str) or value not in POLICIES:
        raise BadInput(f"policy must be one of {', '.join(POLICIES)}")
    return value


def parse(text: str, size: tuple[int, int] | None, patterns: set[str]) -> Request:
    """One message from a tab, checked (``size``: the world's, ``None`` before the
    first frame: then a placement or a view is refused)."""
    from client.commands import check_name  # the one check of a name

    if len(text.encode()) > MAX_MESSAGE:
        raise BadInput(f"a message longer than {MAX_MESSAGE} bytes")
    try:
        body = json.loads(text)
    except ValueError as e:
        raise BadInput("not JSON") from e
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        raise BadInput("a message is an object with a type")
    kind = body["type"]
    if kind not in ("join", "policy", "leave", "place", "view"):
        raise BadInput(f"unknown type {kind[:32]!r}")
    if kind == "join":
        _fields(body, {"name"}, frozenset({"token", "policy"}))
        name = body["name"]
        if not isinstance(name, str):
            raise BadInput("name must be text")
        why = check_name(name)
        if why is not None:
            raise BadInput(why)
        token = body.get("token")
        if token is not None and (not isinstance(token, str) or not _TOKEN.fullmatch(token)):
            raise BadInput("token must be hex digits")
        return Join(name, token or None, _policy(body.get("policy", "follow")))
    if kind == "policy":
        _fields(body, {"policy"})
        return Policy(_policy(body["policy"]))
    if kind == "leave":
        _fields(body, set())
        return Leave()
    if size is None:
        raise BadInput("no world yet: wait for the first generation")
    height, width = size
    if kind == "place":
        _fields(body, {"pattern", "y", "x"}, frozenset({"rotate", "flip"}))
        pattern = body["pattern"]
        if not isinstance(pattern, str) or pattern not in patterns:
            raise BadInput("pattern must be one of the library's")
        flip = body.get("flip", False)
        if not isinstance(flip, bool):
            raise BadInput("flip must be true or false")
        rotate = _int(body, "rotate", 0, 3) if "rotate" in body else 0
        return PlaceAsk(pattern, _int(body, "y", 0, height - 1), _int(body, "x", 0, width - 1),
                        rotate, flip)
    if kind == "view":
        _fields(body, {"y", "x", "h", "w"})
        return View(_int(body, "y", 0, height - 1), _int(body, "x", 0, width - 1),
                    _int(body, "h", 1, min(height, MAX_REGION_SIDE)),
                    _int(body, "w", 1, min(width, MAX_REGION_SIDE)))
    raise AssertionError(kind)
