# IBM PowerSC MFA's topology: two data centres joined by IP.
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
    foreign: repair             # lines above the mfa-ha block / remote 'trust' lines: repair | report
  tls:                          # on by default between hosts (enabled: auto | true | false)
    mode: verify-full           # peers check each other's certificate AND address (or verify-ca)
    # dir: /opt/IBM/powersc/MFA/mfa_ha-tls   (the default: beside the data directory)
    ca: |                       # the CA that signed every node's certificate (shared)
      -----BEGIN CERTIFICATE-----
      (your CA certificate)
      -----END CERTIFICATE-----
    # cert: and key: are per node: put them in a pillar file targeted at that minion only
    # (see top.sls), the key encrypted with Salt's GPG renderer, or as key: sdb://<profile>/<name>.
    # Each node's certificate must name its address (subjectAltName) for verify-full.
  switchover:
    max_lag_bytes: 16777216     # refuse a switchover to a standby further behind than this
    timeout: 30                 # seconds each node waits inside the switch
    requesters: []              # minion ids allowed to request a switchover by event
  failover:                     # unattended failover (docs/runbook.md, "Unattended failover"); off by default
    automatic: false            # true: the master's mfa_ha_witness engine fails over, each primary's
                                # lease keeper (service mfahalease) fences it when isolated
    lease_seconds: 30           # an isolated primary fences itself after this long
    margin_seconds: 35          # the witness waits lease + margin (must exceed 1 s poll + 20 s fence + 10 s watchdog)
    heartbeat_port: 5434        # UDP between the two nodes' keepers (open it between the data centres)
    # run_dir: /var/lib/mfa_ha  # the keeper's config, heartbeat and the master's renewals
  service_address: none         # or {acquire: "cmd {node}", release: "cmd {node}"}
  alerts:
    targets:
      - command: ["logger", "-t", "mfa-ha"]    # the one-line summary arrives on stdin
