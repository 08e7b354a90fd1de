{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# The unprivileged account the hub and its proxy run as.
jupyterhub-group-present:
  group.present:
    - name: {{ jupyterhub.group }}
    - system: true

jupyterhub-user-present:
  user.present:
    - name: {{ jupyterhub.user }}
    - gid: {{ jupyterhub.group }}
    - groups: {{ jupyterhub.hub.extra_groups | json }}
    - home: {{ jupyterhub.runtime_dir }}
    - createhome: false
    - shell: /usr/sbin/nologin
    - system: true
    - require:
      - group: jupyterhub-group-present
