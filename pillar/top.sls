base:
  'server_prod or server_dr':
    - match: compound
    - mfa_ha
