{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# systemd units of the proxy and the hub. Each restarts only when its own inputs changed.
include:
  - jupyterhub.packages
  - jupyterhub.user
  - jupyterhub.dirs
  - jupyterhub.sudo
  - jupyterhub.config

jupyterhub-proxy-unit-installed:
  file.managed:
    - name: /etc/systemd/system/jupyterhub-proxy.service
    - source: salt://jupyterhub/files/jupyterhub-proxy.service.j2
    - template: jinja
    - mode: "0644"
    - context:
        settings: {{ jupyterhub | json }}

jupyterhub-unit-installed:
  file.managed:
    - name: /etc/systemd/system/jupyterhub.service
    - source: salt://jupyterhub/files/jupyterhub.service.j2
    - template: jinja
    - mode: "0644"
    - context:
        settings: {{ jupyterhub | json }}

# systemd reads new or changed unit files only on a reload (a unit it once saw missing, e.g. after
# jupyterhub.clean, would otherwise fail to load)
jupyterhub-units-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: jupyterhub-proxy-unit-installed
      - file: jupyterhub-unit-installed

jupyterhub-proxy-running:
  service.running:
    - name: jupyterhub-proxy
    - enable: true
    - watch:
      - file: jupyterhub-proxy-unit-installed
      - jupyterhub: jupyterhub-proxy-token-generated
    - require:
      - cmd: jupyterhub-units-reloaded
      - pkg: jupyterhub-system-packages-installed
      - user: jupyterhub-user-present

jupyterhub-running:
  service.running:
    - name: jupyterhub
    - enable: true
    - watch:
      - file: jupyterhub-unit-installed
      - file: jupyterhub-settings-installed
      - file: jupyterhub-config-installed
      - cmd: jupyterhub-spawner-installed
      - file: jupyterhub-templates-installed
      - file: jupyterhub-config-site-installed
      - file: jupyterhub-sudoers-installed
      - jupyterhub-python-env
      - jupyterhub: jupyterhub-proxy-token-generated
      - jupyterhub: jupyterhub-cookie-secret-generated
{%- if jupyterhub.metrics.enabled %}
      - jupyterhub: jupyterhub-metrics-token-generated
{%- endif %}
{%- if jupyterhub.database.backend == "postgresql" %}
      - jupyterhub: jupyterhub-database-present
{%- endif %}
    - require:
      - cmd: jupyterhub-config-loads
      - service: jupyterhub-proxy-running
      - file: jupyterhub-runtime-dir-present
