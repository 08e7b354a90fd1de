{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set hubs = salt["pillar.get"]("jupyterhub_hubs", None) %}
# Apply on a Grid Engine admin host (e.g. the qmaster), as root: registers the JupyterHub hosts
# that pillar jupyterhub:sge:submit_hosts marks `present` as submit hosts, and removes the ones
# it marks `absent`. Other submit hosts are left alone.
{%- for host, wanted in jupyterhub.sge.submit_hosts | dictsort %}

jupyterhub-sge-submit-host-{{ host }}-{{ wanted }}:
  sge.submit_host_{{ wanted }}:
    - name: {{ host }}
{%- endfor %}
{%- if hubs is not none %}

# With a salt-master: the orchestration (orch.jupyterhub) passes the hub hosts it found by their
# role (pillar `jupyterhub_hubs`); exactly these are the submit hosts it manages, so a host whose
# hub role was removed is deregistered. The record of what it added is kept by root.
jupyterhub-sge-hub-hosts-are-the-managed-submit-hosts:
  sge.submit_hosts_managed:
    - name: /var/lib/salt-jupyterhub/submit-hosts.json
    - hosts: {{ hubs | json }}
{%- endif %}
