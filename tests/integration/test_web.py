"""The browser client in a real browser: headless Chromium on the page of a real
``lifenet web``, against an in-process server with a real worker process.

The test steps the server itself (``server.advance()``), so "generation G" is exact:
the glider a tab places lands in the generation its ``placed`` names, and a second
tab, and a terminal-protocol client (``FrameView``, as ``lifenet client`` watches),
show it in the placer's colour in exactly that generation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import zmq

from client.web.gateway import xterm_rgb
from server.app import Server
from shared.colours import colour as shared_colour
from shared.frames import FrameView
from shared.library import library
from shared.placement import footprint
from shared.rle import write_rle
from tests.conftest import Processes, wait_for
from tests.integration.conftest import MakeServer, start_workers
from tests.integration.web import Gateway, Page, browser, start_gateway

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
__all__ = ["browser"]  # the fixture, imported for this module's tests

SHOTS = os.environ.get("LIFENET_WEB_SCREENSHOTS")  # a directory: take the README's pictures


def step_until(server: Server, condition: Any, what: str, timeout: float = 20.0) -> None:
    """Advance the server one generation at a time until ``condition()`` holds."""

    def stepped() -> bool:
        if condition():
            return True
        server.advance()
        return bool(condition())

    wait_for(stepped, timeout, interval=0.05, what=what)


def cells_of(codes: Any, code: int) -> set[tuple[int, int]]:
    ys, xs = np.nonzero(codes == code)
    return {(int(y), int(x)) for y, x in zip(ys, xs, strict=True)}


def tab_cells(tab: Page, code: int) -> set[tuple[int, int]]:
    return {(y, x) for y, x in tab.js("c => window.lifenet.cellsOf(c)", code)}


def shown(tab: Page, server: Server) -> None:
    """Step until the tab shows the server's current generation."""
    step_until(server, lambda: tab.state("gen") >= server.engine.generation > 0,
               "the tab to show the current generation")


def join(tab: Page, name: str) -> dict[str, Any]:
    tab.page.fill("#name", name)
    tab.page.click("#join-form button")
    tab.wait("window.lifenet.state.me !== null")
    me: dict[str, Any] = tab.state("me")
    return me


@pytest.fixture
def game(make_server: MakeServer, processes: Processes) -> tuple[Server, Gateway]:
    server = make_server(size=(48, 64), seed=5, fill=0.12, decision_window=2.0)
    start_workers(processes, server, 1)
    return server, start_gateway(processes, server)


def test_the_page_loads_without_errors_and_a_spectator_sees_generations(
        browser: Any, game: tuple[Server, Gateway]) -> None:
    server, gateway = game
    tab = Page(browser, gateway.url)
    try:
        shown(tab, server)
        first = tab.state("gen")
        for _ in range(3):
            server.advance()
        wait_for(lambda: tab.state("gen") == first + 3, 10, what="three more generations")
        tab.wait("document.querySelector('#status').textContent.includes("
                 f"'generation {first + 3}')")
        assert tab.state("me") is None  # a spectator: nobody joined
        assert "1 workers" in tab.page.inner_text("#status")
        # the cells it shows are the server's
        world = server.engine.grid.codes
        for code in (1,):
            assert tab_cells(tab, code) == cells_of(world, code)
        assert tab.page.locator("#palette button").count() == len(library())
        assert tab.errors == [], tab.errors
    finally:
        tab.close()


