{#- Make this node a streaming standby of the node `mfa_ha:primary` (used by mfa_ha.orch.*,
    not by highstate): the app stays stopped here, pgpass holds the peers' password, then
    the data directory is cloned, rewound or reconfigured as needed and streaming verified. -#}
{%- from "mfa_ha/map.jinja" import mfa_ha with context %}
{%- do salt['pgrepl.validate_pillar']() %}
{%- set service = mfa_ha.pmfad.service %}

{{ service }} stays stopped on a standby:
  pmfad.dead:
    - name: {{ service }}

pgpass for the peers:
  pgrepl.pgpass

TLS files:
  pgrepl.tls

standby of {{ mfa_ha.primary }}:
  pgrepl.standby:
    - name: {{ mfa_ha.primary | json }}
    - timeout: {{ mfa_ha.standby.timeout | int }}
    - replace_running_primary: {{ mfa_ha.standby.replace_running_primary | json }}
    - require:
      - pmfad: {{ service }} stays stopped on a standby
      - pgrepl: pgpass for the peers
      - pgrepl: TLS files
