"""PostgreSQL on one node: the server and its binaries, replication primitives, settings,
pg_hba, TLS files, secrets, names, and the copies a clone keeps aside."""
