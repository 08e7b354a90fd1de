{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set prefix = jupyterhub.env_prefix %}
# Provider `venv`: a virtual environment of Debian's Python with the pinned hub packages.
# The lock pins every package with its sha256 hashes: nothing else is installed (--require-hashes)
# and nothing is resolved (--no-deps: the lock is complete) or built (--no-build: wheels only).
# The venv's pip installs the installer, uv, from its own hashed lock; uv installs the hub lock
# (on a fresh test host: pip 40-58 s, uv 24-35 s, 12 s with its download cache filled; pip's
# time is CPU, uv's mostly the download). Root only installs from files that no other
# account can change (trusted_path.checked: the venv and every directory above it); uv runs in /
# so that no project configuration (uv.toml, pyproject.toml) of another directory applies, and
# trusts the system's CA store (--system-certs) as Debian's pip does (a site's TLS proxy).
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

jupyterhub-venv-installer-lock-installed:
  file.managed:
    - name: {{ prefix }}/installer.lock
    - source: salt://jupyterhub/files/hub-installer.lock
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
      - {{ prefix }}/installer.lock
      - {{ prefix }}/check-lock.py
      - {{ prefix }}/bin/python
    - hint: "put the hub env (jupyterhub:env_prefix) under a directory only root can write"
    - require:
      - file: jupyterhub-venv-lock-installed
      - file: jupyterhub-venv-installer-lock-installed
      - file: jupyterhub-venv-checker-installed

jupyterhub-venv-installer-installed:
  cmd.run:
    - name: >-
        {{ prefix }}/bin/python -m pip install --no-input --quiet --require-hashes --no-deps
        --only-binary=:all: -r {{ prefix }}/installer.lock
    - unless: {{ prefix }}/bin/python {{ prefix }}/check-lock.py {{ prefix }}/installer.lock
    - cwd: /
    - require:
      - trusted_path: jupyterhub-venv-files-trusted

# Packages the lock leaves out on purpose (its `# left-out:` lines), removed from an env that an
# older lock installed them into.
jupyterhub-venv-left-out-packages-removed:
  cmd.run:
    - name: {{ prefix }}/bin/python {{ prefix }}/check-lock.py --remove-left-out {{ prefix }}/requirements.lock
    - unless: {{ prefix }}/bin/python {{ prefix }}/check-lock.py --left-out {{ prefix }}/requirements.lock
    - cwd: /
    - require:
      - trusted_path: jupyterhub-venv-files-trusted

jupyterhub-python-env:
  cmd.run:
    - name: >-
        {{ prefix }}/bin/uv pip install --quiet --python {{ prefix }}/bin/python --require-hashes
        --no-deps --no-build --link-mode=copy --compile-bytecode --system-certs
        -r {{ prefix }}/requirements.lock
    - unless: {{ prefix }}/bin/python {{ prefix }}/check-lock.py {{ prefix }}/requirements.lock
    - cwd: /
    - require:
      - cmd: jupyterhub-venv-installer-installed
      - cmd: jupyterhub-venv-left-out-packages-removed
