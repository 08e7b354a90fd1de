{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set sge = jupyterhub.sge %}
# A Grid Engine execution host: sge_execd under a systemd unit. The qmaster must list this host
# as an admin host first (jupyterhub.sge.cell does that for cell_setup:exec_hosts); the execd
# then registers itself as an execution host.
include:
  - jupyterhub.sge.client

jupyterhub-sge-execd-unit-installed:
  file.managed:
    - name: /etc/systemd/system/gridengine-exec.service
    - source: salt://jupyterhub/files/sge/gridengine-exec.service.j2
    - template: jinja
    - mode: "0644"
    - context:
        sge: {{ sge | json }}

jupyterhub-sge-execd-units-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: jupyterhub-sge-execd-unit-installed

# Installed after its unit: the package's postinst starts the daemon through it.
jupyterhub-sge-execd-installed:
  pkg.installed:
    - name: gridengine-exec
    - require:
      - debconf: jupyterhub-sge-preseeded
      - cmd: jupyterhub-sge-execd-units-reloaded
      - file: jupyterhub-sge-execd-unit-installed

jupyterhub-sge-execd-running:
  service.running:
    - name: gridengine-exec
    - enable: true
    - require:
      - pkg: jupyterhub-sge-execd-installed
      - file: jupyterhub-sge-act-qmaster-set
    - watch:
      - file: jupyterhub-sge-execd-unit-installed
