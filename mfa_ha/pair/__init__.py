"""The two nodes together: a standby following its primary, switchover, failover, the
divergence a former primary carries, and the connection to the peer."""
