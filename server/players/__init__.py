"""The players' rooms: their endpoint, their sessions and their part of a generation.

    lobby      the player endpoint (a ROUTER socket and its thread): requests in, replies
               and pushes out
    registry   sessions, energy, queued placements, posted decisions (one lock)
    decisions  the decision round of a generation: game_logic requests out, answers
               checked against the rule's verdict
    placing    what a PLACE asks for, checked: the pattern, turned, on the torus
    board      the scoreboard: live cells per owner
    shields    a fresh placement's zone evolves as if alone for --protect generations
    rounds     the goal and its scoring (--round): points, the winner, the last results
"""
