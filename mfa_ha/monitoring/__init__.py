"""What the cluster reports: replication health and its transitions (the beacon), alerts
confirmed by their node, the cluster view, and one status computation at a time."""
