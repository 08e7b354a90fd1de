{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set cfg = jupyterhub.config_dir %}
{#- who is in the allow-list group is the group state's business, not the hub's #}
{%- set settings = {} %}
{%- do settings.update(jupyterhub) %}
{%- do settings.pop("server_users") %}
include:
  - jupyterhub.dirs
  - jupyterhub.env

# JupyterHub's configuration: settings.json (the validated pillar + values computed here) is the
# only site-specific file; jupyterhub_config.py and the spawner glue read it.
jupyterhub-settings-installed:
  file.serialize:
    - name: {{ jupyterhub.settings_file }}
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

# The spawner is a Python package (salt://jupyterhub/files/sgespawner, entry point "sge"): its
# source is copied to a root-owned directory and pip-installed into the hub env from there,
# offline and without build dependencies (its build backend is part of the source). The env's
# other packages stay exactly those of the hash-locked lock.
jupyterhub-spawner-source-installed:
  file.recurse:
    - name: {{ jupyterhub.spawner_src }}
    - source: salt://jupyterhub/files/sgespawner
    - user: root
    - group: root
    - dir_mode: "0755"
    - file_mode: "0644"
    - clean: true
    # bytecode a test run left in a checkout is not part of the source
    - exclude_pat: E@__pycache__
    - require:
      - file: jupyterhub-lib-dir-present

jupyterhub-spawner-source-trusted:
  trusted_path.checked:
    - name: {{ jupyterhub.spawner_src }}
    - recurse: true
    - hint: "put jupyterhub:lib_dir under a directory only root can write"
    - require:
      - file: jupyterhub-spawner-source-installed

jupyterhub-spawner-installed:
  cmd.run:
    - name: >-
        {{ jupyterhub.env_prefix }}/bin/python -m pip install --no-input --quiet --no-deps
        --no-index --no-build-isolation --force-reinstall {{ jupyterhub.spawner_src }}
    - unless: {{ jupyterhub.env_prefix }}/bin/python -I {{ jupyterhub.spawner_src }}/_build/backend.py --installed
    - cwd: /
    - env:
      - PYTHONDONTWRITEBYTECODE: "1"
    - require:
      - jupyterhub-python-env
      - trusted_path: jupyterhub-spawner-source-trusted

# The page templates, the form and the job script: a site's own file (salt://jupyterhub_site/...,
# in any file root; see docs/ARCHITECTURE.md "Site overrides") replaces the formula's.
jupyterhub-templates-dir-present:
  file.directory:
    - name: {{ jupyterhub.templates_dir }}
    - user: root
    - group: {{ jupyterhub.group }}
    - mode: "0750"
    - require:
      - file: jupyterhub-config-dir-present

jupyterhub-templates-installed:
  file.managed:
    - names:
{%- for name in ["home.html", "spawn.html", "sgespawner-form.html", "sgespawner-job.sh.j2"] %}
      - {{ jupyterhub.templates_dir }}/{{ name }}:
        - source:
          - salt://jupyterhub_site/templates/{{ name }}
          - salt://jupyterhub/files/templates/{{ name }}
{%- endfor %}
    - user: root
    - group: {{ jupyterhub.group }}
    - mode: "0640"
    - require:
      - file: jupyterhub-templates-dir-present

# Site additions to jupyterhub_config.py, loaded at its end (the formula's own is empty).
jupyterhub-config-site-installed:
  file.managed:
    - name: {{ cfg }}/jupyterhub_config_site.py
    - source:
      - salt://jupyterhub_site/jupyterhub_config_site.py
      - salt://jupyterhub/files/jupyterhub_config_site.py
    - user: root
    - group: {{ jupyterhub.group }}
    - mode: "0640"
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
      - cmd: jupyterhub-spawner-installed
      - file: jupyterhub-templates-installed
      - file: jupyterhub-config-site-installed
      - jupyterhub-python-env
    - require:
      - cmd: jupyterhub-spawner-installed
