"""``--metrics``: a real server and real workers scraped over HTTP while they run, their
text parsed by ``prometheus_client.parser``; the counters move as the run does."""

from __future__ import annotations

import os
import signal
import threading
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from client.session import PlayerSession
from server.app import Server
from server.metrics import ServerMetrics
from shared import protocol
from shared.errors import RemoteError
from shared.frames import FrameView
from shared.protocol import ErrorCode, Kind
from tests.conftest import Processes, free_port, wait_for
from tests.integration.conftest import MakeServer, start_workers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def scrape(url: str) -> dict[str, float]:
    """Every sample of ``/metrics``, by name and labels (``name{a="b"}``)."""
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        assert family.name.startswith("lifenet_"), family.name
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def server_url(server: Server) -> str:
    assert server.metrics_endpoint is not None
    return server.metrics_endpoint.url


def test_a_server_and_its_workers_are_scraped_while_they_run(
        make_server: MakeServer, processes: Processes) -> None:
    server = make_server(size=(30, 30), tile=(3, 30), heartbeat=0.2, dispatchers=4,
                         metrics=("127.0.0.1", 0), verify=_verify_all())
    port = free_port()
    victim, _ = start_workers(processes, server, 2, "--io-latency", "0.3", "--credit", "2")
    start_workers(processes, server, 1, "--metrics", f"127.0.0.1:{port}")
    before = scrape(server_url(server))
    assert before["lifenet_workers"] == 3 and before["lifenet_generations_total"] == 0
    for _ in range(3):
        server.advance()
    during = scrape(server_url(server))
    assert during["lifenet_generations_total"] == 3
    assert during["lifenet_generation"] == 3
    assert during["lifenet_generation_seconds_count"] == 3
    assert during["lifenet_batches_sent_total"] >= 30
    assert during["lifenet_batches_verified_total"] >= 30  # --verify all
    assert during["lifenet_batches_mismatched_total"] == 0
    assert during["lifenet_batch_round_trip_seconds_count"] >= 30
    assert during["lifenet_population"] == server.engine.latest.board.population
    trips = [k for k in during if k.startswith("lifenet_worker_round_trip_seconds{")]
    assert 1 <= len(trips) <= 3
    worker_before = scrape(f"http://127.0.0.1:{port}/metrics")
    assert worker_before["lifenet_worker_batches_total"] > 0
    # A worker killed with batches in its hands: they are sent again, it is gone.
    errors: list[BaseException] = []

    def step() -> None:
        try:
            server.advance()
        except BaseException as e:
            errors.append(e)

    thread = threading.Thread(target=step)
    thread.start()
    wait_for(lambda: any(p.in_flight for p in list(server.broker._workers.values())
                         if p.name.endswith(str(victim.pid))), 10, interval=0.005,
             what="a batch in the victim's hands")
    os.kill(victim.pid, signal.SIGKILL)
    thread.join(timeout=30)
    assert not thread.is_alive() and not errors, errors
    wait_for(lambda: scrape(server_url(server))["lifenet_workers"] == 2, 10,
             what="the killed worker to be counted out")
    after = scrape(server_url(server))
    assert after["lifenet_batches_resent_total"] >= 1
    assert after["lifenet_generations_total"] == 4
    assert after["lifenet_published_bytes_total"] == 0  # nobody watching: no frame made
    assert after["lifenet_batches_sent_total"] > during["lifenet_batches_sent_total"]
    # A viewer connected: the frames it is sent are counted.
    view = FrameView(server.frame_endpoint)
    try:
        def counted() -> bool:
            server.advance()
            view.poll(0.05)
            return scrape(server_url(server))["lifenet_published_bytes_total"] > 30 * 30
        wait_for(counted, 20, what="the published frames to be counted")
    finally:
        view.close()
    worker_after = scrape(f"http://127.0.0.1:{port}/metrics")
    assert worker_after["lifenet_worker_batches_total"] > \
        worker_before["lifenet_worker_batches_total"]
    assert worker_after["lifenet_worker_compute_seconds_count"] > 0


def _verify_all() -> Any:
    from server.verify import Verification
    return Verification.parse("all")


def test_refusals_and_placements_are_counted_by_code_and_reason(
        make_server: MakeServer, processes: Processes) -> None:
    server = make_server(size=(32, 32), metrics=("127.0.0.1", 0), energy_cap=10,
                         energy_regen=0, player_heartbeat=30.0)
    start_workers(processes, server, 1)
    session = PlayerSession(server.lobby.bound_endpoint, "counted")
    try:
        session.join()
        session.place(2, 2, cells=[(0, 0), (0, 1), (1, 0)])
        with pytest.raises(RemoteError):  # 20 cells, 7 energy left
            session.place(10, 10, cells=[(0, x) for x in range(20)])
        session.send(protocol.message(Kind.DECIDE, player=session.player,
                                      token=session.token, gen=9999, keep=[], let_die=[]))
        wait_for(lambda: scrape(server_url(server)).get("lifenet_decisions_late_total"), 10,
                 what="the late decision to be counted")
    finally:
        session.close()
    samples = scrape(server_url(server))
    assert samples['lifenet_placements_total{result="accepted"}'] == 1
    assert samples['lifenet_placements_total{result="energy"}'] == 1
    assert samples['lifenet_requests_refused_total{code="not_allowed",request="place"}'] == 1
    assert samples['lifenet_requests_refused_total{code="not_allowed",request="decide"}'] == 1
    assert samples["lifenet_players_connected"] == 1
    assert samples["lifenet_player_sent_bytes_total"] > 0
    assert not any("counted" in name for name in samples)  # no player's name, ever


def test_a_refusal_of_an_unknown_code_or_kind_stays_in_bounded_labels() -> None:
    metrics = ServerMetrics.__new__(ServerMetrics)
    ServerMetrics.__init__(metrics, _NoServer())  # type: ignore[arg-type]
    metrics.replied(protocol.Message(Kind.ERROR, {"code": 99, "reason": "?",
                                                  "about": "made-up kind"}))
    metrics.replied(protocol.error(ErrorCode.BAD_FIELD, "x", "place"))
    assert metrics.refused.labels("other", "other")._value.get() == 1
    assert metrics.placements.labels("bad_field")._value.get() == 1


class _NoServer:
    """Stands in for a server whose readings are never collected."""
