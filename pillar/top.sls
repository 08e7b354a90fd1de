# Pillar profile of this host: grain `jupyterhub_profile` = demo (default: a complete
# single-host installation), dev or prod.
#   bin/salt-call grains.setval jupyterhub_profile prod
{%- set profile = salt["grains.get"]("jupyterhub_profile", "demo") %}
base:
  "*":
    - jupyterhub.{{ profile }}
