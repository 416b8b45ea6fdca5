# The seed's topology (IBM PowerSC MFA, two data centres joined by IP).
mfa_ha:
  nodes:
    server_prod:
      address: 192.168.1.1
    server_dr:
      address: 192.169.1.2
  primary: server_prod          # used by mfa_ha.orch.setup only; live servers decide roles
  postgres:
    data_dir: /opt/IBM/powersc/MFA/mfadb
    port: 5432
    os_user: postgres
  replication:
    user: replicamfa
    connection_limit: 5
    # Placeholder. Keep the real password in an encrypted pillar (Salt's GPG renderer:
    # '#!yaml|gpg' and an armored block here), never in clear text in a repository.
    password: CHANGE-ME
  pmfad:
    service: pmfad              # SRC on AIX, systemd elsewhere (manager: src|systemd)
  hba:
    method: scram-sha-256       # 'trust' for a non-local address is refused unless allow_trust: true
  switchover:
    max_lag_bytes: 16777216     # refuse a switchover to a standby further behind than this
    timeout: 30                 # seconds each node waits inside the switch
    requesters: []              # minion ids allowed to request a switchover by event
  service_address: none         # or {acquire: "cmd {node}", release: "cmd {node}"}
  alerts:
    targets:
      - command: ["logger", "-t", "mfa-ha"]    # the one-line summary arrives on stdin
