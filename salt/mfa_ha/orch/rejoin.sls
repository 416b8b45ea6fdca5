{#- Re-attach a node (a fenced former primary, a stopped or misdirected standby) as a
    streaming standby of the live primary: pg_rewind when its WAL diverged (fresh clone if
    that fails, the old directory moved aside), start, verify streaming, record what was
    done in the master's history (salt-run mfa_ha.history), then the formula.

      salt-run state.orchestrate mfa_ha.orch.rejoin pillar='{"mfa_ha": {"node": "server_prod"}}'

    Without `mfa_ha:node`, every node that is not the primary is re-attached. With two
    primaries (a split brain) it refuses at once, naming both with their timelines and write
    positions; choose the node whose data is kept:

      salt-run state.orchestrate mfa_ha.orch.rejoin pillar='{"mfa_ha": {"keep": "server_prod"}}'

    The other primary is fenced, the transactions it committed after the fork are counted,
    its data directory is moved aside (never deleted) and it is cloned from the kept one. -#}
{%- set mfa = salt['pillar.get']('mfa_ha', {}) %}
{%- set nodes = mfa.get('nodes') or {} %}
{%- set decision = salt['saltutil.runner']('mfa_ha.rejoin_decision', keep=mfa.get('keep'), node=mfa.get('node'),
                                           nodes=nodes) %}
{%- if decision is not mapping or decision.get('action') != 'rejoin' %}

rejoin refused:
  test.fail_without_changes:
    - name: {{ ((decision.get('reason') or decision.get('error')) if decision is mapping else decision) | string | json }}
    - failhard: True
{%- else %}
{%- set primary = decision.primary %}
{%- for node in decision.discard %}

{{ node }} gives up its divergent data:
  salt.function:
    - name: pgrepl.discard_divergent
    - tgt: {{ node | json }}
    - arg:
      - {{ primary | json }}
    - failhard: True
{%- endfor %}
{%- for node in decision.rejoining | sort %}

{{ node }} streams from {{ primary }}:
  salt.state:
    - tgt: {{ node | json }}
    - sls: mfa_ha.standby
    - pillar: {"mfa_ha": {"primary": {{ primary | json }}}}
    - failhard: True
{%- if node in decision.discard %}
    - require:
      - salt: {{ node }} gives up its divergent data
{%- endif %}

{{ node }}'s rejoin is in the history:
  salt.runner:
    - name: mfa_ha.rejoined
    - node: {{ node | json }}
    - primary: {{ primary | json }}
    - since: {{ decision.get('decided_at', 0) | json }}
    - require:
      - salt: {{ node }} streams from {{ primary }}

{{ node }} is configured as a standby:
  salt.state:
    - tgt: {{ node | json }}
    - sls: mfa_ha
    - require:
      - salt: {{ node }} streams from {{ primary }}
{%- endfor %}
{%- endif %}
