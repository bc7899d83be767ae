"""A raw ZMTP 3.0 client (NULL mechanism), for attacks libzmq itself would not make.

libzmq sends a multipart message only once its last frame is there; a hostile peer is
under no such rule. ``python -m tests.integration.zmtp PORT MEGABYTES`` connects as a
DEALER and sends 1 MiB frames with MORE set, never the last one, reconnecting whenever
the server drops it, until MEGABYTES have gone out (or it is killed).
"""

from __future__ import annotations

import socket
import struct
import sys
import time

GREETING = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00")
            + b"\x00" + b"\x00" * 31)


def connect(port: int, host: str = "127.0.0.1", socket_type: bytes = b"DEALER") -> socket.socket:
    """A connection that has done the NULL handshake as ``socket_type``."""
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(GREETING)
    greeting = b""
    while len(greeting) < 64:
        chunk = s.recv(64 - len(greeting))
        if not chunk:
            raise ConnectionError("the server closed the connection in the greeting")
        greeting += chunk
    body = b"\x05READY" + b"\x0bSocket-Type" + struct.pack(">I", len(socket_type)) \
        + socket_type
    s.sendall(b"\x04" + bytes([len(body)]) + body)
    return s


def flood(port: int, megabytes: int) -> int:
    """Send ``megabytes`` 1 MiB frames, all with MORE set; how many reconnections."""
    frame = b"\x03" + struct.pack(">Q", 1 << 20) + b"x" * (1 << 20)
    sent = reconnections = 0
    while sent < megabytes:
        try:
            s = connect(port)
            while sent < megabytes:
                s.sendall(frame)
                sent += 1
            time.sleep(3600)  # keep it unfinished, and held
        except OSError:
            reconnections += 1
            time.sleep(0.05)
    return reconnections


if __name__ == "__main__":
    flood(int(sys.argv[1]), int(sys.argv[2]))
