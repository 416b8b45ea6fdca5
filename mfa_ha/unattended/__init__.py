"""The opt-in unattended failover: the lease and its arithmetic, the keeper on each node,
its heartbeat, and the master's witness verdict."""
