"""``python -m server ...`` is ``lifenet ...``: how ``lifenet up`` starts its children."""

from server.cli import main

main()
