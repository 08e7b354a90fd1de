{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set cfg = jupyterhub.config_dir %}
{#- who is in the allow-list group is the group state's business, not the hub's #}
{%- set settings = {} %}
{%- do settings.update(jupyterhub) %}
{%- do settings.pop("server_users") %}
# JupyterHub's configuration: settings.json (the validated pillar + values computed here) is the
# only site-specific file; jupyterhub_config.py and the spawner glue read it.
jupyterhub-settings-installed:
  file.serialize:
    - name: {{ cfg }}/settings.json
    - dataset: {{ settings | json }}
    - serializer: json
    - serializer_opts:
      - indent: 2
      - sort_keys: true
    - user: root
    - group: {{ jupyterhub.group }}
    - mode: "0640"
    - require:
      - file: jupyterhub-config-dir-present

jupyterhub-config-installed:
  file.managed:
    - name: {{ cfg }}/jupyterhub_config.py
    - source: salt://jupyterhub/files/jupyterhub_config.py
    - user: root
    - group: {{ jupyterhub.group }}
    - mode: "0640"
    - require:
      - file: jupyterhub-config-dir-present

jupyterhub-spawner-module-installed:
  file.managed:
    - name: {{ jupyterhub.lib_dir }}/sgespawner.py
    - source: salt://jupyterhub/files/sgespawner.py
    - mode: "0644"
    - require:
      - file: jupyterhub-lib-dir-present

jupyterhub-templates-installed:
  file.recurse:
    - name: {{ cfg }}/templates
    - source: salt://jupyterhub/files/templates
    - user: root
    - group: {{ jupyterhub.group }}
    - dir_mode: "0750"
    - file_mode: "0640"
    - clean: true
    - require:
      - file: jupyterhub-config-dir-present

# The rendered configuration must load in the hub's own Python before the hub is (re)started.
jupyterhub-config-loads:
  cmd.run:
    - name: >-
        {{ jupyterhub.env_prefix }}/bin/python -c "from traitlets.config.loader import PyFileConfigLoader;
        PyFileConfigLoader('jupyterhub_config.py', '{{ cfg }}').load_config()"
    - runas: {{ jupyterhub.user }}
    - cwd: /
    - onchanges:
      - file: jupyterhub-settings-installed
      - file: jupyterhub-config-installed
      - file: jupyterhub-spawner-module-installed
      - file: jupyterhub-templates-installed
      - cmd: jupyterhub-python-env
    - require:
      - cmd: jupyterhub-python-env
