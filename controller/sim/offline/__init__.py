"""The offline simulator: a site (household, PV, chargers, cars, meter) in simulated time,
with the pure core deciding on every meter sample, and an oracle to compare against.
`evfuse simulate` (controller/sim/simulate_cli.py) runs it; docs/simulate.md explains it."""
