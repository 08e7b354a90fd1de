{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set prefix = jupyterhub.env_prefix %}
# Provider `venv`: a virtual environment of Debian's Python with the pinned hub packages.
jupyterhub-venv-created:
  cmd.run:
    - name: /usr/bin/python3 -m venv {{ prefix }}
    - creates: {{ prefix }}/bin/python

jupyterhub-venv-lock-installed:
  file.managed:
    - name: {{ prefix }}/requirements.lock
    - source: salt://jupyterhub/files/hub-requirements.lock
    - mode: "0644"
    - require:
      - cmd: jupyterhub-venv-created

jupyterhub-venv-checker-installed:
  file.managed:
    - name: {{ prefix }}/check-lock.py
    - source: salt://jupyterhub/files/check-lock.py
    - mode: "0644"
    - require:
      - cmd: jupyterhub-venv-created

jupyterhub-python-env:
  cmd.run:
    - name: {{ prefix }}/bin/python -m pip install --no-input --quiet -r {{ prefix }}/requirements.lock
    - unless: {{ prefix }}/bin/python {{ prefix }}/check-lock.py {{ prefix }}/requirements.lock
    - require:
      - file: jupyterhub-venv-lock-installed
      - file: jupyterhub-venv-checker-installed
