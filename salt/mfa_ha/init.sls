{#- What every node needs, by the role its live server has now (pg_is_in_recovery()).
    Highstate never promotes, demotes, starts or clones PostgreSQL: roles change only through
    the mfa_ha.orch.* orchestrations. A bad pillar fails the render, naming the key. -#}
{%- from "mfa_ha/map.jinja" import mfa_ha with context %}
{%- set nodes = salt['pgrepl.validate_pillar']() %}
{%- set live = salt['pgrepl.status']() %}
{%- set is_primary = live.running and live.role == 'primary' %}
{%- set service = mfa_ha.pmfad.service %}

{%- if live.running %}

replication settings:
  pgrepl.settings:
    - restart: {{ mfa_ha.settings_restart | json }}
{%- else %}

PostgreSQL is {{ live.state }} here:
  test.show_notification:
    - text: >-
        PostgreSQL is {{ live.state }} on {{ grains.id }} ({{ live.data_dir }}): highstate does
        not start or build it; mfa_ha.orch.setup and mfa_ha.orch.rejoin do.
{%- endif %}
{%- if live.state != 'missing' %}

peers in pg_hba.conf:
  pgrepl.hba
{%- endif %}

pgpass for the peers:
  pgrepl.pgpass
{%- if is_primary %}

replication user:
  pgrepl.replication_user
{%- for node_id, node in nodes | dictsort if node_id != grains.id %}

slot for {{ node_id }}:
  pgrepl.slot_present:
    - name: {{ node.slot }}
{%- endfor %}

{{ service }}:
  pmfad.running:
    - require:
      - pgrepl: replication settings
{%- else %}

{{ service }}:
  pmfad.dead
{%- endif %}
