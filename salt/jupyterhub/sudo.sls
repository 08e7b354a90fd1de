{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# The hub may run exactly qsub and qdel, as members of the allow-list group only (never root,
# system or privileged accounts). The file is checked with visudo before it is installed. The
# Runas list is computed when the state runs (after packages, users and the group exist), not
# when the SLS is rendered. Grid Engine's environment comes from a root-owned file, not from the
# hub: a compromised hub cannot point qsub at another cell configuration.
include:
  - jupyterhub.packages
  - jupyterhub.sge.client
  - jupyterhub.user
  - jupyterhub.access

jupyterhub-sudo-sge-env-installed:
  file.managed:
    - name: /etc/sudoers.d/jupyterhub.env
    - contents: |
        SGE_ROOT={{ jupyterhub.sge.root }}
        SGE_CELL={{ jupyterhub.sge.cell }}
    - user: root
    - group: root
    - mode: "0644"

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
        commands: {{ [jupyterhub.sge.qsub, jupyterhub.sge.qdel] | json }}
        access: {{ jupyterhub.access | json }}
        env_file: /etc/sudoers.d/jupyterhub.env
        command_timeout: {{ jupyterhub.sge.command_timeout }}
    - require:
      - pkg: jupyterhub-system-packages-installed
      - user: jupyterhub-user-present
      - pkg: jupyterhub-sge-client-installed
      - jupyterhub: jupyterhub-users-group-present
      - file: jupyterhub-sudo-sge-env-installed
