"""``lifenet client``: the terminal player, a Textual app.

The screen is the live coloured world around the cursor (``client.worldview``), a
panel, and a key bar. The panel says first what matters to the player (their colour,
cells, points and rank, energy and what it drains per generation, the round, the
selected pattern and whether it can be afforded, the scoreboard) and last, under a
"server" heading, the operator's numbers (generation, ms/gen, latency, workers, the
requests answered). Below 100 columns the layout is compact: the panel is hidden (``s``
shows it) and one status line keeps the player's own score in view.

The game has a goal, stated on a first-run screen and in the help: own the most live
cells over a round; each generation a player's live cells add to their points. Keys
help a new player start: ``o`` jumps to open space, ``m`` to one's own cells; the
preview turns red where cells are occupied and dark red when the pattern cannot be
afforded.

Two threads: the network thread (``client.network``, a Textual thread worker) owns the
sockets and answers the server's per-cell requests within a poll; the app thread owns
keys and drawing. Why a thread rather than a timer on the app's loop: a generation's
decision window is half a tick (50 ms by default); a timer would answer only as often as
it fires, and never while the loop is busy rendering or a request blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.css.query import NoMatches
from textual.events import Key, Resize
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option
from textual.worker import Worker, WorkerFailed, get_current_worker

from client.network import (
    Changed,
    Failed,
    Joined,
    Landed,
    NetState,
    Network,
    Place,
    PlaceResult,
)
from client.worldview import CursorMoved, WorldView, next_spot, open_spots, own_spots
from shared.colours import NEUTRAL, colour
from shared.grid import NEUTRAL_CODE, player_code
from shared.keys import Credentials
from shared.library import Entry, library, search
from shared.placement import cost
from shared.policies import POLICIES, POLICY_HELP

__all__ = ["HelpScreen", "IntroScreen", "LifenetClient", "NetState", "WorldView"]

COMPACT_BELOW = 100  # columns: below this the panel hides and a status line shows
WARN_GENERATIONS = 30  # warn when energy runs out sooner than this at the current drain
BOARD_ROWS = 8
VIEW_MARGIN = 16   # cells watched beyond each side of the world view (large worlds)
ROUND_RESULTS = 5  # the most round results a frame lists that are looked at

GOAL = ("Own the most live cells: the scoreboard counts each player's live cells; place "
        "patterns that live and grow.")  # what a server that does not say its goal means

KEYS = [
    ("arrows, h j k l", "move the cursor (the view follows it; the world wraps)"),
    ("H J K L", "move the cursor by 8 cells"),
    ("o", "jump to open space (again: the next open place)"),
    ("m", "jump to your own cells (again: the next group)"),
    ("p / P  or  ] / [", "next / previous pattern of the library"),
    ("/", "find a pattern by name (type, arrows, enter)"),
    ("r", "rotate the pattern a quarter turn clockwise"),
    ("f", "flip the pattern left-right"),
    ("space, enter", "place the pattern, top-left corner at the cursor"),
    ("d", "switch the policy answering the per-cell requests"),
    ("s", "show or hide the panel (narrow terminals)"),
    ("?  or  F1", "this help"),
    ("q  or  ctrl+c", "leave and quit (prints the token to rejoin)"),
]

KEY_BAR = [("arrows", "move"), ("o", "open space"), ("m", "my cells"), ("p/P /", "pattern"),
           ("r f", "turn"), ("space", "place"), ("d", "policy"), ("s", "panel"),
           ("?", "help"), ("^C", "quit")]
SHORT_KEY_BAR = [("\u2190\u2191\u2193\u2192", "move"), ("o", "open"), ("m", "mine"),
                 ("p", "pattern"), ("spc", "place"), ("d", "policy"), ("s", "panel"),
                 ("?", "help"), ("^C", "quit")]


def swatch(code: int) -> Style:
    return Style(color=Color.from_ansi(colour(code)))


def rules_text(welcome: dict[str, Any]) -> Text:
    """The goal and the rules of this server's game, for the intro and the help."""
    text = Text()
    text.append("The goal\n", style="bold")
    text.append(f"{welcome.get('goal') or GOAL}\n")
    length = int(welcome.get("round") or 0)
    if length:
        text.append(f"A round lasts {length} generations.\n")
    text.append("\nPlaying\n", style="bold")
    text.append(
        "Place patterns: each placed cell costs one energy; energy comes back every "
        f"generation (+{welcome.get('energy_regen', 5)}) up to "
        f"{welcome.get('energy_cap', 200)}. Cells already alive where a pattern lands "
        "are refunded: the preview shows them red. The pattern lands at the next "
        "generation.")
    protect = int(welcome.get("protect") or 0)
    if protect:
        text.append(f" A fresh placement is shielded for {protect} generations: it evolves "
                    "as if alone, and nobody else may place or keep cells in its shield.")
    text.append("\nYour cells ask you, every generation, whether to keep alive a cell "
                "the rule would kill (one energy) or let die one it would keep: your "
                "policy answers (d switches it).\n")
    return text


