{#- Build replication from scratch: the node `mfa_ha:primary` holds the database (the MFA
    install), every other node in `mfa_ha:nodes` becomes its streaming standby.

      salt-run state.orchestrate mfa_ha.orch.setup pillar='{"mfa_ha": {"primary": "server_prod"}}'

    Every step is a state run, so a second run on a working pair reports no changes. The
    pillar is validated on every node before anything changes. -#}
{%- set mfa = salt['pillar.get']('mfa_ha', {}) %}
{%- set nodes = (mfa.get('nodes') or {}) | list | sort %}
{%- set primary = mfa.get('primary') %}
{%- set standbys = nodes | reject('equalto', primary) | list %}
{%- if primary not in nodes or not standbys %}

mfa_ha:primary must name one of two or more mfa_ha:nodes:
  test.fail_without_changes:
    - name: {{ ("mfa_ha:primary: " ~ primary ~ " is not one of mfa_ha:nodes (" ~ nodes | join(", ") ~ ")") | json }}
    - failhard: True
{%- else %}

pillar is valid on every node:
  salt.state:
    - tgt: {{ nodes | json }}
    - tgt_type: list
    - sls: mfa_ha.validate
    - failhard: True

{{ primary }} is configured as the primary:
  salt.state:
    - tgt: {{ primary | json }}
    - sls: mfa_ha
    - pillar: {"mfa_ha": {"settings_restart": true}}
    - failhard: True
    - require:
      - salt: pillar is valid on every node
{%- for node in standbys %}

{{ node }} streams from {{ primary }}:
  salt.state:
    - tgt: {{ node | json }}
    - sls: mfa_ha.standby
    - pillar: {"mfa_ha": {"primary": {{ primary | json }}, "standby": {"replace_running_primary": true}}}
    - failhard: True
    - require:
      - salt: {{ primary }} is configured as the primary

{{ node }} is configured as a standby:
  salt.state:
    - tgt: {{ node | json }}
    - sls: mfa_ha
    - require:
      - salt: {{ node }} streams from {{ primary }}
{%- endfor %}
{%- if (mfa.get('replication') or {}).get('synchronous') not in (None, False, 'off') %}

{#- A primary names its standbys only once they stream (before, every commit would wait). #}
{{ primary }} waits for its standbys' commits:
  salt.state:
    - tgt: {{ primary | json }}
    - sls: mfa_ha
    - require:
{%- for node in standbys %}
      - salt: {{ node }} is configured as a standby
{%- endfor %}
{%- endif %}
{%- endif %}
