"""The tools around the server: running it locally, watching it, measuring it.

    children   local lifenet child processes: started, waited for, stopped in order
    up         ``lifenet up``, the embedded default: server, workers and bots locally
    view       the live ANSI view of ``lifenet up``
    bench      ``lifenet bench``: the book's approaches, lifenet, snapshots, in one run
    book       the book's approaches to a generation with per-cell I/O (items 56-60)
    loadtest   ``lifenet loadtest``: many bots against one server
"""
