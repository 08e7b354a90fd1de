{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set prefix = jupyterhub.env_prefix %}
# Provider `venv`: a virtual environment of Debian's Python with the pinned hub packages.
# The lock pins every package with its sha256 hashes: pip installs nothing else (--require-hashes)
# and resolves nothing (--no-deps: the lock is complete). Root only installs from files that no
# other account can change (trusted_path.checked: the venv and every directory above it).
include:
  - jupyterhub.packages

jupyterhub-venv-created:
  cmd.run:
    - name: /usr/bin/python3 -m venv {{ prefix }}
    - creates: {{ prefix }}/bin/python
    - require:
      - pkg: jupyterhub-system-packages-installed

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

jupyterhub-venv-files-trusted:
  trusted_path.checked:
    - names:
      - {{ prefix }}/requirements.lock
      - {{ prefix }}/check-lock.py
      - {{ prefix }}/bin/python
    - hint: "put the hub env (jupyterhub:env_prefix) under a directory only root can write"
    - require:
      - file: jupyterhub-venv-lock-installed
      - file: jupyterhub-venv-checker-installed

jupyterhub-python-env:
  cmd.run:
    - name: {{ prefix }}/bin/python -m pip install --no-input --quiet --require-hashes --no-deps -r {{ prefix }}/requirements.lock
    - unless: {{ prefix }}/bin/python {{ prefix }}/check-lock.py {{ prefix }}/requirements.lock
    - require:
      - trusted_path: jupyterhub-venv-files-trusted
