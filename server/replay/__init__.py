"""The replay log: a hash-chained record of every generation, and its replay.

``inputs``  what changed a generation beyond the rule, and how a replay applies it
``log``     the file: framing, world hashes, the ``Recorder`` the server appends with
``play``    ``replay``: every generation recomputed with the local kernel and checked
"""