class HelpScreen(ModalScreen[None]):
    """The goal, the keys, the policies and the rules of placing."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 80; max-width: 100%; height: auto;
                                  max-height: 100%; border: round $accent;
                                  padding: 0 1; background: $surface; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark,f1,enter,space", "dismiss", "Close"),
    ]

    def __init__(self, welcome: dict[str, Any]) -> None:
        super().__init__()
        self.welcome = welcome

    def compose(self) -> ComposeResult:
        text = Text()
        text.append("lifenet\n\n", style="bold")
        text.append_text(rules_text(self.welcome))
        text.append("\nKeys\n", style="bold")
        for keys, what in KEYS:
            text.append(f"  {keys:<18}", style="bold cyan")
            text.append(f"{what}\n")
        text.append("\nPolicies\n", style="bold")
        for name, what in POLICY_HELP.items():
            text.append(f"  {name:<18}", style="bold cyan")
            text.append(f"{what}\n")
        text.append("\nescape closes this help (arrows scroll it)", style="dim")
        with VerticalScroll():
            yield Static(text)


class IntroScreen(ModalScreen[None]):
    """The first-run screen: the goal, the score, and how to start."""

    DEFAULT_CSS = """
    IntroScreen { align: center middle; }
    IntroScreen > VerticalScroll { width: 76; max-width: 100%; height: auto;
                                   max-height: 100%; border: round $success;
                                   padding: 0 1; background: $surface; }
    """

    def __init__(self, welcome: dict[str, Any]) -> None:
        super().__init__()
        self.welcome = welcome

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(f"Welcome to lifenet, {self.welcome.get('name', 'player')}  ",
                    style="bold")
        text.append("\u2588\u2588", style=swatch(int(self.welcome.get("code", 2))))
        text.append("  your colour\n\n")
        text.append_text(rules_text(self.welcome))
        text.append("\nTo start\n", style="bold")
        for keys, what in [("o", "jump to open space"),
                           ("p", "pick a pattern (a glider travels; a block stays)"),
                           ("space", "place it; watch it land in your colour"),
                           ("m", "find your cells again"),
                           ("?", "all the keys, any time")]:
            text.append(f"  {keys:<8}", style="bold cyan")
            text.append(f"{what}\n")
        text.append("\nany key to play", style="dim")
        with VerticalScroll():
            yield Static(text)

    def on_key(self, event: Key) -> None:
        event.stop()
        self.dismiss()


class PatternSearch(ModalScreen[int | None]):
    """Find a pattern of the library by name: type a part of it, pick one with the
    arrows and enter (escape: keep the one selected). Returns its index."""

    DEFAULT_CSS = """
    PatternSearch { align: center middle; }
    PatternSearch > VerticalScroll { width: 50; max-width: 100%; height: auto;
                                     max-height: 100%; border: round $accent;
                                     background: $surface; }
    PatternSearch OptionList { height: auto; max-height: 14; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, patterns: dict[str, Entry], costs: list[int]) -> None:
        super().__init__()
        self.patterns = patterns
        self.names = list(patterns)
        self.costs = costs

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Input(placeholder="pattern name (e.g. gun, glider, ship)", id="query")
            yield OptionList(id="matches")

    def on_mount(self) -> None:
        self._fill("")
        self.query_one("#query", Input).focus()

    def matches(self, query: str) -> list[int]:
        """Indices of the patterns whose name (or ``#N`` name) holds ``query``, best
        first: ``shared.library.search``'s order (any case; a space, - or _ alike)."""
        index = {name: i for i, name in enumerate(self.names)}
        return [index[name] for name in search(query.strip(), self.patterns)
                if name in index]

    def _fill(self, query: str) -> None:
        options = self.query_one("#matches", OptionList)
        options.clear_options()
        options.add_options([Option(f"{self.names[i]:<28}{self.costs[i]:>6}", id=str(i))
                             for i in self.matches(query)])
        if options.option_count:
            options.highlighted = 0

    def on_input_changed(self, event: Input.Changed) -> None:
        self._fill(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one("#matches", OptionList)
        option = options.highlighted_option
        self.dismiss(None if option is None or option.id is None else int(option.id))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(None if event.option.id is None else int(event.option.id))

    def on_key(self, event: Key) -> None:
        """Up and down move through the matches while the name is typed."""
        if event.key in ("up", "down"):
            options = self.query_one("#matches", OptionList)
            if options.option_count:
                step = -1 if event.key == "up" else 1
                options.highlighted = ((options.highlighted or 0) + step) % \
                    options.option_count
            event.stop()

    def action_cancel(self) -> None:
        self.dismiss(None)


class LifenetClient(App[str | None]):
    """The player's terminal: ``run()`` returns the session token (to rejoin) or None."""

    TITLE = "lifenet"
    ENABLE_COMMAND_PALETTE = False  # Textual's command palette: ctrl+p is not needed
    CSS = """
    Screen { layout: vertical; }
    #main { height: 1fr; }
    #world { width: 1fr; height: 1fr; }
    #side { width: 38; height: 1fr; padding: 0 1; border-left: solid $primary; }
    #status { height: 1; display: none; background: $panel; }
    #keys { height: 1; background: $panel-darken-1; }
    .compact #side { display: none; width: 34; }
    .compact #status { display: block; }
    .compact.panel #side { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Binding("left_square_bracket,P", "pattern(-1)", "Previous pattern", show=False),
        Binding("right_square_bracket,p", "pattern(1)", "Next pattern", show=False),
        Binding("r", "rotate", "Rotate", show=False),
        Binding("f", "flip", "Flip", show=False),
        Binding("space,enter", "place", "Place", show=False),
        Binding("o", "open_space", "Open space", show=False),
        Binding("slash", "search", "Find a pattern", show=False),
        Binding("m", "my_cells", "My cells", show=False),
        Binding("d", "policy", "Policy", show=False),
        Binding("s", "panel", "Panel", show=False),
        Binding("question_mark,f1", "help", "Help", show=False),
        Binding("q", "quit", "Quit", show=False),
    ]

    def __init__(self, connect: str, name: str, *, token: str | None = None,
                 policy: str = "follow", timeout: float = 5.0,
                 credentials: Credentials | None = None, intro: bool = False,
                 rekey: Callable[[], Credentials | None] | None = None,
                 pattern_dirs: Sequence[Path] = ()) -> None:
        super().__init__()
        self.network = Network(connect, name, token, policy, self.post_message, timeout,
                               credentials, rekey)
        self.problems: list[str] = []  # pattern files of pattern_dirs that were skipped
        self.patterns = list(library(pattern_dirs, self.problems).items())
        self.selected = next((i for i, (n, _) in enumerate(self.patterns) if n == "glider"), 0)
        self.rotate = 0
        self.flip = False
        self.intro = intro
        self.welcome: dict[str, Any] = {}
        self.state = NetState()
        self.last_refusal = ""
        self.last_placed = ""
        self.placed: list[dict[str, Any]] = []  # every PLACED reply, for the curious
        self.landed: list[dict[str, Any]] = []  # every LANDED notice
        self.announced: list[dict[str, Any]] = []  # round results seen
        self.failure = ""
        self.warned = False  # the energy warning was shown for this drain
        self._joined_at = 0  # the generation the session began at
        self.neutral = 0  # live neutral cells of the world shown
        self._own = 0  # and the player's own
        self._seen: set[tuple[Any, Any]] = set()  # round results already announced
        self._spots: list[tuple[int, int]] = []
        self._spot = 0
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
        yield Static(id="status")
        yield Static(id="keys")

    def on_mount(self) -> None:
        for problem in self.problems[:5]:
            self.notify(problem, title="pattern skipped", severity="warning", timeout=10)
        self.world.focus()
        self._layout(self.size.width)
        self._worker = self._network()
        self._refresh_side()

    def on_resize(self, event: Resize) -> None:
        self._layout(event.size.width)
        self._follow()

    def _layout(self, width: int) -> None:
        self.screen.set_class(width < COMPACT_BELOW, "compact")
        bar = KEY_BAR if width >= COMPACT_BELOW else SHORT_KEY_BAR
        text = Text(no_wrap=True, overflow="ellipsis")
        for key, what in bar:
            text.append(f" {key}", style="bold yellow")
            text.append(f" {what}")
        self.query_one("#keys", Static).update(text)

    @property
    def compact(self) -> bool:
        return self.screen.has_class("compact")

    @work(thread=True, name="network", exit_on_error=False)
    def _network(self) -> None:
        worker = get_current_worker()
        self.network.run(lambda: worker.is_cancelled)

    # -- from the network thread --------------------------------------------------------------

    def on_joined(self, message: Joined) -> None:
        first = not self.welcome
        old_size = self.welcome.get("size")
        self.welcome = message.welcome
        self._joined_at = int(message.welcome.get("generation", 0))
        self._own = 0  # a new code: counted again with the next frame
        self._seen = set()  # a new session (a restarted server counts rounds from 1 again)
        self.sub_title = f"{message.welcome['name']} on {self.network.connect}"
        h, w = message.welcome["size"]
        if [h, w] != old_size:
            self.world.set_world(np.zeros((h, w), dtype=np.uint8))
            self.world.cursor = (h // 2, w // 2)
        self.world.set_own(int(message.welcome["code"]))
        self._selection_changed()
        if message.why:
            self.notify(message.why, title="joined again", severity="warning", timeout=10)
        if first and self.intro:
            self.push_screen(IntroScreen(message.welcome))

    def on_changed(self, message: Changed) -> None:
        self.state = self.network.take()
        if self.state.codes is not None:
            self.world.set_world(self.state.codes)
            self._follow()
            # counted once a frame, not at every redraw of the panel and status line
            self.neutral = int(np.count_nonzero(self.state.codes == NEUTRAL_CODE))
            code = self.welcome.get("code")
            self._own = 0 if code is None else int(np.count_nonzero(self.state.codes == code))
            self.world.set_shields([(int(s[0]), int(s[1]), int(s[2]), int(s[3]))
                                    for s in self.state.info.get("shields", [])])
            self._announce()
        self._check_energy()
        self._selection_changed()

    def on_place_result(self, message: PlaceResult) -> None:
        if message.placed is None:
            self.last_refusal = message.reason
            self.notify(message.reason, title="refused", severity="warning")
        else:
            self.placed.append(message.placed)
            self.last_refusal = ""
            self.last_placed = (f"{message.place.name[:12]} for {message.placed['cost']}, "
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
        self._follow()
        self._refresh_side()

    def _follow(self) -> None:
        """Tell the network thread the cells the world view shows, with a margin (what
        it watches in a world too large to receive whole)."""
        h, w = self.world.codes.shape
        if not h or not w:
            return
        oy, ox = self.world.origin()
        margin = VIEW_MARGIN
        self.network.region = (oy - margin, ox - margin, 2 * self.world.size.height
                               + 2 * margin, self.world.size.width + 2 * margin)

    def _announce(self) -> None:
        """A notice for every round that ended since the player joined (the frames list
        the last results, newest first); results from before the join are not news."""
        last = (self.state.info.get("round") or {}).get("last") or []
        for result in reversed(last[:ROUND_RESULTS]):
            if not isinstance(result, dict):
                continue
            key = (result.get("round"), result.get("ended_at"))
            ended = result.get("ended_at")
            if key in self._seen or not isinstance(ended, int) or ended <= self._joined_at:
                continue
            self._seen.add(key)
            self.announced.append(result)
            winner = result.get("winner")
            if winner is None:
                text = f"round {result['round']} ended with no winner"
            elif result.get("player") == self.welcome.get("player"):
                text = f"you won round {result['round']} with {result['points']} points!"
            else:
                text = f"round {result['round']} won by {winner} with {result['points']} points"
            self.notify(text + "; a new round begins", title="round over", timeout=8)

    def _check_energy(self) -> None:
        gens = self.generations_left()
        if gens is not None and gens < WARN_GENERATIONS:
            if not self.warned:
                self.warned = True
                self.notify(f"energy runs out in about {gens} generations at this drain: "
                            f"your policy ({self.policy}) keeps cells alive at one energy "
                            "each; d switches it", title="energy", severity="warning")
        else:
            self.warned = False

    # -- the numbers ------------------------------------------------------------------------

    def spent(self) -> int:
        """What the last decision round cost (keep-alives), if it was a recent one."""
        recent = self.state.spent_gen >= 0 and self.state.gen - self.state.spent_gen <= 2
        return self.state.spent if recent else 0

    def drain(self) -> int:
        """Energy per generation, net: what the last decision round cost, less the
        regeneration (positive: energy is going down)."""
        return self.spent() - int(self.welcome.get("energy_regen", 0))

    def generations_left(self) -> int | None:
        """Generations until energy runs out at the current drain, or None if it does not."""
        drain = self.drain()
        if drain <= 0:
            return None
        return self.state.energy // drain

    def board(self) -> list[tuple[int, str, int, int, bool]]:
        """The scoreboard: (player, name, cells, points, away), best first (points when
        rounds are on, else cells)."""
        info = self.state.info
        points = {int(p): int(n) for p, n in (info.get("round") or {}).get("points", [])}
        away = set(info.get("away") or [])
        rows = [(int(r[0]), str(r[1]), int(r[2]), points.get(int(r[0]), 0), int(r[0]) in away)
                for r in info.get("board") or []]
        rows.sort(key=lambda r: (-r[3], -r[2], r[0]))
        return rows

    def rank(self) -> tuple[int, int]:
        """The player's place on the scoreboard, and how many are on it: from the
        frame's top rows when the player is among them, else from its last ``PONG``."""
        rows = self.board()
        me = self.welcome.get("player")
        ranked = int(self.state.info.get("ranked") or len(rows))
        place = next((i + 1 for i, r in enumerate(rows) if r[0] == me), None)
        if place is None:
            place = int(self.state.standing.get("rank") or ranked)
        return place, max(ranked, place)

    def points(self) -> int:
        """The player's points this round (frame's top rows, else its last ``PONG``)."""
        mine = next((r for r in self.board() if r[0] == self.welcome.get("player")), None)
        return mine[3] if mine else int(self.state.standing.get("points", 0))

    def own_cells(self) -> int:
        """The player's live cells in the world shown (counted once a frame)."""
        return self._own

    def round_left(self) -> int | None:
        r = self.state.info.get("round")
        return None if not r else max(0, int(r["ends_at"]) - max(self.state.gen, 0))

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

    def action_open_space(self) -> None:
        """Jump to the emptiest place (again: the next one), the pattern centred on it."""
        world = self.world
        if self._spots and world.cursor == self._spot_cursor(self._spots[self._spot]):
            self._spot = (self._spot + 1) % len(self._spots)
        else:
            self._spots, self._spot = open_spots(world.codes, world.cursor), 0
        if self._spots:
            world.jump(*self._spot_cursor(self._spots[self._spot]))

    def _spot_cursor(self, spot: tuple[int, int]) -> tuple[int, int]:
        h, w = self.world.codes.shape
        sh, sw = self.world.shape.shape
        return ((spot[0] - sh // 2) % h, (spot[1] - sw // 2) % w) if h and w else spot

    def action_my_cells(self) -> None:
        spot = next_spot(own_spots(self.world.codes, int(self.welcome.get("code", -1))),
                         self.world.cursor)
        if spot is None:
            self.notify("you have no live cells: o finds open space, space places a pattern")
            return
        self.world.jump(*spot)

    def action_search(self) -> None:
        if isinstance(self.screen, PatternSearch):
            return
        h, w = self.welcome.get("size", (4096, 4096))
        costs = [cost(pattern.oriented(), h, w) for _, (_, pattern) in self.patterns]

        def chosen(index: int | None) -> None:
            if index is not None:
                self.selected, self.rotate, self.flip = index, 0, False
                self._selection_changed()

        self.push_screen(PatternSearch(dict(self.patterns), costs), chosen)

    def action_policy(self) -> None:
        names = list(POLICIES)
        self.network.policy = names[(names.index(self.policy) + 1) % len(names)]
        self.warned = False
        self.notify(f"policy {self.policy}: {POLICY_HELP[self.policy]}")
        self._refresh_side()

    def action_panel(self) -> None:
        self.screen.toggle_class("panel")

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.welcome))

    async def action_quit(self) -> None:
        """Leave the game (the network thread sends LEAVE), then exit with the token."""
        self.network.stop.set()
        if self._worker is not None:
            with contextlib.suppress(WorkerFailed, asyncio.TimeoutError):
                await asyncio.wait_for(self._worker.wait(), self.network.timeout + 2)
        self.exit(self.network.token or None)

    @property
    def grace(self) -> float | None:
        """Seconds the server keeps a left session rejoinable (None: not told)."""
        grace = self.welcome.get("grace")
        return None if grace is None else float(grace)

    # -- drawing ---------------------------------------------------------------------------------

    def _selection_changed(self) -> None:
        _name, (_text, pattern) = self.patterns[self.selected]
        self.world.set_pattern(pattern.oriented(self.rotate, self.flip),
                               affordable=self.affordable())
        self._refresh_side()

    def selected_cost(self) -> int:
        """What placing the selected pattern, turned as it is, costs in this world."""
        pattern = self.patterns[self.selected][1][1]
        h, w = self.welcome.get("size", pattern.codes.shape)
        return cost(pattern.oriented(self.rotate, self.flip), h, w)

    def affordable(self) -> bool:
        return not self.welcome or self.selected_cost() <= self.state.energy

    def _refresh_side(self) -> None:
        try:
            side = self.query_one("#side", Static)
            status = self.query_one("#status", Static)
        except NoMatches:  # not composed yet
            return
        if not self.welcome:
            waiting = Text(f"joining {self.network.connect} ...", style="bold")
            side.update(waiting)
            status.update(waiting)
            return
        side.update(self._panel())
        status.update(self._status_line())

    def _status_line(self) -> Text:
        """The compact layout's one line: who, cells, points and rank, energy, round."""
        s, wel = self.state, self.welcome
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("\u2588\u2588", style=swatch(int(wel["code"])))
        text.append(f" {wel['name'][:12]} ", style="bold")
        place, players = self.rank()
        text.append(f"cells {self.own_cells()} ")
        if s.info.get("round"):
            text.append(f"pts {self.points()} ")
        text.append(f"#{place}/{players} ")
        drain = self.drain()
        text.append(f"E {s.energy}/{wel['energy_cap']}",
                    style="bold red" if self.generations_left() is not None
                    and self.warned else "")
        text.append(f" {-drain:+d}/gen ")
        left = self.round_left()
        if left is not None:
            text.append(f"round {s.info['round']['number']} {left} left ")
        text.append(f"gen {max(s.gen, 0)}")
        if s.trouble:
            text.append(f"  {s.trouble}", style="bold red")
        return text

    def _panel(self) -> Text:
        s, wel = self.state, self.welcome
        text = Text()
        text.append("\u2588\u2588 ", style=swatch(int(wel["code"])))
        text.append(f"{wel['name']}\n", style="bold")
        place, players = self.rank()
        text.append(f"cells    {self.own_cells():>7}   rank {place}/{players}\n")
        rnd = s.info.get("round")
        if rnd:
            text.append(f"points   {self.points():>7}\n")
        cap = int(wel["energy_cap"])
        text.append(f"energy   {s.energy:>7} / {cap}\n")
        bar = int(20 * s.energy / cap) if cap else 0
        warn = self.generations_left() is not None and self.warned
        text.append("\u2501" * bar, style="red" if warn else "green")
        text.append("\u2501" * (20 - bar) + "\n", style="grey23")
        drain = self.drain()
        text.append(f"         {-drain:+d}/gen: +{wel['energy_regen']} regen, "
                    f"-{self.spent()} kept\n", style="dim")
        gens = self.generations_left()
        if gens is not None and gens < WARN_GENERATIONS:
            text.append(f"runs out in ~{gens} gen: d\n", style="bold red")
        if rnd:
            text.append("\nround    ", style="bold")
            text.append(f"{rnd['number']}, {self.round_left()} gen left\n")
            for result in (rnd.get("last") or [])[:2]:
                who = result.get("winner") or "nobody"
                text.append(f"  {result['round']}: {who[:16]} {result['points']}\n",
                            style="dim")
        name = self.patterns[self.selected][0]
        turn = f"{self.rotate * 90}\u00b0"
        text.append("\npattern  ", style="bold")
        text.append(f"{name}  {turn}{' flipped' if self.flip else ''}\n")
        price = self.selected_cost()
        if price <= s.energy:
            text.append(f"         cost {price}")
        else:
            text.append(f"         cost {price}: you have {s.energy}", style="red")
        occupied = self.world.occupied()
        text.append(f", {occupied} occupied\n" if occupied else "\n",
                    style="red" if occupied else "")
        text.append("policy   ", style="bold")
        text.append(f"{self.policy}\n")
        if self.last_placed:
            text.append(f"placed   {self.last_placed}\n", style="dim")
        if self.last_refusal:
            text.append("refused  ", style="bold red")
            text.append(f"{self.last_refusal}\n", style="red")
        if s.trouble:
            text.append(f"{s.trouble}\n", style="bold red")
        text.append_text(self._scores(place))
        text.append("\nserver\n", style="bold")
        info = s.info
        latency = "-" if s.latency_ms is None else f"{s.latency_ms:.1f} ms"
        text.append(f"gen {max(s.gen, 0):>8}  ms/gen {info.get('ms', 0.0):>6.1f}\n"
                    f"workers {info.get('workers', 0):>4}  latency {latency:>8}\n"
                    f"world {wel['size'][0]}x{wel['size'][1]} {wel['rule']}\n"
                    f"answered {s.answered}, kept {s.kept}\n"
                    f"cursor {self.world.cursor[0]},{self.world.cursor[1]}\n", style="dim")
        return text

    def _scores(self, place: int) -> Text:
        """The top of the scoreboard (frames carry the top rows), and the player's own
        row below it when the player is further down."""
        wel, info = self.welcome, self.state.info
        rows = self.board()
        rounds = bool(info.get("round"))
        text = Text()
        text.append(f"\n{'points' if rounds else 'cells':>28}\n", style="bold")
        me = wel["player"]
        shown = [(i + 1, row) for i, row in enumerate(rows[:BOARD_ROWS])]
        if all(row[0] != me for _, row in shown):
            own = (me, str(wel["name"]), self.own_cells(), self.points(), False)
            shown = [*shown[:BOARD_ROWS - 1], (place, own)]
        for number, (pid, pname, cells, points, away) in shown:
            text.append(f"{number:>2} ")
            text.append("\u2588\u2588 ", style=swatch(player_code(pid)))
            label = pname[:14] + (" (away)" if away else "")
            style = "bold" if pid == me else ("dim" if away else "")
            text.append(f"{label:<21}{points if rounds else cells:>7}\n", style=style)
        others = int(info.get("ranked") or len(rows)) - len(shown)
        if others > 0:
            text.append(f"   ... {others} more\n", style="dim")
        text.append("   ")
        text.append("\u2588\u2588 ", style=Style(color=Color.from_ansi(NEUTRAL)))
        text.append(f"{'neutral':<21}{self.neutral:>7}\n", style="dim")
        return text
