{#- What every node needs, by the role its live server has now (pg_is_in_recovery()) and the
    roles its peers answer with. Highstate never promotes, demotes, starts or clones
    PostgreSQL: roles change only through the mfa_ha.orch.* orchestrations. It does point a
    node at the live primary (a stopped node that would start as a primary gets its standby
    configuration), and it starts pmfad only on the one primary the cluster agrees on.
    A bad pillar fails the render, naming the key. -#}
{%- from "mfa_ha/map.jinja" import mfa_ha with context %}
{%- set nodes = salt['pgrepl.validate_pillar']() %}
{%- set live = salt['pgrepl.status']() %}
{%- set view = salt['pgrepl.cluster_view']() if live.state != 'missing' else {'primaries': [], 'peers': {}} %}
{%- set other_primaries = view.primaries | reject('equalto', grains.id) | list %}
{%- set is_primary = live.running and live.role == 'primary' %}
{%- set service = mfa_ha.pmfad.service %}

TLS files:
  pgrepl.tls

copies kept aside:
  pgrepl.kept_aside
{%- if live.running %}

replication settings:
  pgrepl.settings:
    - restart: {{ mfa_ha.settings_restart | json }}
    - require:
      - pgrepl: TLS files
{%- else %}

PostgreSQL is {{ live.state }} here:
  test.show_notification:
    - text: >-
        PostgreSQL is {{ live.state }} on {{ grains.id }} ({{ live.data_dir }}){% if live.state == 'stopped' %}
        and would start as a {{ live.role }}{% endif %}: highstate does not start or build it;
        mfa_ha.orch.setup and mfa_ha.orch.rejoin do.
{%- endif %}
{%- if live.state != 'missing' %}

peers in pg_hba.conf:
  pgrepl.hba:
    - require:
      - pgrepl: TLS files
{%- if live.running %}
      - pgrepl: replication settings
{%- endif %}
{%- endif %}

pgpass for the peers:
  pgrepl.pgpass
{%- if is_primary and other_primaries %}

split brain, {{ service }} not started:
  test.fail_without_changes:
    - name: >-
        SPLIT BRAIN: {{ grains.id }} and {{ other_primaries | join(', ') }} all accept writes. Highstate
        starts {{ service }} on neither and changes no role: choose the node whose data is kept
        (salt-run mfa_ha.status shows both).
{%- elif is_primary %}

replication user:
  pgrepl.replication_user
{%- set existing_slots = (live.get('slots') or []) | map(attribute='slot_name') | list %}
{%- for node_id, node in nodes | dictsort if node_id != grains.id %}
{%- if view.peers.get(node_id) in ('primary', 'standby') or node.slot in existing_slots %}

slot for {{ node_id }}:
  pgrepl.slot_present:
    - name: {{ node.slot }}
{%- else %}

no slot for {{ node_id }} while it does not answer:
  test.show_notification:
    - text: >-
        {{ node_id }} ({{ node.address }}) does not answer as a node of this cluster: no slot is
        created for it (a slot that no standby uses holds WAL); mfa_ha.orch.setup or rejoin
        creates it when the node is made a standby.
{%- endif %}
{%- endfor %}

{{ service }}:
  pmfad.running:
    - require:
      - pgrepl: replication settings
{%- else %}
{%- if other_primaries | length == 1 %}

follows {{ other_primaries[0] }}:
  pgrepl.follows:
    - name: {{ other_primaries[0] | json }}
    - require:
      - pgrepl: pgpass for the peers
{%- endif %}

{{ service }}:
  pmfad.dead
{%- endif %}
{%- set failover = mfa_ha.get('failover') or {} %}

lease keeper config:
  pgrepl.lease_keeper
{%- set paused = salt['pgrepl.paused']() %}
{%- if paused.paused %}

automatic failover paused:
  test.show_notification:
    - text: {{ (paused.summary ~ ' (salt-run mfa_ha.unpause ends it)') | json }}
{%- endif %}
{%- if failover.get('automatic') %}

lease keeper:
  pmfad.running:
    - name: {{ failover.get('service', 'mfahalease') | json }}
    - require:
      - pgrepl: lease keeper config
{%- endif %}
{%- set endpoint = mfa_ha.get('endpoint') or {} %}
{%- set endpoint_config = failover.get('run_dir', '/var/run/mfa_ha') ~ '/endpoint.json' %}
{%- if endpoint.get('enabled') %}

health endpoint config:
  pgrepl.health_endpoint

health endpoint:
  pmfad.running:
    - name: {{ endpoint.get('service', 'mfahahealth') | json }}
    - require:
      - pgrepl: health endpoint config
{%- elif salt['file.file_exists'](endpoint_config) %}

health endpoint:
  pmfad.dead:
    - name: {{ endpoint.get('service', 'mfahahealth') | json }}

health endpoint config:
  pgrepl.health_endpoint:
    - require:
      - pmfad: health endpoint
{%- endif %}
