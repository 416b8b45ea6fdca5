{#- Fails, naming every bad key, when the mfa_ha pillar is missing or malformed. #}
mfa_ha pillar:
  pgrepl.pillar_valid
