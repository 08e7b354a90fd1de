{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set access = jupyterhub.access %}
# Who may get Jupyter servers: the allow-list group (the sudo rule's Runas list) and, in the
# single-host demo, a login account with a generated password.
{%- if jupyterhub.demo_account %}
include:
  - jupyterhub.dirs

jupyterhub-demo-account-present:
  user.present:
    - name: {{ jupyterhub.demo_account }}
    - shell: /bin/bash
    - createhome: true
    - usergroup: true

jupyterhub-demo-account-password-generated:
  jupyterhub.account_password_generated:
    - name: {{ jupyterhub.demo_account }}
    - password_file: {{ jupyterhub.config_dir }}/demo-password
    - require:
      - user: jupyterhub-demo-account-present
      - file: jupyterhub-config-dir-present
    - require_in:
      - jupyterhub: jupyterhub-users-group-present
{%- endif %}

jupyterhub-users-group-present:
  jupyterhub.server_group_present:
    - name: {{ access.group }}
{%- if access.manage_members %}
    - members: {{ jupyterhub.server_users | json }}
{%- endif %}
    - privileged_groups: {{ access.privileged_groups | json }}
    - min_uid: {{ access.min_uid }}
