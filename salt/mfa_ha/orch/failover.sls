{#- Promote `mfa_ha:target` because the primary site is lost.

      salt-run state.orchestrate mfa_ha.orch.failover pillar='{"mfa_ha": {"target": "server_dr"}}'
      # the old primary's minion is unreachable and you know it cannot accept writes:
      salt-run state.orchestrate mfa_ha.orch.failover \
          pillar='{"mfa_ha": {"target": "server_dr", "confirm_primary_lost": true}}'

    Refuses while another node still answers as a primary (a switchover, or a split brain to
    stop first). Every other node whose minion answers is fenced BEFORE the promotion
    (pmfad and PostgreSQL stopped, data directory configured as a standby); a silent one is
    fenced by the salt/minion/<id>/start reactor when it comes back. Then the target replays
    what it received, is promoted, and runs pmfad. `mfa_ha.orch.rejoin` re-attaches the
    others. The witness of an unattended failover adds `lost`: the nodes it measured silent
    for lease + margin, asked once more for 3 s instead of waited for. -#}
{%- set mfa = salt['pillar.get']('mfa_ha', {}) %}
{%- set nodes = mfa.get('nodes') or {} %}
{%- set target = mfa.get('target') %}

{%- set problems = salt['pgrepl.pillar_problems']() %}
{%- if problems %}

mfa_ha pillar is valid:
  test.fail_without_changes:
    - name: {{ ("invalid mfa_ha pillar, nothing done: " ~ problems | join("; ")) | json }}
    - failhard: True
{%- else %}

prechecks:
  salt.runner:
    - name: mfa_ha.failover_precheck
    - target: {{ target | json }}
    - nodes: {{ nodes | json }}
    - confirm_primary_lost: {{ mfa.get('confirm_primary_lost', False) | json }}
    - confirm_data_loss: {{ mfa.get('confirm_data_loss', False) | json }}
    - lost: {{ mfa.get('lost', []) | json }}
    - failhard: True

fence the other nodes:
  salt.runner:
    - name: mfa_ha.fence_others
    - target: {{ target | json }}
    - nodes: {{ nodes | json }}
    - lost: {{ mfa.get('lost', []) | json }}
    - failhard: True
    - require:
      - salt: prechecks

promote {{ target }}:
  salt.function:
    - name: pgrepl.failover
    - tgt: {{ target | json }}
    - failhard: True
    - require:
      - salt: fence the other nodes
{%- endif %}
