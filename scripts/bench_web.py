"""The browser gateway under load: N WebSocket tabs on one ``lifenet web``.

Starts a server (a soup, paced by ``--tick``), its workers and one gateway as local
processes (as ``lifenet up`` does), then opens ``--tabs`` WebSocket clients on the
gateway, all spectators of the whole world (the messages a watching tab gets), from a
child process of their own. Meanwhile this process subscribes to the server's frames
itself and notes when each generation was published (its own receipt time: the same
machine, a fraction of a millisecond after the send). For every generation each tab
received, the delay is the tab's receipt time minus that (CLOCK_MONOTONIC, one clock
for every process of the machine). The gateway's CPU (user + system, over the measured
window) and memory (resident now, and its peak) are read from ``/proc``.

    scripts/bench-web [--tabs 200] [--seconds 30] [--size 256x256] [--tick 0.1]
                      [--workers 2] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import struct
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import zmq

from server.tools.children import LocalProcesses, free_port
from shared import protocol
from shared.errors import ProtocolError

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tabs_process(url: str, tabs: int, seconds: float, out: Any) -> None:
    """In a child: ``tabs`` WebSocket clients for ``seconds``; sends back, per tab,
    the (generation, receipt time) of every binary message, and the bytes."""
    import aiohttp

    async def tab(session: aiohttp.ClientSession, until: float,
                  seen: list[tuple[int, float]], size: list[int]) -> None:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            while (left := until - time.monotonic()) > 0:
                try:
                    msg = await ws.receive(timeout=left)
                except TimeoutError:
                    break
                if msg.type is aiohttp.WSMsgType.BINARY:
                    seen.append((struct.unpack_from("<I", msg.data, 4)[0], time.monotonic()))
                    size[0] += len(msg.data)
                elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break

    async def run() -> list[Any]:
        until = time.monotonic() + seconds
        seen: list[list[tuple[int, float]]] = [[] for _ in range(tabs)]
        sizes = [[0] for _ in range(tabs)]
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            results = await asyncio.gather(*(tab(session, until, seen[i], sizes[i])
                                             for i in range(tabs)), return_exceptions=True)
        failed = [repr(r) for r in results if isinstance(r, BaseException)]
        return [seen, [s[0] for s in sizes], failed]

    out.put(asyncio.run(run()))


def published(endpoint: str, stop: threading.Event, times: dict[int, float]) -> None:
    """Note when each generation reaches a subscriber of the server's frames."""
    context: zmq.Context[Any] = zmq.Context()
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, protocol.WORLD_TOPIC)
    sock.connect(endpoint)
    try:
        while not stop.is_set():
            if not sock.poll(100):
                continue
            frames = sock.recv_multipart(copy=False)
            now = time.monotonic()
            try:
                _, body = protocol.topic_of(frames)
                times.setdefault(protocol.decode(body)["gen"], now)
            except ProtocolError:
                continue
    finally:
        sock.close()
        context.term()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def memory_kib(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {line.split(":")[0]: int(line.split()[1]) for line in status
            if line.startswith(("VmRSS", "VmHWM"))}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tabs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--tick", type=float, default=0.1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fill", type=float, default=0.3)
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="seconds of the tabs' run not measured (all connecting)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    logs = Path(tempfile.mkdtemp(prefix="bench-web-"))
    children = LocalProcesses(log_level="warning")
    ports = {name: free_port() for name in ("worker", "player", "frame", "http")}
    try:
        children.start("server", [
            "server", "--size", args.size, "--seed", "1", "--fill", str(args.fill),
            "--tick", str(args.tick), "--worker-port", str(ports["worker"]),
            "--player-port", str(ports["player"]), "--frame-port", str(ports["frame"])],
            logs / "server.log")
        for i in range(args.workers):
            children.start(f"worker-{i}", ["worker", "--connect",
                                           f"tcp://127.0.0.1:{ports['worker']}"],
                           logs / f"worker-{i}.log")
        web = children.start("web", [
            "web", "--connect", f"127.0.0.1:{ports['player']}", "--frame-port",
            str(ports["frame"]), "--http", f"127.0.0.1:{ports['http']}",
            "--max-tabs-per-address", str(args.tabs + 8)], logs / "web.log")
        base = f"http://127.0.0.1:{ports['http']}/"

        def health() -> dict[str, Any] | None:
            try:
                with urllib.request.urlopen(f"{base}healthz", timeout=2) as reply:
                    body: dict[str, Any] = json.load(reply)
                    return body
            except OSError:
                return None

        if children.wait_until(lambda: (h := health()) and h["generation"] is not None,
                               60, "the gateway's first generation", watch=web) is None:
            raise SystemExit("stopped")

        stop = threading.Event()
        times: dict[int, float] = {}
        watcher = threading.Thread(target=published, args=(
            f"tcp://127.0.0.1:{ports['frame']}", stop, times), daemon=True)
        watcher.start()

        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        began = time.monotonic()
        proc = ctx.Process(target=tabs_process, args=(f"{base}ws", args.tabs,
                                                      args.seconds, out))
        proc.start()
        time.sleep(args.warmup)
        assert proc.pid is not None
        cpu0, tabs_cpu0, t0 = cpu_seconds(web.pid), cpu_seconds(proc.pid), time.monotonic()
        tabs_open = 0
        peak_rss = 0
        while proc.is_alive() and time.monotonic() - began < args.seconds - 0.5:
            time.sleep(0.5)
            peak_rss = max(peak_rss, memory_kib(web.pid)["VmRSS"])
            h = health()
            tabs_open = max(tabs_open, h["tabs"] if h else 0)
        cpu1, tabs_cpu1, t1 = cpu_seconds(web.pid), cpu_seconds(proc.pid), time.monotonic()
        memory = memory_kib(web.pid)
        final = health() or {}
        seen, sizes, failed = out.get(timeout=120)
        proc.join(30)
        stop.set()
        watcher.join(2)

        delays = []
        received = 0
        for tab in seen:
            for gen, at in tab:
                if gen in times and t0 <= at <= t1:
                    delays.append((at - times[gen]) * 1000)
                    received += 1
        gens = [g for g, at in times.items() if t0 <= at <= t1]
        report = {
            "tabs": args.tabs, "tabs_open": tabs_open, "failed": len(failed),
            "size": args.size, "tick": args.tick, "workers": args.workers,
            "seconds": round(t1 - t0, 1), "generations": len(gens),
            "generations_per_second": round(len(gens) / (t1 - t0), 2),
            "messages_received": received,
            "messages_expected": len(gens) * args.tabs,
            "bytes_per_tab_per_second": round(statistics.mean(sizes) / args.seconds),
            "gateway_cpu_percent": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
            "tabs_process_cpu_percent": round(100 * (tabs_cpu1 - tabs_cpu0) / (t1 - t0), 1),
            "gateway_rss_mib": round(memory["VmRSS"] / 1024, 1),
            "gateway_peak_rss_mib": round(max(memory["VmHWM"], peak_rss) / 1024, 1),
            "delay_ms_p50": round(percentile(delays, 50), 2) if delays else None,
            "delay_ms_p99": round(percentile(delays, 99), 2) if delays else None,
            "delay_ms_max": round(max(delays), 2) if delays else None,
            "dropped_for_keys": final.get("dropped"),
            "cpus": os.cpu_count(),
        }
        if failed:
            print("failed tabs:", *failed[:3], sep="\n  ", file=sys.stderr)
        for key, value in report.items():
            print(f"{key:>26}  {value}")
        if args.json is not None:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        children.stop()


if __name__ == "__main__":
    main()
