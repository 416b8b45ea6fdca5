{#- Reactor for salt/minion/*/start. The event is untrusted: the id must look like a minion
    id, the target must be that minion AND a node of mfa_ha:nodes in its own pillar, and the
    fence state re-measures everything before it acts. -#}
{%- set minion = data.get('id', '') | string %}
{%- if minion | regex_match('^([A-Za-z0-9_.-]{1,128})$') %}
fence {{ minion }} if it is a stale primary:
  local.state.apply:
    - tgt: {{ (minion ~ ' and I@mfa_ha:nodes:' ~ minion ~ ':address:*') | json }}
    - tgt_type: compound
    - args:
      - mods: mfa_ha.fence
{%- endif %}
