{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set db = jupyterhub.database %}
# The hub's database: SQLite in the hub's state directory (nothing to do here), or PostgreSQL on
# this host with a generated password that only root (and, through systemd, the hub) can read.
include:
  - jupyterhub.dirs
{%- if db.backend == "postgresql" %}

jupyterhub-postgresql-installed:
  pkg.installed:
    - name: postgresql

jupyterhub-postgresql-running:
  service.running:
    - name: postgresql
    - enable: true
    - require:
      - pkg: jupyterhub-postgresql-installed

jupyterhub-database-password-generated:
  jupyterhub.secret_present:
    - name: {{ jupyterhub.database_password_file }}
    - user: root
    - group: root
    - mode: "0600"
    - require:
      - file: jupyterhub-config-dir-present

jupyterhub-database-present:
  jupyterhub.postgres_database_present:
    - name: {{ db.name }}
    - owner: {{ db.user }}
    - password_file: {{ jupyterhub.database_password_file }}
    - port: {{ db.port }}
    - require:
      - service: jupyterhub-postgresql-running
      - jupyterhub: jupyterhub-database-password-generated
{%- else %}

# pillar authoritative: no PostgreSQL password left behind (the PostgreSQL database itself is
# kept: it may hold the only copy of the hub's state)
jupyterhub-database-password-absent:
  file.absent:
    - name: {{ jupyterhub.database_password_file }}
{%- endif %}
