# One state tree for many hosts. A host's roles come from pillar `roles` (a list; on a
# salt-master set it in the host's pillar file, pillar/top.sls), else from its masterless profile
# (grain jupyterhub_profile, bin/setup --profile): demo = sge-cell + jupyterhub-hub (a complete
# single-host installation), dev/prod and others = jupyterhub-hub. Without either, no role.
#   jupyterhub-hub  the hub (jupyterhub)
#   sge-cell        a Grid Engine cell on this host, its qmaster (jupyterhub.sge.cell); with
#                   jupyterhub-hub on the same host, the host is its own submit host
#   sge-admin       an admin host of the site's cell: registers the hubs as submit hosts
#                   (jupyterhub.sge.submit_hosts; the hub list comes from orch.jupyterhub)
#   cluster-env     a host that mounts the cluster's shared filesystem: the worker env there
#                   (jupyterhub.cluster_env)
{%- set known = ["jupyterhub-hub", "sge-cell", "sge-admin", "cluster-env"] %}
{%- set profile = salt["grains.get"]("jupyterhub_profile", opts.get("jupyterhub_default_profile", "")) %}
{%- set by_profile = ["sge-cell", "jupyterhub-hub"] if profile == "demo" else (["jupyterhub-hub"] if profile else []) %}
{%- set roles = salt["pillar.get"]("roles", by_profile) %}
{#- a bad `roles` cannot raise here (Salt only logs a top file's render error and then finds no
    states): it becomes an SLS name that cannot exist, so the run fails with this message #}
{%- set problems = [] %}
{%- if roles is string or roles is mapping or roles is not iterable %}
{%-   do problems.append("pillar roles: a list of roles, e.g. [jupyterhub-hub], not " ~ roles | json) %}
{%-   set roles = [] %}
{%- endif %}
{%- for role in roles if role not in known %}
{%-   do problems.append("pillar roles: unknown role " ~ role | json ~ " (known: " ~ known | join(", ") ~ ")") %}
{%- endfor %}
{%- set sls = problems[:] %}
{%- if "sge-cell" in roles %}
{%-   do sls.append("jupyterhub.sge.cell") %}
{%-   if "jupyterhub-hub" in roles %}
{%-     do sls.append("jupyterhub.sge.local_submit_host") %}
{%-   endif %}
{%- endif %}
{%- if "sge-admin" in roles %}
{%-   do sls.append("jupyterhub.sge.submit_hosts") %}
{%- endif %}
{%- if "cluster-env" in roles %}
{%-   do sls.append("jupyterhub.cluster_env") %}
{%- endif %}
{%- if "jupyterhub-hub" in roles %}
{%-   do sls.append("jupyterhub") %}
{%- endif %}
base:
{%- if sls %}
  "*": {{ sls | json }}
{%- else %}
  {}
{%- endif %}
