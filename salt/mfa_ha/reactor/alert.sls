{#- Reactor for salt/beacon/*/pgrepl/*/*: hand the event to the mfa_ha.alert runner, which
    treats it as untrusted (only ids of mfa_ha:nodes, numbers cast, the condition confirmed
    by the named minion itself before anything is sent). Heartbeats are not alerts. -#}
{%- if tag | regex_match('^salt/beacon/([A-Za-z0-9_.-]+)/pgrepl/(lag|receiver|role|slot|server|pause)/(alert|ok|down|up|changed)$') %}
mfa_ha alert for {{ tag | json }}:
  runner.mfa_ha.alert:
    - args:
      - tag: {{ tag | json }}
      - data: {{ data | json }}
{%- endif %}
