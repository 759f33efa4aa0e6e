"""evfuse: fail-safe load management for EV chargers behind one main fuse."""
