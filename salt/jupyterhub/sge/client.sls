{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set sge = jupyterhub.sge %}
{#- the name Grid Engine resolves it to (the FQDN where there is one): what sge_qmaster itself
    writes into act_qmaster when it starts #}
{%- set qmaster = salt["jupyterhub.sge_qmaster"](sge.qmaster or grains["host"]).name %}
# Grid Engine client on any host that submits jobs (the hub). Debian's gridengine-* packages ask
# three debconf questions; the qmaster host has no default (without it act_qmaster stays empty and
# every client fails), so answer them before installing.
jupyterhub-sge-debconf-utils-installed:
  pkg.installed:
    - name: debconf-utils

jupyterhub-sge-preseeded:
  debconf.set:
    - name: gridengine-common
    - data:
        shared/gridengineconfig: {type: boolean, value: true}
        shared/gridenginecell: {type: string, value: {{ sge.cell | json }}}
        shared/gridenginemaster: {type: string, value: {{ qmaster | json }}}
    - require:
      - pkg: jupyterhub-sge-debconf-utils-installed

jupyterhub-sge-client-installed:
  pkg.installed:
    - name: gridengine-client
    # loads the sge execution and state modules, which need qconf
    - reload_modules: true
    - require:
      - debconf: jupyterhub-sge-preseeded

# The preseed only counts at the first install; this keeps the qmaster name right afterwards.
jupyterhub-sge-act-qmaster-set:
  file.managed:
    - name: {{ sge.root }}/{{ sge.cell }}/common/act_qmaster
    - contents: {{ qmaster | json }}
    - user: sgeadmin
    - group: sgeadmin
    - mode: "0644"
    - makedirs: true
    # the cell's folder belongs to sgeadmin (the daemons' account): never write through a link
    - follow_symlinks: false
    - require:
      - pkg: jupyterhub-sge-client-installed
