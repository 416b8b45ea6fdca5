{#- Reactor for mfa_ha/switchover/request: the mfa_ha.switchover_request runner accepts it
    only from the master (its single-use token) or from a minion listed in
    mfa_ha:switchover:requesters that confirms the request; then it runs
    mfa_ha.orch.switchover, which re-checks everything before acting. -#}
mfa_ha switchover request:
  runner.mfa_ha.switchover_request:
    - args:
      - data: {{ data | json }}
