"""Prometheus metrics (``--metrics HOST:PORT``): what an operator scrapes at ``/metrics``.

Served by the official ``prometheus_client`` from a registry of the process's own (a
test runs several servers in one process: each has its registry and its port). Two
kinds of metric:

- *instruments* the server feeds as things happen: the generation's duration
  (``lifenet_generation_seconds``), generations made, the batches' round trips, the
  snapshots written, the requests refused by error code, placements taken or refused by
  reason, decisions that came late;
- *readings* taken when Prometheus scrapes (``ServerReadings``): population, live
  workers, players, and the batch counters the engine and its dispatchers already keep
  (sent, re-sent, failed, verified, mismatched, computed locally), so the hot path
  pays nothing for them.

Labels take bounded values only: error codes and request kinds (enums), a placement's
refusal class (``refusal``), and a live worker's id on one gauge
(``lifenet_worker_round_trip_seconds``), at most ``MAX_WORKER_SERIES`` of them and only
of workers alive at the scrape. Never a player's name, id or token.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.errors import ConfigError
from shared.protocol import ErrorCode, Kind, Message

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from server.app import Server
    from server.snapshot.store import Written
    from server.worker.process import Worker

log = logging.getLogger("lifenet.metrics")

MAX_WORKER_SERIES = 64  # live workers named on the per-worker round-trip gauge, at most
GENERATION_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
TRIP_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 10.0)
KINDS = frozenset(str(kind) for kind in Kind)


class MetricsEndpoint:
    """``/metrics`` over HTTP for one registry, in a daemon thread; ``close`` stops it."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        try:
            self.httpd, self.thread = start_http_server(port, host, registry=registry)
        except OSError as e:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {e.strerror}") from e
        self.host, self.port = host, int(self.httpd.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def refusal(code: int, reason: str) -> str:
    """A refused placement's class, from its error's code and reason (bounded)."""
    text = reason.lower()
    for word, name in (("energy", "energy"), ("too fast", "rate"), ("shield", "shield"),
                       ("token", "session"), ("key", "session"), ("outside", "outside")):
        if word in text:
            return name
    try:
        return ErrorCode(code).name.lower()
    except ValueError:
        return "other"


class ServerMetrics:
    """A server's metrics: its registry, its instruments and its readings."""

    def __init__(self, server: Server) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.generation_seconds = Histogram(
            "lifenet_generation_seconds", "Seconds to make a generation (step only, "
            "not the tick's rest).", buckets=GENERATION_BUCKETS, registry=r)
        self.generations = Counter("lifenet_generations", "Generations made.", registry=r)
        self.generation_failures = Counter(
            "lifenet_generation_failures", "Generations that failed and were tried again "
            "(a batch failed every attempt).", registry=r)
        self.round_trip = Histogram(
            "lifenet_batch_round_trip_seconds", "Seconds from sending a batch to a "
            "worker to its answer.", buckets=TRIP_BUCKETS, registry=r)
        self.snapshot_seconds = Histogram(
            "lifenet_snapshot_write_seconds", "Seconds to write one snapshot (openssl "
            "included).", buckets=GENERATION_BUCKETS, registry=r)
        self.snapshot_bytes = Gauge("lifenet_snapshot_bytes",
                                    "Size of the last snapshot written.", registry=r)
        self.refused = Counter("lifenet_requests_refused", "Player endpoint requests "
                               "answered with an error, by request kind and error code.",
                               ["request", "code"], registry=r)
        self.placements = Counter("lifenet_placements", "Placements taken ('accepted') "
                                  "or refused, by reason.", ["result"], registry=r)
        self.decisions_late = Counter("lifenet_decisions_late", "Decisions that came "
                                      "after their generation's deadline (each one; a "
                                      "player is told once in 5 s).", registry=r)
        self._trips: dict[int, float] = {}
        self._lock = threading.Lock()
        r.register(ServerReadings(server, self._last_trips))

    def observe_trip(self, worker: int, seconds: float) -> None:
        """A batch's round trip to ``worker`` (a dispatcher thread)."""
        self.round_trip.observe(seconds)
        with self._lock:
            if len(self._trips) >= 4 * MAX_WORKER_SERIES and worker not in self._trips:
                self._trips.clear()  # workers come and go: never an unbounded table
            self._trips[worker] = seconds

    def _last_trips(self, live: set[int]) -> dict[int, float]:
        with self._lock:
            self._trips = {w: s for w, s in self._trips.items() if w in live}
            return dict(sorted(self._trips.items())[:MAX_WORKER_SERIES])

    def snapshot_written(self, written: Written, seconds: float) -> None:
        self.snapshot_seconds.observe(seconds)
        self.snapshot_bytes.set(written.size)

    def counting(self, handle: Callable[..., Message | None]) -> Callable[..., Message | None]:
        """The lobby's ``handle``, counting what its replies refuse and take."""
        def counted(peer: Any, frames: list[Any]) -> Message | None:
            reply = handle(peer, frames)
            if reply is not None:
                self.replied(reply)
            return reply
        return counted

    def replied(self, reply: Message) -> None:
        """Count one reply of the player endpoint."""
        if reply.kind == Kind.PLACED:
            self.placements.labels("accepted").inc()
            return
        if reply.kind != Kind.ERROR:
            return
        code, reason = reply.body.get("code", 0), str(reply.body.get("reason", ""))
        about = str(reply.body.get("about", ""))
        try:
            code_name = ErrorCode(code).name.lower()
        except ValueError:
            code_name = "other"
        self.refused.labels(about if about in KINDS else "other", code_name).inc()
        if about == Kind.PLACE:
            self.placements.labels(refusal(code, reason)).inc()


class ServerReadings(Collector):
    """What a scrape reads off the running server (no cost between scrapes)."""

    def __init__(self, server: Server,
                 trips: Callable[[set[int]], dict[int, float]]) -> None:
        self.server = server
        self.trips = trips

    def collect(self) -> Iterator[Metric]:
        server = self.server
        engine = server.engine
        status = server.status(full=False)
        for name, doc, value in (
                ("lifenet_generation", "The current generation.", status["generation"]),
                ("lifenet_population", "Live cells.", status["population"]),
                ("lifenet_workers", "Live workers.", status["workers"]),
                ("lifenet_workers_quarantined", "Workers quarantined for lying.",
                 status["quarantined"]),
                ("lifenet_players_connected", "Players connected.", status["players"]),
                ("lifenet_players_owning", "Players owning live cells.",
                 status["players_owning"])):
            yield GaugeMetricFamily(name, doc, value=value)
        dispatchers = engine.dispatchers
        publisher = server.publisher
        for name, doc, value in (
                ("lifenet_batches_sent", "Batch sends to workers (re-sends included).",
                 sum(d.sent for d in dispatchers)),
                ("lifenet_batches_resent", "Batches sent again after a worker failed, "
                 "timed out or went away.", engine.resent),
                ("lifenet_batches_failed", "Batches that failed every attempt.",
                 sum(d.failed for d in dispatchers)),
                ("lifenet_batches_verified", "Worker answers checked against the "
                 "server's own computation.", engine.checked),
                ("lifenet_batches_mismatched", "Checked answers that were wrong.",
                 engine.caught),
                ("lifenet_batches_computed_locally", "Batches the server computed itself.",
                 engine.computed_locally),
                ("lifenet_published_bytes", "Bytes of world frames published.",
                 publisher.bytes_published if publisher is not None else 0),
                ("lifenet_player_sent_bytes", "Bytes the player endpoint sent (replies, "
                 "game_logic requests, decided and landed).", server.lobby.sent_bytes)):
            yield CounterMetricFamily(name, doc, value=value)
        trips = GaugeMetricFamily("lifenet_worker_round_trip_seconds",
                                  "The last batch round trip of each live worker (at most "
                                  f"{MAX_WORKER_SERIES} workers).", labels=["worker"])
        for worker, seconds in self.trips(set(server.broker.rates())).items():
            trips.add_metric([str(worker)], seconds)
        yield trips


class WorkerReadings(Collector):
    """What a scrape reads off a running worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("lifenet_worker_batches", "Batches this worker answered.",
                                  value=self.worker.answered)
        yield CounterMetricFamily("lifenet_worker_reconnects", "Times this worker lost "
                                  "its server and connected again.",
                                  value=self.worker.reconnects)


def _timed(compute: Callable[[Message], Message],
           histogram: Histogram) -> Callable[[Message], Message]:
    """``Worker.compute``, observing each result's ``compute_ms`` (what the worker
    reports to the server, on every kernel's path) in ``histogram``."""
    def timed(msg: Message) -> Message:
        reply = compute(msg)
        if reply.kind is Kind.RESULT:
            histogram.observe(reply["compute_ms"] / 1000)
        return reply
    return timed


def serve_worker_metrics(worker: Worker, host: str, port: int) -> MetricsEndpoint:
    """``lifenet worker --metrics``: the worker's registry, served."""
    registry = CollectorRegistry()
    compute = Histogram("lifenet_worker_compute_seconds", "Seconds the kernel took for a "
                        "batch (the I/O latency not included).", buckets=TRIP_BUCKETS,
                        registry=registry)
    worker.compute = _timed(worker.compute, compute)  # type: ignore[method-assign,assignment]
    registry.register(WorkerReadings(worker))
    endpoint = MetricsEndpoint(registry, host, port)
    log.info("metrics at %s", endpoint.url)
    return endpoint
