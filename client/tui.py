"""``lifenet client``: the terminal player, a Textual app.

The screen is the live coloured world (two cells per character: the upper half block
"▀" with the upper cell as foreground and the lower cell as background, the colours of
``shared.colours``), a cursor with a preview of the selected pattern in the player's
colour, and a side panel: the player, energy, generation, ms per generation, latency,
workers, the policy, the selected pattern and its cost, the last refusal, the scoreboard.

Two threads, each owning what it touches:

    network   (a Textual thread worker) the ``PlayerSession`` and ``FrameView`` sockets,
              made and closed in that thread: it answers every ``GAME_LOGIC`` request
              with the current policy at once, pings once a heartbeat (the latency),
              applies frames and runs the placements the UI asks for.
    app       the Textual event loop: keys, rendering.

Why a thread rather than a timer on the app's loop: a generation's decision window is
half a tick (50 ms by default). A timer would answer only as often as it fires, and
never while the loop is busy rendering a large world or while a request (``place``,
``ping``) blocks waiting for its reply; the thread answers within a poll. The UI hands
work to the thread through a ``queue.Queue``; the thread hands the latest world and
counters back through ``NetState`` under a lock, with one coalesced ``Changed`` message
at a time, so a slow terminal skips frames instead of queueing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import zmq
from rich.color import Color, blend_rgb
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.geometry import Region, Size
from textual.message import Message
from textual.screen import ModalScreen
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Footer, Static
from textual.worker import Worker, WorkerFailed, get_current_worker

from client.session import PlayerSession
from shared.colours import EMPTY_BG, colour
from shared.errors import LifenetError, PeerGone, RemoteError
from shared.frames import FrameView
from shared.grid import FIRST_PLAYER_CODE, NEUTRAL_CODE, Codes, player_code
from shared.keys import Credentials
from shared.library import library
from shared.placement import cost
from shared.policies import POLICIES, POLICY_HELP, GameLogicRequest
from shared.protocol import Kind

POLL_MS = 20  # the longest a placement waits in the queue before the network thread runs it
HALF_BLOCK = "\u2580"
CURSOR_COLOUR = 226  # a bright yellow, unlike any player's colour

# -- the network thread ------------------------------------------------------------------------


@dataclass
class NetState:
    """What the network thread knows, copied out for the UI under ``Network.lock``."""

    codes: Codes | None = None
    gen: int = -1
    info: dict[str, Any] = field(default_factory=dict)
    energy: int = 0
    latency_ms: float | None = None
    answered: int = 0
    kept: int = 0
    refused: int = 0
    trouble: str = ""  # the server is not answering, and so on


@dataclass
class Place:
    """A placement the UI asks the network thread to send."""

    y: int
    x: int
    name: str
    rle: str
    rotate: int
    flip: bool


class Joined(Message):
    def __init__(self, welcome: dict[str, Any]) -> None:
        super().__init__()
        self.welcome = welcome


class Changed(Message):
    """The network state changed; read it with ``Network.take``."""


class PlaceResult(Message):
    def __init__(self, place: Place, placed: dict[str, Any] | None, reason: str = "") -> None:
        super().__init__()
        self.place = place
        self.placed = placed
        self.reason = reason


class Landed(Message):
    """A placement reached the world: ``body`` is the server's ``LANDED``."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__()
        self.body = body


