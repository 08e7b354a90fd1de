{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# The hub may run exactly qsub, qstat and qdel as ordinary users (never root or system accounts).
# The file is checked with visudo before it is installed. The Runas list is computed when the
# state runs (after packages and users are created), not when the SLS is rendered.
jupyterhub-sudoers-installed:
  file.managed:
    - name: /etc/sudoers.d/jupyterhub
    - source: salt://jupyterhub/files/sudoers.j2
    - template: jinja
    - user: root
    - group: root
    - mode: "0440"
    - check_cmd: /usr/sbin/visudo -cf
    - context:
        hub_user: {{ jupyterhub.user }}
        commands: {{ [jupyterhub.sge.qsub, jupyterhub.sge.qstat, jupyterhub.sge.qdel] | json }}
        runas_group: {{ jupyterhub.sge.sudo_runas_group | json }}
    - require:
      - pkg: jupyterhub-system-packages-installed
      - user: jupyterhub-user-present
      - pkg: jupyterhub-sge-client-installed
