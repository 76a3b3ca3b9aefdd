"""Pure decisions, no I/O, ``now`` as an argument: windows and buckets, the admission
decision, token estimates, strategies, rate-limit dialects, failover verdicts, speed
averages and quota identity."""
