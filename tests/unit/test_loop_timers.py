"""The reactor's timers: a due timer is reached without spinning, and tickers of one
period on the grid share a wake-up (what keeps a worker's CPU per watched run low)."""

import time

import zmq

from cocode.core.loop import Loop


def test_a_timer_is_reached_in_one_or_two_polls_not_by_spinning():
    loop = Loop()
    quiet = zmq.Context.instance().socket(zmq.PAIR)  # a service's loop always polls sockets
    quiet.bind("inproc://loop-timers-quiet")
    loop.add(quiet, lambda: None)
    fired = []
    try:
        for delay in (0.0199, 0.0203, 0.0155):
            fired.clear()
            loop.call_later(delay, lambda: fired.append(time.monotonic()))
            turns = 0
            while not fired:
                loop.run_once(1.0)
                turns += 1
                assert turns < 100, "the loop spun"
            # A truncated timeout polls 19 ms for a 19.9 ms timer, then spins through
            # zero-timeout polls for the rest (dozens of turns); rounded up, one poll.
            assert turns <= 2, f"{turns} turns of the loop for one {delay * 1000:.1f} ms timer"
    finally:
        loop.close()
        quiet.close(0)


def test_grid_timers_set_at_different_moments_fire_in_the_same_turn():
    loop = Loop()
    turns: list[int] = []
    turn = 0
    try:
        period = 0.05
        # Both set within the same period (the second one a little later, as the
        # shipper arms after the worker's tick): they come due together.
        while (time.monotonic() % period) > period / 2:
            time.sleep(0.001)  # pacing: to the first half of a period
        loop.call_on_grid(period, lambda: turns.append(turn))
        time.sleep(0.005)  # pacing: the second ticker arms later in the same period
        loop.call_on_grid(period, lambda: turns.append(turn))
        start = time.monotonic()
        while len(turns) < 2:
            turn += 1
            loop.run_once(1.0)
            assert time.monotonic() - start < 5
        assert turns[0] == turns[1], "two wake-ups for two tickers of one period"
    finally:
        loop.close()
