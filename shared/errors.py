"""The lifenet error tree.

Every error lifenet raises on purpose is a ``LifenetError``, so the command line can
turn any of them into one clear line and a non-zero exit::

    LifenetError
    ├── ConfigError          a bad option: size, rule, position, ...
    │   ├── RuleError        a B/S rule that does not parse or has B0
    │   └── KeyFileError     a CURVE key file missing, malformed, too open, or in the way
    ├── PatternError         malformed RLE or a pattern that does not fit
    ├── RequestError         a request answered with an error reply (carries its code)
    │   ├── ProtocolError    bytes that are not a valid lifenet message
    │   │   └── VersionMismatch  the peer speaks another protocol version
    │   └── NotAllowed       a valid request refused: a wrong token, no energy, a full
    │                        server, a request only operators may make
    ├── TransportError       a socket-level failure
    │   ├── HandshakeError   the server refused the connection's handshake (keys)
    │   ├── PeerGone         the peer went away (missed heartbeats, timeout)
    │   ├── WrongEndpoint    the address is a lifenet endpoint of another kind (a
    │   │                    worker port where the player port was meant)
    │   └── Closed           we closed it ourselves (shutting down)
    ├── RemoteError          the peer answered with an error reply
    ├── SimulationError      a generation could not be computed (the book's name)
    ├── SnapshotError        a snapshot could not be written, verified or read
    └── ReplayError          a replay log that cannot be read, continued or verified

Raise with ``raise ... from e`` so the cause stays visible in logs.
"""

from __future__ import annotations

from collections.abc import Iterable


class LifenetError(Exception):
    """Root of every error lifenet raises on purpose."""


class ConfigError(LifenetError, ValueError):
    """An option or argument has a value lifenet cannot use."""


class RuleError(ConfigError):
    """A Life-like rule in B/S notation does not parse, or is refused (B0)."""


class KeyFileError(ConfigError):
    """A CURVE key file is missing, malformed or readable by others, or a key would
    overwrite one that exists."""


class PatternError(LifenetError, ValueError):
    """An RLE text is malformed, or a pattern does not fit where it is placed."""


class RequestError(LifenetError):
    """A request that gets an error reply instead of an answer.

    ``code`` is one of ``shared.protocol.ErrorCode`` (this module cannot import it: the
    protocol imports the errors); it travels in the ``ERROR`` reply.
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class ProtocolError(RequestError):
    """Bytes received are not a valid lifenet message (``MALFORMED`` unless a ``code``
    says more)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message, code)


class VersionMismatch(ProtocolError):
    """The peer's protocol version is not ours (checked at the handshake)."""


NOT_ALLOWED = 7  # ErrorCode.NOT_ALLOWED; tests/unit/test_protocol.py holds them equal


class NotAllowed(RequestError):
    """A valid request the game refuses: a wrong token, no energy, a full server, a
    request only operators may make. Answered with ``ErrorCode.NOT_ALLOWED``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, NOT_ALLOWED)


class LateAnswer(NotAllowed):
    """A ``DECIDE`` for a round that is closed (or one never asked): the rule decided.
    The server tells a player so now and then, not at every late answer (a player
    that keeps up no more would double the messages of the load that made it late)."""


BUSY = 8  # ErrorCode.BUSY


class Busy(RequestError):
    """A valid request the server cannot take now but may a moment later (an address
    opening sessions faster than the server lets it). Answered with ``ErrorCode.BUSY``;
    a client may try again after a pause."""

    def __init__(self, message: str) -> None:
        super().__init__(message, BUSY)


class TransportError(LifenetError):
    """A socket-level failure."""


class HandshakeError(TransportError):
    """The server refused the connection's handshake: no key where it wants CURVE, a
    wrong server key, or a key it does not admit. The message says which."""


class PeerGone(TransportError):
    """The peer went away: it missed its heartbeats or did not answer in time."""


class WrongEndpoint(TransportError):
    """The address answers, but not as the endpoint meant: a player's request reached a
    worker port or a frame port. The message names the port players use."""


class Closed(TransportError):
    """We closed the connection ourselves, usually because we are shutting down."""


class RemoteError(LifenetError):
    """The peer answered a request with an error reply; carries its code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"remote error {code}: {reason}")
        self.code = code
        self.reason = reason


class SimulationError(LifenetError):
    """A generation could not be computed; names the cells of the failed batches.

    As in Effective Python's item 58 (``simulate_pipeline``), the exception is carried
    from the thread where the work failed to the thread that runs the step, and raised
    there.
    """

    def __init__(self, message: str, cells: Iterable[tuple[int, int, int, int]] = ()) -> None:
        self.cells = list(cells)
        if self.cells:
            spans = ", ".join(f"rows {y}..{y + h - 1} x cols {x}..{x + w - 1}"
                              for y, x, h, w in self.cells[:4])
            more = f" and {len(self.cells) - 4} more" if len(self.cells) > 4 else ""
            message = f"{message} (cells: {spans}{more})"
        super().__init__(message)


class SnapshotError(LifenetError):
    """A snapshot could not be written, verified, decrypted or read."""


class ReplayError(LifenetError):
    """A replay log is damaged, does not verify, or cannot be continued; the message
    names the record (and its generation) where it went wrong."""
