{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set sge = jupyterhub.sge %}
{%- set slots = sge.cell_setup.exec_host.slots or grains["num_cpus"] %}
{%- set h_vmem = sge.cell_setup.exec_host.h_vmem or "%dM" | format(grains["mem_total"]) %}
{%- set capacity = ["slots=%s" | format(slots), "h_vmem=%s" | format(h_vmem)] %}
{%- for name, value in sge.cell_setup.exec_host.complex_values | dictsort %}
{%-   do capacity.append("%s=%s" | format(name, value)) %}
{%- endfor %}
# A Grid Engine execution host: sge_execd under a systemd unit. The qmaster must list this host
# as an admin host first (jupyterhub.sge.cell does that for cell_setup:exec_hosts); this host's
# capacity is set from here, and the execd then starts on it.
include:
  - jupyterhub.sge.client

# Consumables measured on this host unless pillar cell_setup:exec_host sets them: its cores and
# its memory (plus pillar's complex_values, e.g. gpu=2). In place before the execd first starts, so no job is ever given more.
jupyterhub-sge-exec-host-capacity-set:
  sge.exec_host_present:
    - name: {{ grains["host"] }}
    - settings:
        complex_values: {{ capacity | join(",") | json }}
    - require:
      - pkg: jupyterhub-sge-client-installed
      - file: jupyterhub-sge-act-qmaster-set

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
      - sge: jupyterhub-sge-exec-host-capacity-set

jupyterhub-sge-execd-running:
  service.running:
    - name: gridengine-exec
    - enable: true
    - require:
      - pkg: jupyterhub-sge-execd-installed
      - file: jupyterhub-sge-act-qmaster-set
    - watch:
      - file: jupyterhub-sge-execd-unit-installed
