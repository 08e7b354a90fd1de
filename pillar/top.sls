# Pillar profile of this host: grain `jupyterhub_profile` (dev | prod), default dev.
#   salt-call grains.setval jupyterhub_profile prod
{%- set profile = salt["grains.get"]("jupyterhub_profile", "dev") %}
base:
  "*":
    - jupyterhub.{{ profile }}