class Failed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class Network:
    """The player's connection, run by ``run`` in its own thread (see the module doc)."""

    def __init__(self, connect: str, name: str, token: str | None, policy: str,
                 post: Callable[[Message], object], timeout: float = 5.0,
                 credentials: Credentials | None = None) -> None:
        self.connect = connect
        self.name = name
        self.token = token or ""
        self.policy = policy  # set by the UI thread; one str assignment, read each request
        self.post = post
        self.timeout = timeout
        self.credentials = credentials
        self.stop = threading.Event()
        self.commands: queue.Queue[Place] = queue.Queue()
        self.lock = threading.Lock()
        self.state = NetState()
        self._pending = False  # a Changed message is on its way to the UI
        self.cancelled: Callable[[], bool] = lambda: False

    def take(self) -> NetState:
        """The latest state (UI thread); the next change posts ``Changed`` again."""
        with self.lock:
            self._pending = False
            return replace(self.state)

    def _changed(self, **updates: Any) -> None:
        with self.lock:
            for name, value in updates.items():
                setattr(self.state, name, value)
            post, self._pending = not self._pending, True
        if post:
            self.post(Changed())

    def run(self, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Join, then play until ``stop`` is set or ``cancelled()`` (the app is exiting
        some other way than ``q``: its workers are cancelled); then leave."""
        self.cancelled = cancelled
        context: zmq.Context[Any] = zmq.Context()
        session = PlayerSession(self.connect, self.name, timeout=self.timeout, context=context,
                                credentials=self.credentials)
        view: FrameView | None = None
        try:
            try:
                welcome = session.join(self.token or None)
            except LifenetError as e:
                self.post(Failed(f"cannot join {session.endpoint}: {e}"))
                return
            self.token = session.token
            view = FrameView(session.frame_endpoint, context, self.credentials)
            self._changed(energy=session.energy)
            self.post(Joined(welcome))
            self._loop(session, view, float(welcome["heartbeat"]))
            session.timeout = 1.0  # say goodbye, but do not hang on a server that is gone
            with contextlib.suppress(LifenetError):
                session.leave()
        finally:
            if view is not None:
                view.close()
            session.close()
            context.destroy(linger=0)

    def _loop(self, session: PlayerSession, view: FrameView, heartbeat: float) -> None:
        rng = random.Random()
        poller = zmq.Poller()
        poller.register(session.sock, zmq.POLLIN)
        poller.register(view.sock, zmq.POLLIN)
        next_ping = 0.0
        while not self.stop.is_set() and not self.cancelled():
            poller.poll(POLL_MS)
            self._answer(session, rng)  # first: the requests have a deadline
            if view.poll(0) and view.codes is not None:
                self._changed(codes=view.codes.copy(), gen=view.gen, info=view.info)
            while True:
                try:
                    place = self.commands.get_nowait()
                except queue.Empty:
                    break
                self._place(session, place)
            if time.monotonic() >= next_ping:
                next_ping = time.monotonic() + heartbeat
                old = session.sock
                self._ping(session)
                if session.sock is not old:  # reconnected: a new socket to watch
                    poller.unregister(old)
                    poller.register(session.sock, zmq.POLLIN)
            self._answer(session, rng)

    def _answer(self, session: PlayerSession, rng: random.Random) -> None:
        """Answer every waiting ``GAME_LOGIC`` request with the current policy."""
        while (msg := session.poll()) is not None:
            if msg.kind is Kind.GAME_LOGIC:
                request = GameLogicRequest.of(msg)
                assert session.rule is not None
                keep, let_die = POLICIES[self.policy](request, session.rule, session.energy,
                                                      rng)
                session.decide(request.gen, keep, let_die)
                with self.lock:
                    self.state.answered += 1
            elif msg.kind is Kind.DECIDED:
                session.energy = msg["energy"]
                with self.lock:
                    kept, refused = self.state.kept + msg["kept"], \
                        self.state.refused + msg["refused"]
                self._changed(energy=session.energy, kept=kept, refused=refused)
            elif msg.kind is Kind.LANDED:
                self._changed(energy=session.energy)
                self.post(Landed(msg.body))

    def _ping(self, session: PlayerSession) -> None:
        began = time.perf_counter()
        try:
            if self.state.trouble:
                session.reconnect()
            session.ping()
        except LifenetError as e:
            self._changed(trouble=f"server not answering: {e}", latency_ms=None)
            return
        self._changed(latency_ms=(time.perf_counter() - began) * 1000,
                      energy=session.energy, trouble="")

    def _place(self, session: PlayerSession, place: Place) -> None:
        try:
            placed = session.place(place.y, place.x, rle=place.rle, rotate=place.rotate,
                                   flip=place.flip)
        except RemoteError as e:
            self.post(PlaceResult(place, None, e.reason))
            return
        except PeerGone as e:
            self.post(PlaceResult(place, None, str(e)))
            return
        self._changed(energy=session.energy)
        self.post(PlaceResult(place, placed))


# -- the world view ----------------------------------------------------------------------------


class WorldView(ScrollView, can_focus=True):
    """The world, two cells per character, scrolled so that the cursor stays in view."""

    DEFAULT_CSS = """
    WorldView { background: rgb(28,28,28); scrollbar-size: 1 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "move(-1, 0)", "Up", show=False),
        Binding("down,j", "move(1, 0)", "Down", show=False),
        Binding("left,h", "move(0, -1)", "Left", show=False),
        Binding("right,l", "move(0, 1)", "Right", show=False),
        Binding("K", "move(-8, 0)", "Up 8", show=False),
        Binding("J", "move(8, 0)", "Down 8", show=False),
        Binding("H", "move(0, -8)", "Left 8", show=False),
        Binding("L", "move(0, 8)", "Right 8", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.codes: Codes = np.zeros((0, 0), dtype=np.uint8)
        self.cursor = (0, 0)
        self.preview_code = FIRST_PLAYER_CODE
        self.shape: npt.NDArray[np.bool_] = np.zeros((0, 0), dtype=np.bool_)
        self._preview: dict[int, list[int]] = {}  # world row -> columns of the preview
        self._styles: dict[tuple[int, int], Style] = {}
        self._lut = np.array([colour(c) for c in range(256)], dtype=np.int16)

    # colour keys: 0..255 a 256-colour index; these two are drawn specially
    PREVIEW = 256
    CURSOR = 257

    def _colour(self, key: int) -> Color:
        if key == self.CURSOR:
            return Color.from_ansi(CURSOR_COLOUR)
        if key == self.PREVIEW:
            mine = Color.from_ansi(colour(self.preview_code)).get_truecolor()
            return Color.from_triplet(
                blend_rgb(mine, Color.from_ansi(EMPTY_BG).get_truecolor(), 0.45))
        return Color.from_ansi(key)

    def _style(self, fg: int, bg: int) -> Style:
        style = self._styles.get((fg, bg))
        if style is None:
            style = self._styles[fg, bg] = Style(color=self._colour(fg),
                                                 bgcolor=self._colour(bg))
        return style

    def set_world(self, codes: Codes) -> None:
        if codes.shape != self.codes.shape:
            h, w = codes.shape
            self.virtual_size = Size(w, (h + 1) // 2)
            self.codes = codes
            self._update_preview()
        self.codes = codes
        self.refresh()

    def set_pattern(self, shape: npt.NDArray[np.bool_], code: int) -> None:
        self.shape = shape
        if code != self.preview_code:
            self.preview_code = code
            self._styles.clear()
        self._update_preview()
        self.refresh()

    def preview_cells(self) -> list[tuple[int, int]]:
        """The world cells the selected pattern covers at the cursor."""
        return sorted((y, x) for y, xs in self._preview.items() for x in xs)

    def _update_preview(self) -> None:
        self._preview = {}
        h, w = self.codes.shape
        if not h or not w:
            return
        ys, xs = np.nonzero(self.shape)
        for y, x in zip((ys + self.cursor[0]) % h, (xs + self.cursor[1]) % w, strict=True):
            self._preview.setdefault(int(y), []).append(int(x))

    def action_move(self, dy: int, dx: int) -> None:
        h, w = self.codes.shape
        if not h or not w:
            return
        self.cursor = ((self.cursor[0] + dy) % h, (self.cursor[1] + dx) % w)
        self._update_preview()
        self.follow_cursor()
        self.refresh()
        self.post_message(CursorMoved())

    def follow_cursor(self) -> None:
        y, x = self.cursor
        self.scroll_to_region(Region(x, y // 2, 1, 1), animate=False, force=True,
                              spacing=None)

    def _keys(self, row: int, x0: int, x1: int) -> npt.NDArray[np.int16]:
        """The colour keys of world row ``row``, columns ``x0..x1``, preview and cursor."""
        h = self.codes.shape[0]
        if row >= h:
            return np.full(x1 - x0, EMPTY_BG, dtype=np.int16)
        cells = self.codes[row, x0:x1]
        keys = self._lut[cells]
        for x in self._preview.get(row, ()):
            if x0 <= x < x1 and cells[x - x0] == 0:
                keys[x - x0] = self.PREVIEW
        if self.cursor[0] == row and x0 <= self.cursor[1] < x1:
            keys[self.cursor[1] - x0] = self.CURSOR
        return keys

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        width = self.size.width
        h, w = self.codes.shape
        row = (scroll_y + y) * 2
        if row >= h or scroll_x >= w:
            return Strip.blank(width)
        x0, x1 = scroll_x, min(w, scroll_x + width)
        tops, bottoms = self._keys(row, x0, x1).tolist(), self._keys(row + 1, x0, x1).tolist()
        segments: list[Segment] = []
        run, start = (tops[0], bottoms[0]), 0
        for i in range(1, len(tops) + 1):
            pair = (tops[i], bottoms[i]) if i < len(tops) else None
            if pair != run:
                segments.append(Segment(HALF_BLOCK * (i - start), self._style(*run)))
                if pair is not None:
                    run, start = pair, i
        return Strip(segments, x1 - x0).extend_cell_length(width)


class CursorMoved(Message):
    pass


# -- screens and the app -----------------------------------------------------------------------

KEYS = [
    ("arrows, h j k l", "move the cursor (the view follows it)"),
    ("H J K L", "move the cursor by 8 cells"),
    ("[ ]  or  p", "previous / next pattern of the library"),
    ("r", "rotate the pattern a quarter turn clockwise"),
    ("f", "flip the pattern left-right"),
    ("space, enter", "place the pattern, top-left corner at the cursor"),
    ("d", "switch the policy answering the per-cell requests"),
    ("?  or  F1", "this help"),
    ("q", "leave and quit (prints the token to rejoin)"),
]


class HelpScreen(ModalScreen[None]):
    """The keys, the policies and the rules of placing."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: 76; height: auto; border: round $accent;
                          padding: 1 2; background: $surface; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1,enter,space", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("lifenet: keys\n\n", style="bold")
        for keys, what in KEYS:
            text.append(f"  {keys:<18}", style="bold cyan")
            text.append(f"{what}\n")
        text.append("\npolicies\n\n", style="bold")
        for name, what in POLICY_HELP.items():
            text.append(f"  {name:<18}", style="bold cyan")
            text.append(f"{what}\n")
        text.append("\nA placed cell costs one energy; energy regenerates every generation "
                    "up to the cap. Cells already alive where the pattern lands are "
                    "refunded. The pattern lands at the next generation.\n\n")
        text.append("escape closes this help", style="dim")
        yield Static(text)


class LifenetClient(App[str | None]):
    """The player's terminal: ``run()`` returns the session token (to rejoin) or None."""

    TITLE = "lifenet"
    ENABLE_COMMAND_PALETTE = False  # Textual's command palette: ctrl+p is not needed
    CSS = """
    Screen { layout: vertical; }
    #main { height: 1fr; }
    #world { width: 1fr; height: 1fr; }
    #side { width: 36; height: 1fr; padding: 0 1; border-left: solid $primary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("left_square_bracket", "pattern(-1)", "Prev"),
        Binding("right_square_bracket,p", "pattern(1)", "Pattern"),
        Binding("r", "rotate", "Rotate"),
        Binding("f", "flip", "Flip"),
        Binding("space,enter", "place", "Place"),
        Binding("d", "policy", "Policy"),
        Binding("question_mark,f1", "help", "Help"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, connect: str, name: str, *, token: str | None = None,
                 policy: str = "follow", timeout: float = 5.0,
                 credentials: Credentials | None = None) -> None:
        super().__init__()
        self.network = Network(connect, name, token, policy, self.post_message, timeout,
                               credentials)
        self.patterns = list(library().items())
        self.selected = next((i for i, (n, _) in enumerate(self.patterns) if n == "glider"), 0)
        self.rotate = 0
        self.flip = False
        self.welcome: dict[str, Any] = {}
        self.state = NetState()
        self.last_refusal = ""
        self.last_placed = ""
        self.placed: list[dict[str, Any]] = []  # every PLACED reply, for the curious
        self.landed: list[dict[str, Any]] = []  # every LANDED notice
        self.failure = ""
        self._worker: Worker[None] | None = None

    @property
    def policy(self) -> str:
        return self.network.policy

    @property
    def world(self) -> WorldView:
        return self.query_one("#world", WorldView)

    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield WorldView(id="world")
            yield Static(id="side")
        yield Footer()

    def on_mount(self) -> None:
        self.world.focus()
        self._worker = self._network()
        self._refresh_side()

    @work(thread=True, name="network", exit_on_error=False)
    def _network(self) -> None:
        worker = get_current_worker()
        self.network.run(lambda: worker.is_cancelled)

    # -- from the network thread --------------------------------------------------------------

    def on_joined(self, message: Joined) -> None:
        self.welcome = message.welcome
        self.sub_title = f"{message.welcome['name']} on {self.network.connect}"
        h, w = message.welcome["size"]
        self.world.set_world(np.zeros((h, w), dtype=np.uint8))
        self.world.cursor = (h // 2, w // 2)
        self._selection_changed()
        self.world.follow_cursor()

    def on_changed(self, message: Changed) -> None:
        self.state = self.network.take()
        if self.state.codes is not None:
            self.world.set_world(self.state.codes)
        self._refresh_side()

    def on_place_result(self, message: PlaceResult) -> None:
        if message.placed is None:
            self.last_refusal = message.reason
            self.notify(message.reason, title="refused", severity="warning")
        else:
            self.placed.append(message.placed)
            self.last_placed = (f"{message.place.name} at {message.place.y},{message.place.x}"
                                f" for {message.placed['cost']}, "
                                f"gen {message.placed['generation']}")
            self.state.energy = message.placed["energy"]
        self._refresh_side()

    def on_landed(self, message: Landed) -> None:
        landed = message.body
        self.landed.append(landed)
        if landed["occupied"]:
            self.notify(f"{landed['placed']} of {landed['cells']} cells landed in generation "
                        f"{landed['generation']}; {landed['occupied']} were occupied "
                        "(refunded)", title="placed in part", severity="warning")

    def on_failed(self, message: Failed) -> None:
        self.failure = message.reason
        self.exit(None, return_code=1)

    def on_cursor_moved(self, message: CursorMoved) -> None:
        self._refresh_side()

    # -- actions ---------------------------------------------------------------------------------

    def action_pattern(self, step: int) -> None:
        self.selected = (self.selected + step) % len(self.patterns)
        self.rotate, self.flip = 0, False
        self._selection_changed()

    def action_rotate(self) -> None:
        self.rotate = (self.rotate + 1) % 4
        self._selection_changed()

    def action_flip(self) -> None:
        self.flip = not self.flip
        self._selection_changed()

    def action_place(self) -> None:
        if not self.welcome:
            return
        name, (text, _pattern) = self.patterns[self.selected]
        y, x = self.world.cursor
        self.network.commands.put(Place(y, x, name, text, self.rotate, self.flip))

    def action_policy(self) -> None:
        names = list(POLICIES)
        self.network.policy = names[(names.index(self.policy) + 1) % len(names)]
        self.notify(f"policy {self.policy}: {POLICY_HELP[self.policy]}")
        self._refresh_side()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Leave the game (the network thread sends LEAVE), then exit with the token."""
        self.network.stop.set()
        if self._worker is not None:
            with contextlib.suppress(WorkerFailed, asyncio.TimeoutError):
                await asyncio.wait_for(self._worker.wait(), self.network.timeout + 2)
        self.exit(self.network.token or None)

    # -- drawing ---------------------------------------------------------------------------------

    def _selection_changed(self) -> None:
        _name, (_text, pattern) = self.patterns[self.selected]
        self.world.set_pattern(pattern.oriented(self.rotate, self.flip),
                               int(self.welcome.get("code", FIRST_PLAYER_CODE)))
        self._refresh_side()

    def selected_cost(self) -> int:
        """What placing the selected pattern, turned as it is, costs in this world."""
        pattern = self.patterns[self.selected][1][1]
        h, w = self.welcome.get("size", pattern.codes.shape)
        return cost(pattern.oriented(self.rotate, self.flip), h, w)

    def _refresh_side(self) -> None:
        s, wel = self.state, self.welcome
        text = Text()
        if not wel:
            text.append(f"joining {self.network.connect} ...\n", style="bold")
            self.query_one("#side", Static).update(text)
            return
        code = int(wel["code"])
        text.append("\u2588\u2588 ", style=Style(color=Color.from_ansi(colour(code))))
        text.append(f"{wel['name']}\n", style="bold")
        text.append(f"world {wel['size'][0]}x{wel['size'][1]} {wel['rule']}\n\n")
        cap = int(wel["energy_cap"])
        text.append(f"energy   {s.energy:>5} / {cap}  (+{wel['energy_regen']})\n")
        bar = int(20 * s.energy / cap) if cap else 0
        text.append("\u2501" * bar, style="green")
        text.append("\u2501" * (20 - bar) + "\n", style="grey23")
        info = s.info
        text.append(f"gen      {max(s.gen, 0):>8}\n")
        text.append(f"ms/gen   {info.get('ms', 0.0):>8.1f}\n")
        latency = "-" if s.latency_ms is None else f"{s.latency_ms:.1f} ms"
        text.append(f"latency  {latency:>8}\n")
        text.append(f"workers  {info.get('workers', 0):>8}\n")
        text.append(f"cursor   {self.world.cursor[0]:>3},{self.world.cursor[1]:<4}\n\n")
        name = self.patterns[self.selected][0]
        turn = f"{self.rotate * 90}\u00b0"
        text.append("pattern  ", style="bold")
        text.append(f"{name}  {turn}{' flipped' if self.flip else ''}\n")
        text.append(f"         cost {self.selected_cost()}\n")
        text.append("policy   ", style="bold")
        text.append(f"{self.policy}\n")
        text.append(f"         answered {s.answered}, kept {s.kept}\n")
        if self.last_placed:
            text.append(f"placed   {self.last_placed}\n", style="dim")
        if self.last_refusal:
            text.append("refused  ", style="bold red")
            text.append(f"{self.last_refusal}\n", style="red")
        if s.trouble:
            text.append(f"{s.trouble}\n", style="bold red")
        text.append("\nscores\n", style="bold")
        board = sorted(info.get("board", []), key=lambda row: -row[2])
        players = 0
        for pid, pname, cells in board:
            players += cells
            swatch = Style(color=Color.from_ansi(colour(player_code(pid))))
            text.append("\u2588\u2588 ", style=swatch)
            text.append(f"{pname[:20]:<20}{cells:>7}\n",
                        style="bold" if pid == wel["player"] else "")
        text.append("\u2588\u2588 ", style=Style(color=Color.from_ansi(colour(NEUTRAL_CODE))))
        text.append(f"{'neutral':<20}{info.get('population', 0) - players:>7}\n")
        text.append("\n? help   q quit", style="dim")
        self.query_one("#side", Static).update(text)
