"""How the service runs Python's cyclic garbage collector: tuned for a control loop.

A decision builds tens of thousands of small tuples (a thousand loads' draws, memories and
decisions) that reference counting frees as soon as the next decision replaces them; none
of them is part of a cycle. With the interpreter's defaults (a young collection every 700
allocations) the collector ran 7-9 times inside every decision at 1000 chargers and, about
one decision in fifteen, a full collection over every live object: the decision's slowest
samples were the collector's (benchmarks/bench_core.py). What exists once the service is up
lives as long as the process and is frozen out of the collector; young collections run
every 50,000 allocations, a few times a second at most, and bound what a cycle can hold
(a few MB at worst, on a Pi with 1 GB or more)."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000  # allocations between young collections (the interpreter's default: 700)


def settle() -> None:
    """Call once the long-lived objects exist (service started, site loaded): collect, freeze
    what is left, and collect young objects only every YOUNG_THRESHOLD allocations."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
