{#- Move the primary role to `mfa_ha:target` with zero data loss, or refuse touching nothing.

      salt-run state.orchestrate mfa_ha.orch.switchover pillar='{"mfa_ha": {"target": "server_dr"}}'

    1. prechecks (master side, one job to every node): every node answers, exactly one
       primary, the target streams from it through its slot with lag under
       mfa_ha:switchover:max_lag_bytes, pg_rewind possible on the old primary. With
       synchronous "on", the old primary is then recorded on the master as not promotable
       (refused if it cannot be), so the new primary's commits need not wait for its re-attach.
    2. the switch: ONE job to every node, each running its own part at once
       (pgrepl.switchover): the old primary stops pmfad and PostgreSQL cleanly and waits; the
       target proves it holds the old primary's shutdown checkpoint, promotes, creates the
       slots, moves client routing (mfa_ha:service_address) and starts pmfad; the old
       primary then re-attaches as a standby (pg_rewind only if needed) and streams.
    Re-running after a partial failure converges: a target that is already the primary only
    finishes the re-attach of the others; when the target failed before it became a primary
    and the old primary is cleanly stopped, the old primary comes back (mfa_ha.resume) and
    the orchestration reports the switch as not done. -#}
{%- set mfa = salt['pillar.get']('mfa_ha', {}) %}
{%- set nodes = mfa.get('nodes') or {} %}
{%- set target = mfa.get('target') %}
{%- set settings = mfa.get('switchover') or {} %}

{%- set problems = salt['pgrepl.pillar_problems']() %}
{%- if problems %}

mfa_ha pillar is valid:
  test.fail_without_changes:
    - name: {{ ("invalid mfa_ha pillar, nothing done: " ~ problems | join("; ")) | json }}
    - failhard: True
{%- else %}
{%- set sync_on = salt['pgrepl.synchronous_mode']() == 'on' %}

prechecks:
  salt.runner:
    - name: mfa_ha.precheck
    - target: {{ target | json }}
    - nodes: {{ nodes | json }}
    - max_lag_bytes: {{ settings.get('max_lag_bytes') | json }}  {#- null: the runner's default #}
    - record_old_primary: True

{#- Only when the prechecks refuse: a switch whose target failed after the old primary had
    stopped cleanly left no primary; the old primary comes back (the runner re-checks). #}
the old primary serves again if the last switch failed:
  salt.runner:
    - name: mfa_ha.resume
    - target: {{ target | json }}
    - nodes: {{ nodes | json }}
    - onfail:
      - salt: prechecks

switch:
  salt.function:
    - name: pgrepl.switchover
    - tgt: {{ nodes | list | sort | json }}
    - tgt_type: list
    - arg:
      - {{ target | json }}
    - kwarg:
        drop_synchronous: {{ sync_on | json }}  {#- the prechecks recorded the old primary first #}
    - expect_minions: True
    - timeout: {{ settings.get('job_timeout') or salt['pgrepl.switch_job_seconds'](settings.get('timeout')) }}
    - failhard: True
    - require:
      - salt: prechecks
{%- endif %}
