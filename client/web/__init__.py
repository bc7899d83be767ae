"""The browser client: ``lifenet web``, an HTTP + WebSocket gateway and its one page.

The gateway is a player of the server like ``lifenet client``: it speaks the player
protocol over ZeroMQ (CURVE where the server has keys), one ``PlayerSession`` for each
browser tab that joins, and watches the world once for every tab (``feed``). The page
(``static/``) is plain HTML, CSS and JavaScript, with no build step and nothing fetched
from elsewhere.

- ``encoding``: the binary WebSocket messages (a tab's cells), the one place that knows
  their layout (``docs/protocol.md``, "The browser's WebSocket").
- ``feed``: the world, watched once (``FrameView``), handed to the event loop.
- ``link``: one tab's player session, in a thread of its own.
- ``tabs``: a tab's bounded queue and region.
- ``gateway``: the aiohttp application: the page, the WebSocket, the limits.
- ``command``: ``lifenet web``.
"""
