{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set sge = jupyterhub.sge %}
{%- set setup = sge.cell_setup %}
{%- set qmaster = sge.qmaster or grains["host"] %}
{%- set exec_hosts = setup.exec_hosts or [qmaster] %}
{%- set host_aliases = salt["jupyterhub.sge_qmaster"](qmaster).host_aliases %}
# A complete Grid Engine cell from Debian's packages, applied on the qmaster host: sge_qmaster
# (and sge_execd when the qmaster is one of the execution hosts) under systemd units, the host
# group, parallel environments and queues from pillar, a scheduler tuned for fast interactive
# starts and prompt accounting. Other execution hosts apply jupyterhub.sge.execd.
include:
  - jupyterhub.sge.client
{%- if qmaster in exec_hosts %}
  - jupyterhub.sge.execd
{%- endif %}

jupyterhub-sge-qmaster-unit-installed:
  file.managed:
    - name: /etc/systemd/system/gridengine-master.service
    - source: salt://jupyterhub/files/sge/gridengine-master.service.j2
    - template: jinja
    - mode: "0644"
    - context:
        sge: {{ sge | json }}
        # qmaster_spool_dir of Debian's cell (common/bootstrap)
        qmaster_spool_dir: /var/spool/gridengine/qmaster

jupyterhub-sge-qmaster-unit-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: jupyterhub-sge-qmaster-unit-installed

{%- if host_aliases %}

# This host's name resolves to a loopback address (127.0.1.1 from the Debian installer or a cloud
# image): local clients reach the qmaster from 127.0.0.1, "localhost" to Grid Engine, and are
# refused unless localhost is an alias of this host. Written before the qmaster first starts (it
# reads the file at start; the postinst below starts it).
jupyterhub-sge-loopback-name-aliased:
  file.managed:
    - name: {{ sge.root }}/{{ sge.cell }}/common/host_aliases
    - contents: {{ host_aliases | json }}
    - user: sgeadmin
    - group: sgeadmin
    - mode: "0644"
    # the cell's folder belongs to sgeadmin (the daemons' account): never write through a link
    - follow_symlinks: false
    - require:
      - pkg: jupyterhub-sge-client-installed
{%- endif %}

# Installed after its unit: the postinst creates the cell and starts the qmaster through it.
jupyterhub-sge-qmaster-installed:
  pkg.installed:
    - name: gridengine-master
    - require:
      - debconf: jupyterhub-sge-preseeded
      - cmd: jupyterhub-sge-qmaster-unit-reloaded
      - file: jupyterhub-sge-qmaster-unit-installed
{%- if host_aliases %}
      - file: jupyterhub-sge-loopback-name-aliased
{%- endif %}

jupyterhub-sge-qmaster-running:
  service.running:
    - name: gridengine-master
    - enable: true
    - require:
      - pkg: jupyterhub-sge-qmaster-installed
      - file: jupyterhub-sge-act-qmaster-set
    - watch:
      - file: jupyterhub-sge-qmaster-unit-installed
{%- if qmaster in exec_hosts %}
    # the execd's package starts it, and it needs a running qmaster that knows this host
    - require_in:
      - sge: jupyterhub-sge-exec-host-capacity-set
      - pkg: jupyterhub-sge-execd-installed
{%- endif %}

{#- An execd registers its host as an execution host by itself when the host is an admin host. #}
{%- for host in exec_hosts %}

jupyterhub-sge-exec-host-{{ host }}-is-admin-host:
  sge.admin_host_present:
    - name: {{ host }}
    - require:
      - service: jupyterhub-sge-qmaster-running
{%- endfor %}

jupyterhub-sge-hostgroup-configured:
  sge.hostgroup_present:
    - name: {{ setup.hostgroup | json }}
    - hosts: {{ exec_hosts | json }}
    - require:
      - service: jupyterhub-sge-qmaster-running

{%- for pe, settings in setup.pes | dictsort %}

jupyterhub-sge-pe-{{ pe }}-configured:
  sge.pe_present:
    - name: {{ pe }}
    - settings: {{ settings | json }}
    - require:
      - service: jupyterhub-sge-qmaster-running
{%- endfor %}

{%- for project, settings in setup.projects | dictsort %}

jupyterhub-sge-project-{{ project }}-configured:
  sge.project_present:
    - name: {{ project }}
    - settings: {{ settings | json }}
    - require:
      - service: jupyterhub-sge-qmaster-running
{%- endfor %}

{%- for complex, settings in setup.complexes | dictsort %}

jupyterhub-sge-complex-{{ complex }}-configured:
  sge.complex_present:
    - name: {{ complex }}
    - settings: {{ settings | json }}
    - require:
      - service: jupyterhub-sge-qmaster-running
  {%- if qmaster in exec_hosts %}
    # before this host offers its capacity
    - require_in:
      - sge: jupyterhub-sge-exec-host-capacity-set
  {%- endif %}
{%- endfor %}

{%- for queue, settings in setup.queues | dictsort %}

jupyterhub-sge-queue-{{ queue }}-configured:
  sge.queue_present:
    - name: {{ queue }}
    - settings: {{ settings | json }}
    - require:
      - sge: jupyterhub-sge-hostgroup-configured
  {%- for pe in setup.pes | sort %}
      - sge: jupyterhub-sge-pe-{{ pe }}-configured
  {%- endfor %}
{%- endfor %}

jupyterhub-sge-scheduler-configured:
  sge.scheduler_configured:
    - settings: {{ setup.scheduler | json }}
    - require:
      - service: jupyterhub-sge-qmaster-running

jupyterhub-sge-global-config-configured:
  sge.config_present:
    - name: global
    - settings: {{ setup.global_config | json }}
    - require:
      - service: jupyterhub-sge-qmaster-running
