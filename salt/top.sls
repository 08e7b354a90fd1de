# Masterless default. Profile demo (grain jupyterhub_profile unset or "demo"): a Grid Engine cell
# on this host plus the hub role, i.e. a complete single-host installation. dev/prod: the hub role
# for a site's existing cell. On a salt-master, write your own top file.
{%- set profile = salt["grains.get"]("jupyterhub_profile", "demo") %}
base:
  "*":
{%- if profile == "demo" %}
    - jupyterhub.sge.cell
    - jupyterhub.sge.local_submit_host
{%- endif %}
    - jupyterhub
