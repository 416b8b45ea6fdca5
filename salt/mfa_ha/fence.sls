{#- Run by the salt/minion/<id>/start reactor: a node that is (or would start as) a primary
    while another node is the primary on a later timeline is fenced at once. -#}
fenced unless this node is the current primary:
  pgrepl.fenced
