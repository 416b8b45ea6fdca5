# The example pillar top. The mfa_ha pillar must reach both nodes AND the master's own
# pillar id: the mfa_ha runner and the orchestrations render pillar for the master, whose id
# is "<hostname>_master" unless the master config sets `id:` (then target that id instead).
base:
  'server_prod or server_dr or *_master':
    - match: compound
    - mfa_ha