def test_a_glider_placed_with_a_click_lands_in_the_generation_placed_names(
        browser: Any, game: tuple[Server, Gateway], zmq_context: zmq.Context[Any]) -> None:
    server, gateway = game
    player, watcher = Page(browser, gateway.url), Page(browser, gateway.url)
    terminal = FrameView(server.frame_endpoint, zmq_context)  # as `lifenet client` watches
    try:
        shown(player, server)
        shown(watcher, server)
        # the terminal client holds the world too (its first full frame came)
        step_until(server, lambda: (terminal.poll(0.05),
                                    terminal.gen == server.engine.generation > 0)[1],
                   "the terminal client's first frames")
        me = join(player, "alice")
        code = me["code"]
        player.page.click("[data-pattern=glider]")
        # the mouse over a cell: the ghost is the glider centred there
        glider = library()["glider"][1].oriented()
        at = (20, 30)
        spot = player.js("([y, x]) => window.lifenet.screenOf(y, x)", list(at))
        player.page.mouse.move(spot["x"], spot["y"])
        corner = (at[0] - glider.shape[0] // 2, at[1] - glider.shape[1] // 2)
        want = {(int(y), int(x)) for y, x in footprint(glider, *corner, 48, 64)}
        player.page.mouse.click(spot["x"], spot["y"])
        player.wait("window.lifenet.state.placed.length > 0")
        placed = player.state("placed")[0]
        assert (placed["y"], placed["x"], placed["pattern"]) == (*corner, "glider")
        lands = placed["generation"]
        assert lands == server.engine.generation + 1
        assert "lands in generation" in player.page.inner_text("#messages")

        step_until(server, lambda: server.engine.generation >= lands, "the landing")
        assert server.engine.generation == lands
        assert cells_of(server.engine.grid.codes, code) == want
        wait_for(lambda: watcher.state("gen") == lands, 10, what="the second tab")
        assert tab_cells(watcher, code) == want  # in the placer's colour, generation G
        wait_for(lambda: (terminal.poll(0.05), terminal.gen >= lands)[1], 10,
                 what="the terminal client's frame of the landing")
        assert terminal.gen == lands
        assert terminal.codes is not None and cells_of(terminal.codes, code) == want
        # and the second tab paints them in the placer's colour, the one its panel shows
        colour = xterm_rgb(shared_colour(code))
        assert player.js("c => window.lifenet.colourOfCode(c)", code) == colour
        def painted() -> bool:
            return all(watcher.js("([y, x]) => window.lifenet.pixelAt(y, x)", [y, x])
                       == colour for y, x in want)

        wait_for(painted, 5, what=f"the second tab to paint the glider in {colour}")
        # the scoreboard: alice with her 5 cells, in both tabs
        for tab in (player, watcher):
            tab.wait("[...document.querySelectorAll('#board tbody tr')].some(r => "
                     "r.textContent.includes('alice') && r.children[3].textContent == '5')")
        player.wait("document.querySelector('#messages').textContent.includes("
                    f"'landed in generation {lands}')")
        assert player.errors == [] and watcher.errors == [], player.errors + watcher.errors
    finally:
        terminal.close()
        player.close()
        watcher.close()


def test_a_refusal_is_shown_plainly(browser: Any, make_server: MakeServer,
                                    processes: Processes) -> None:
    server = make_server(size=(32, 32), fill=0.0, energy_cap=4, decision_window=2.0)
    start_workers(processes, server, 1)
    gateway = start_gateway(processes, server)
    tab = Page(browser, gateway.url)
    try:
        shown(tab, server)
        join(tab, "bob")
        tab.page.click("[data-pattern=glider]")  # 5 cells, 4 energy
        spot = tab.js("() => window.lifenet.screenOf(10, 10)")
        tab.page.mouse.click(spot["x"], spot["y"])
        tab.wait("document.querySelector('#toast').textContent.includes('not placed')")
        assert "energy" in tab.page.inner_text("#toast")
        assert tab.state("placed") == []
    finally:
        tab.close()


def test_a_dropped_websocket_reconnects_and_keeps_the_player(
        browser: Any, game: tuple[Server, Gateway], processes: Processes) -> None:
    server, gateway = game
    tab = Page(browser, gateway.url)
    try:
        shown(tab, server)
        me = join(tab, "carol")
        token = tab.js("() => sessionStorage.getItem('lifenet.token')")
        assert token == me["token"]
        # the connection drops: the page reconnects and is the same player again
        tab.js("() => window.lifenet.drop()")
        wait_for(lambda: tab.state("connected") is False
                 or tab.state("me")["rejoined"], 10, what="the drop")
        tab.wait("window.lifenet.state.connected && window.lifenet.state.me.rejoined")
        assert tab.state("me")["player"] == me["player"]
        shown(tab, server)
        # the gateway itself goes away and comes back on the same port: the tab
        # rejoins its session on the server with the token kept in the tab
        before = server.engine.generation
        gateway.proc.terminate()
        gateway.proc.wait(10)
        tab.wait("!window.lifenet.state.connected")
        # Forgotten while no gateway runs: the tab may reconnect and rejoin as soon as
        # the new one answers, before this test's next call (a race CI lost once).
        tab.js("() => { window.lifenet.state.me = null; }")
        start_gateway(processes, server, port=gateway.port)
        tab.wait("window.lifenet.state.connected && window.lifenet.state.me !== null",
                 timeout=20)
        again = tab.state("me")
        assert (again["player"], again["token"], again["rejoined"]) == \
            (me["player"], me["token"], True)
        step_until(server, lambda: tab.state("gen") > before, "frames again")
        assert tab.errors == [] or all("WebSocket" in e for e in tab.errors), tab.errors
    finally:
        tab.close()


def test_a_session_s_token_in_another_tab_takes_the_session_over(
        browser: Any, game: tuple[Server, Gateway]) -> None:
    """The token is the session's key, as on the server: a tab that shows it gets the
    session (the same player, nothing asked of the server), and the tab that held it
    is told, plainly."""
    server, gateway = game
    first, second = Page(browser, gateway.url), Page(browser, gateway.url)
    try:
        shown(first, server)
        me = join(first, "dana")
        second.js("([token]) => { sessionStorage.setItem('lifenet.token', token); "
                  "sessionStorage.setItem('lifenet.name', 'dana'); location.reload(); }",
                  [me["token"]])
        second.wait("window.lifenet && window.lifenet.state.me !== null")
        assert (second.state("me")["player"], second.state("me")["rejoined"]) == \
            (me["player"], True)
        first.wait("document.querySelector('#messages').textContent.includes("
                   "'taken up by another tab')")
        assert first.state("me") is None
        assert gateway.health()["players"] == 1
    finally:
        first.close()
        second.close()


def test_the_gateway_checks_origin_tabs_per_address_and_input(
        make_server: MakeServer, processes: Processes) -> None:
    server = make_server(size=(16, 16), fill=0.0)
    gateway = start_gateway(processes, server, "--max-tabs-per-address", "2")
    ws_url = gateway.url.replace("http", "ws") + "ws"

    async def check() -> None:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(ws_url, origin="http://evil.example")
            assert refused.value.status == 403
            own = gateway.url.rstrip("/")
            first = await http.ws_connect(ws_url, origin=own)
            second = await http.ws_connect(ws_url)
            with pytest.raises(aiohttp.WSServerHandshakeError) as full:
                await http.ws_connect(ws_url)
            assert full.value.status == 429
            hello = await first.receive_json(timeout=5)
            assert hello["type"] == "hello"
            for bad, why in ((b"not json", "not JSON"),
                             ('{"type": "join", "name": ""}', "empty"),
                             ('{"type": "join", "name": "x", "token": "zz"}', "hex"),
                             ('{"type": "place", "pattern": "glider", "y": true, "x": 0}',
                              ""),
                             ('{"type": "frobnicate"}', "unknown type")):
                if isinstance(bad, bytes):
                    await first.send_str(bad.decode())
                else:
                    await first.send_str(bad)
                while True:
                    msg = await first.receive(timeout=5)
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        event = msg.json()
                        if event["type"] == "error":
                            assert why in event["reason"], event
                            break
            await first.close()
            await second.close()

    # in a thread of its own: Playwright's sync API holds this thread's event loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, check()).result(60)
    assert gateway.health()["refused_origin"] == 1


def test_the_page_orients_patterns_as_the_server_does(browser: Any, make_server: MakeServer,
                                                     processes: Processes) -> None:
    server = make_server(size=(16, 16), fill=0.0)
    gateway = start_gateway(processes, server)
    tab = Page(browser, gateway.url)
    try:
        tab.wait("window.lifenet.state.patterns.length > 0")
        for name in ("glider", "r-pentomino", "lwss"):
            pattern = library()[name][1]
            body = {"h": pattern.codes.shape[0], "w": pattern.codes.shape[1],
                    "cells": [[int(y), int(x)] for y, x in zip(*np.nonzero(pattern.codes),
                                                               strict=True)]}
            for rotate in range(4):
                for flip in (False, True):
                    got = tab.js("([p, r, f]) => window.lifenet.oriented(p, r, f)",
                                 [body, rotate, flip])
                    want = pattern.oriented(rotate, flip)
                    assert (got["h"], got["w"]) == want.shape
                    assert {tuple(c) for c in got["cells"]} == \
                        {(int(y), int(x)) for y, x in zip(*np.nonzero(want), strict=True)}
    finally:
        tab.close()



def test_a_large_world_comes_as_the_region_in_view(browser: Any, make_server: MakeServer,
                                                  processes: Processes) -> None:
    """Above 512x512 cells a tab gets the cells of its view (and a margin), not the
    whole world; panning asks for the new region, and what it shows is the server's."""
    server = make_server(size=(768, 1024), seed=3, fill=0.05, decision_window=2.0)
    start_workers(processes, server, 1)
    gateway = start_gateway(processes, server)
    tab = Page(browser, gateway.url)
    try:
        shown(tab, server)
        assert tab.state("regional") is True

        def matches() -> bool:
            y, x, h, w = tab.state("region")
            assert h * w < 768 * 1024 / 2, "only the region in view"
            rows = (y + np.arange(h)) % 768
            cols = (x + np.arange(w)) % 1024
            want = cells_of(server.engine.grid.codes[np.ix_(rows, cols)], 1)
            got = {((r - y) % 768, (c - x) % 1024) for r, c in tab_cells(tab, 1)}
            return bool(tab.state("gen") == server.engine.generation and got == want)

        wait_for(matches, 10, what="the region's cells")
        first = tab.state("region")
        tab.page.click("#world")
        for _ in range(30):
            tab.page.keyboard.press("ArrowRight")
        wait_for(lambda: tab.state("region") != first, 10, what="a new region")
        server.advance()
        wait_for(matches, 10, what="the new region's cells")
        assert tab.errors == [], tab.errors
    finally:
        tab.close()


def test_owner_codes_past_255_reach_the_page_in_their_colours(
        browser: Any, make_server: MakeServer, processes: Processes, tmp_path: Path) -> None:
    """A wide world (codes above 255: players past 254) comes to the page two bytes a
    code, and each code is painted in its own player's colour."""
    codes = np.zeros((32, 48), np.uint16)
    codes[4:6, 4:6] = 300      # a block (a still life) of player 299
    codes[10:12, 20:22] = 65535  # and one of the last player there can be
    codes[20:22, 30:32] = 7
    pattern = tmp_path / "wide.rle"
    pattern.write_text(write_rle(codes))
    server = make_server(size=(32, 48), pattern=pattern, at=(0, 0), decision_window=2.0)
    assert server.engine.grid.wide
    start_workers(processes, server, 1)
    gateway = start_gateway(processes, server)
    tab = Page(browser, gateway.url)
    try:
        shown(tab, server)
        for code in (300, 65535, 7):
            assert tab_cells(tab, code) == cells_of(codes, code)
            colour = xterm_rgb(shared_colour(code))
            spot = list(min(cells_of(codes, code)))

            def painted(spot: list[int] = spot, colour: str = colour) -> bool:
                return bool(tab.js("([y, x]) => window.lifenet.pixelAt(y, x)", spot)
                            == colour)

            wait_for(painted, 5, what=f"code {code} painted in {colour}")
        assert tab.js("() => window.lifenet.state.cells instanceof Uint16Array")
        assert tab.errors == [], tab.errors
    finally:
        tab.close()


def test_screenshots(browser: Any, make_server: MakeServer, processes: Processes,
                     tmp_path: Path) -> None:
    """The README's pictures: a game with bots, a player with the palette open, and a
    spectator. Taken in every run (into ``LIFENET_WEB_SCREENSHOTS`` when it names a
    directory, as ``scripts/screenshot-web`` does; else a temporary one), so the scene
    they show keeps working."""
    out = Path(SHOTS) if SHOTS else tmp_path
    server = make_server(size=(96, 160), seed=11, fill=0.18, decision_window=0.2,
                         round_length=600)
    start_workers(processes, server, 2)
    gateway = start_gateway(processes, server)
    bots = processes.lifenet("bot", "--connect", server.lobby.bound_endpoint, "--count", "4",
                             "--seed", "3", "--strategy", "random")
    wait_for(lambda: len(server.status()["scores"]) >= 4, 20, what="the bots to join")
    for _ in range(40):
        server.advance()
    tab = Page(browser, gateway.url)
    try:
        shown(tab, server)
        join(tab, "alice")
        tab.page.click("[data-pattern=glider]")
        for y, x in ((30, 40), (60, 120)):
            spot = tab.js("([y, x]) => window.lifenet.screenOf(y, x)", [y, x])
            tab.page.mouse.click(spot["x"], spot["y"])
        for _ in range(12):
            server.advance()
        shown(tab, server)
        tab.page.click("[data-pattern=lwss]")
        tab.page.click("#world", position={"x": 5, "y": 5}, button="right")
        for _ in range(2):
            tab.page.keyboard.press("+")
        # the ghost over open space near the middle, where it is plain to see
        codes = server.engine.grid.codes
        free = [(abs(y - 48) + abs(x - 80), y, x) for y in range(6, 90)
                for x in range(8, 150) if not codes[y - 5:y + 6, x - 6:x + 7].any()]
        _, y, x = min(free)
        spot = tab.js("([y, x]) => window.lifenet.screenOf(y, x)", [y, x])
        tab.page.mouse.move(spot["x"], spot["y"])
        tab.page.wait_for_timeout(500)
        tab.page.screenshot(path=str(out / "web-player.png"))
        spectator = Page(browser, gateway.url)
        try:
            shown(spectator, server)
            for _ in range(3):
                spectator.page.keyboard.press("+")
            spectator.page.wait_for_timeout(300)
            spectator.page.screenshot(path=str(out / "web-spectator.png"))
            assert spectator.errors == [], spectator.errors
        finally:
            spectator.close()
        assert tab.errors == [], tab.errors
    finally:
        tab.close()
        assert bots.poll() is None
    for name in ("web-player.png", "web-spectator.png"):
        picture = (out / name).read_bytes()
        assert picture.startswith(b"\x89PNG") and len(picture) > 20_000, name


def test_a_slow_tab_gets_a_key_and_never_grows_the_gateway(
        make_server: MakeServer, processes: Processes) -> None:
    """A tab that stops reading: its queue fills, is dropped for a key, and the gateway's
    memory stays where it was; when it reads again it gets a key, then the present."""
    server = make_server(size=(512, 512), seed=9, fill=0.5)
    start_workers(processes, server, 1)
    gateway = start_gateway(processes, server)
    ws_url = gateway.url.replace("http", "ws") + "ws"
    step_until(server, lambda: gateway.health()["generation"] is not None, "frames")

    def rss_kib() -> int:
        status = Path(f"/proc/{gateway.proc.pid}/status").read_text()
        return int(status.split("VmRSS:")[1].split()[0])

    async def check() -> None:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(ws_url, max_msg_size=0)
            try:
                # not reading: the socket's buffers fill, then the writer waits
                before = rss_kib()
                for steps in range(1, 601):  # until the buffers are full and it drops
                    await asyncio.to_thread(server.advance)
                    if steps % 10 == 0 and gateway.health()["dropped"] >= 1:
                        break
                health = gateway.health()
                assert health["dropped"] >= 1, health
                # at most 4 messages of a 512x512 world queued (~1 MiB each at most),
                # and the buffers: not one message a generation
                assert rss_kib() - before < 24 * 1024, (before, rss_kib())
                kinds = []
                while True:  # read again: a key comes after the drop
                    msg = await ws.receive(timeout=10)
                    if msg.type is aiohttp.WSMsgType.BINARY:
                        kinds.append(msg.data[0])
                        gen = int.from_bytes(msg.data[4:8], "little")
                        if gen == server.engine.generation:
                            break
                assert 1 in kinds[1:], kinds  # a key after the first message read
            finally:
                await ws.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, check()).result(120)
