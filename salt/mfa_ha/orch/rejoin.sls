{#- Re-attach a node (a fenced former primary, a stopped or misdirected standby) as a
    streaming standby of the live primary: pg_rewind when its WAL diverged (fresh clone if
    that fails, the old directory moved aside), start, verify streaming, then the formula.

      salt-run state.orchestrate mfa_ha.orch.rejoin pillar='{"mfa_ha": {"node": "server_prod"}}'

    Without `mfa_ha:node`, every node that is not the primary is re-attached. -#}
{%- set mfa = salt['pillar.get']('mfa_ha', {}) %}
{%- set nodes = mfa.get('nodes') or {} %}
{%- set primary = salt['saltutil.runner']('mfa_ha.primary', nodes=nodes) %}
{%- set rejoining = [mfa.node] if mfa.get('node') else nodes | reject('equalto', primary) | list %}
{%- for node in rejoining | sort %}

{{ node }} streams from {{ primary }}:
  salt.state:
    - tgt: {{ node | json }}
    - sls: mfa_ha.standby
    - pillar: {"mfa_ha": {"primary": {{ primary | json }}}}
    - failhard: True

{{ node }} is configured as a standby:
  salt.state:
    - tgt: {{ node | json }}
    - sls: mfa_ha
    - require:
      - salt: {{ node }} streams from {{ primary }}
{%- endfor %}
