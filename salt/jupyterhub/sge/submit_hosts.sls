{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# Apply on a Grid Engine admin host (e.g. the qmaster), as root: registers the JupyterHub hosts
# that pillar jupyterhub:sge:submit_hosts marks `present` as submit hosts, and removes the ones
# it marks `absent`. Other submit hosts are left alone.
{%- for host, wanted in jupyterhub.sge.submit_hosts | dictsort %}

jupyterhub-sge-submit-host-{{ host }}-{{ wanted }}:
  sge.submit_host_{{ wanted }}:
    - name: {{ host }}
{%- endfor %}
