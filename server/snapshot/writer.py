"""The snapshot writer thread: snapshots written in the background, on schedule or asked.

Two other threads hand it work, each through one method:

- the lobby, when an operator sends ``SNAPSHOT``: ``ask`` queues the request (a few at
  most; more get ``BUSY``), and the answer comes later, through ``reply``;
- the generation loop, between two generations: ``between_generations`` copies the
  state (the loop's only cost) when a snapshot is asked for or due, and hands it over.

This thread runs the ``openssl`` pipeline, prunes old snapshots and answers whoever
asked: the written path, generation and size, and with ``send`` the encrypted file
itself (``lifenet snapshot save --out``).

It prunes only snapshots it knows to be the server's: those it wrote, and, adopted when
it starts (the newest ``ADOPT_AT_MOST`` by modification time), those already in the
directory that verify with the server's key and whose generation is the one their name
says, checked at the first prune; so a server restarted on its directory
keeps ``keep`` snapshots, not ``keep`` more each run. Anything else there is never
touched. One directory a server: two servers with the same key in one directory would
prune each other's snapshots.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from server.snapshot.format import DEFAULT_ITERATIONS, WorldState
from server.snapshot.key import SnapshotKey
from server.snapshot.openssl import DEFAULT_TIMEOUT
from server.snapshot.store import (
    Written,
    prune,
    save_snapshot,
    snapshot_generation,
    snapshot_name,
    snapshots_in,
    sweep_leftovers,
    verify_snapshot,
)
from shared import protocol
from shared.errors import SnapshotError
from shared.protocol import ErrorCode, Kind, Message

log = logging.getLogger("lifenet.snapshot")


Done = Callable[[Written | None, SnapshotError | None], None]
Reply = Callable[[bytes, Message], None]  # send a message to a peer, from any thread
MAX_WAITING = 8  # operators' requests waiting for the next copy of the state
ADOPT_AT_MOST = 64  # snapshots of an earlier run checked and adopted at start, at most


@dataclass
class _Job:
    state: WorldState
    waiters: list[Done]
    keep_bytes: bool = False  # an operator wants the file itself back


class Snapshotter(threading.Thread):
    """Writes snapshots in the background, so the generation loop only copies the state.

    ``submit`` hands over a copied ``WorldState`` and who to tell when it is written. A
    periodic snapshot is skipped (with a warning) while the previous one is still being
    written rather than let copies of a large world pile up.
    """

    def __init__(self, directory: Path, key: SnapshotKey, *, keep: int = 10,
                 iterations: int = DEFAULT_ITERATIONS,
                 timeout: float = DEFAULT_TIMEOUT, every: int | None = None,
                 generation: int = 0, reply: Reply | None = None) -> None:
        super().__init__(name="snapshot", daemon=True)
        self.directory = directory
        self.key = key
        self.keep = keep
        self.iterations = iterations
        self.timeout = timeout
        self.every = every  # a snapshot every N generations (None: only when asked)
        self.reply = reply
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self._busy = threading.Event()
        self._asked: queue.SimpleQueue[tuple[bytes, bool]] = queue.SimpleQueue()
        self._last = generation  # the generation of the last snapshot handed over
        self.written: list[Written] = []
        self.failures = 0
        # Told each snapshot written and the seconds it took, in this thread
        # (``--metrics``, ``--record``).
        self.on_written: list[Callable[[Written, float], None]] = []

    # -- the lobby thread ------------------------------------------------------------------

    def ask(self, identity: bytes, send: bool) -> Message | None:
        """An operator's ``SNAPSHOT``: queued for the next generation boundary (the
        answer follows through ``reply``), or ``BUSY`` at once when too many wait."""
        if self._asked.qsize() >= MAX_WAITING:
            return protocol.error(ErrorCode.BUSY, "too many snapshot requests waiting",
                                  str(Kind.SNAPSHOT))
        self._asked.put((identity, send))
        return None

    # -- the generation loop -----------------------------------------------------------------

    def between_generations(self, generation: int, capture: Callable[[], WorldState], *,
                            periodic: bool = True, final: bool = False) -> None:
        """Hand a copy of the state over if a snapshot is asked for or due.

        ``periodic``: this boundary may take a scheduled snapshot (not after a failed
        generation, when only the operators' requests are served). ``final``: the loop
        has ended; with ``every`` the last generation is written too (even while
        another snapshot is being written).
        """
        waiters = []
        keep_bytes = False
        while True:
            try:
                identity, send = self._asked.get_nowait()
            except queue.Empty:
                break
            waiters.append(self._answer(identity, send))
            keep_bytes = keep_bytes or send
        due = periodic and bool(self.every) and generation % (self.every or 1) == 0
        if final and self.every and generation != self._last:
            due, periodic = True, False
        if (waiters or due) and self.submit(capture(), waiters,
                                            periodic=periodic and not waiters,
                                            keep_bytes=keep_bytes):
            self._last = generation

    def _answer(self, identity: bytes, send: bool) -> Done:
        """What to tell the operator who asked, once the snapshot is written (or not)."""
        def done(written: Written | None, error: SnapshotError | None) -> None:
            if self.reply is None:
                return
            if written is None:
                self.reply(identity, protocol.error(ErrorCode.FAILED, str(error),
                                                    str(Kind.SNAPSHOT)))
                return
            payloads = []
            if send:  # `snapshot save --out`: the encrypted file itself goes back
                if written.data is None:
                    self.reply(identity, protocol.error(
                        ErrorCode.FAILED, f"{written.path.name} was written without its "
                        "bytes kept", str(Kind.SNAPSHOT)))
                    return
                payloads = [written.data]
            self.reply(identity, protocol.message(
                Kind.SNAPSHOT_REPLY, payloads, path=str(written.path.resolve()),
                generation=written.generation,
                bytes=len(payloads[0]) if payloads else written.size))
        return done

    # -- the writer ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def submit(self, state: WorldState, waiters: Sequence[Done] = (),
               periodic: bool = False, keep_bytes: bool = False) -> bool:
        if periodic and self.busy and not waiters:
            log.warning("snapshot of generation %d skipped: the previous one is still "
                        "being written", state.generation)
            return False
        self._busy.set()
        self.jobs.put(_Job(state, list(waiters), keep_bytes))
        return True

    def stop(self) -> None:
        """Finish what was submitted, then end."""
        self.jobs.put(None)

    def adopt(self) -> None:
        """Take the snapshots already in the directory as candidates, oldest written
        first (see the module docstring), checked when there is something to prune:
        a start costs a listing, and the first prune a verification each."""
        try:
            found = [(p.lstat().st_mtime, p) for p in snapshots_in(self.directory)]
        except OSError as e:
            log.warning("cannot list %s: %s", self.directory, e)
            return
        mine = {w.path for w in self.written}
        adopted = [Written(path, snapshot_generation(path.name) or 0, 0, verified=False)
                   for _, path in sorted(found)[-ADOPT_AT_MOST:] if path not in mine]
        self.written = adopted + self.written
        if adopted:
            log.info("%d snapshots of an earlier run in %s: those that verify count "
                     "toward --snapshot-keep", len(adopted), self.directory)

    def _ours(self, candidate: Written) -> bool:
        """Whether an adopted file is the server's: a regular file (no link), that
        verifies with its key, whose generation is the one its name says."""
        path = candidate.path
        try:
            if path.is_symlink() or not path.is_file():
                return False
            header = verify_snapshot(path, self.key, self.timeout)
        except (SnapshotError, OSError) as e:
            log.info("left %s alone: not one of this server's snapshots (%s)", path.name, e)
            return False
        if header.meta.get("generation") != candidate.generation:
            log.info("left %s alone: its name and its generation disagree", path.name)
            return False
        return True

    def _prune(self) -> None:
        """Remove all but the newest ``keep`` written. The adopted files are checked
        first, once, the first time there is more than ``keep``: one that is not the
        server's is dropped from the list (and left where it is), so that it neither
        goes nor holds the place of one that is."""
        if len(self.written) > max(self.keep, 1) and not all(w.verified
                                                             for w in self.written):
            self.written = [dataclasses.replace(w, verified=True) for w in self.written
                            if w.verified or self._ours(w)]
        removed = prune(self.written, self.keep)
        self.written = self.written[len(removed):]
        for gone in removed:
            log.debug("removed old snapshot %s", gone.path)

    def run(self) -> None:
        try:
            self.adopt()
        except Exception:  # a bug here must not kill the writer
            log.exception("adopting the snapshots in %s failed", self.directory)
        while (job := self.jobs.get()) is not None:
            path = self.directory / snapshot_name(job.state.generation)
            result: Written | None = None
            error: SnapshotError | None = None
            try:
                with contextlib.suppress(OSError):
                    for old in sweep_leftovers(self.directory, 2 * self.timeout):
                        log.info("removed %s, left by a write that was killed", old.name)
                began = time.monotonic()
                result = save_snapshot(path, job.state, self.key,
                                       iterations=self.iterations, timeout=self.timeout,
                                       keep_bytes=job.keep_bytes)
                for told in self.on_written:
                    told(result, time.monotonic() - began)
                # Its own snapshots, each path once (a generation written twice is one
                # file), newest last, without their bytes: the only ones it prunes.
                self.written = [w for w in self.written if w.path != path]
                self.written.append(dataclasses.replace(result, data=None))
                log.info("wrote snapshot %s (%d bytes)", path, result.size)
            except SnapshotError as e:
                error = e
                self.failures += 1
                log.error("%s", e)
            except Exception as e:  # a bug here must not kill the writer
                log.exception("snapshot of generation %d failed", job.state.generation)
                error = SnapshotError(f"snapshot failed: {type(e).__name__}")
            for done in job.waiters:  # told first: pruning may check old files
                done(result, error)
            if result is not None:
                try:
                    self._prune()
                except Exception:  # a bug here must not kill the writer
                    log.exception("pruning %s failed", self.directory)
            if self.jobs.empty():
                self._busy.clear()

