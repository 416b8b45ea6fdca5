{#- Reactor for salt/minion/*/start and salt/beacon/*/pgrepl/heartbeat. The event is
    untrusted: the id must look like a minion id; the mfa_ha.fence_if_stale runner acts only
    for a node of mfa_ha:nodes and asks that node itself (one single-function job per try,
    retried until it answers, bounded). It fences a stale primary that serves no clients, or
    one the operator confirmed lost in a failover (the master's record: how a primary cut
    off during the failover is fenced when its link comes back, without a minion restart),
    naming the writes it took meanwhile as divergent; it alerts when it cannot prove it or
    when the node is in a split brain. A heartbeat asks nothing unless the record names it. -#}
{%- set minion = data.get('id', '') | string %}
{%- set heartbeat = tag.endswith('/pgrepl/heartbeat') %}
{%- if minion | regex_match('^([A-Za-z0-9_.-]{1,128})$') and (not heartbeat or data.get('role') == 'primary') %}
fence {{ minion }} if it is a stale primary:
  runner.mfa_ha.fence_if_stale:
    - args:
      - node: {{ minion | json }}
      - only_if_replaced: {{ heartbeat | json }}
{%- endif %}
