{#- Reactor for salt/minion/*/start. The event is untrusted: the id must look like a minion
    id; the mfa_ha.fence_if_stale runner acts only for a node of mfa_ha:nodes, asks that node
    itself (one single-function job per try, retried until it answers, bounded), fences it
    only when it is a stale primary serving no clients, and alerts when it cannot prove it or
    when the node is in a split brain. -#}
{%- set minion = data.get('id', '') | string %}
{%- if minion | regex_match('^([A-Za-z0-9_.-]{1,128})$') %}
fence {{ minion }} if it is a stale primary:
  runner.mfa_ha.fence_if_stale:
    - args:
      - node: {{ minion | json }}
{%- endif %}
