{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# Directories of the hub and the secrets generated on this host (never in pillar or git).
# Root only ever writes into directories that root owns: runtime_dir is root's, the hub's own
# state (database) and the token files live in subdirectories owned by the hub user, which root
# creates but never looks into.
include:
  - jupyterhub.user

jupyterhub-runtime-dir-present:
  file.directory:
    - name: {{ jupyterhub.runtime_dir }}
    - user: root
    - group: root
    - mode: "0755"

# The hub's working directory and database.
jupyterhub-state-dir-present:
  file.directory:
    - name: {{ jupyterhub.state_dir }}
    - user: {{ jupyterhub.user }}
    - group: {{ jupyterhub.group }}
    - mode: "0700"
    - require:
      - file: jupyterhub-runtime-dir-present
      - user: jupyterhub-user-present

# Per-job files carrying the API token to the job (each readable only by its user, via an ACL).
# 0711: nobody else can list it; users only reach their own file by its random name. Must be
# visible at the same path on the execution hosts.
jupyterhub-token-dir-present:
  file.directory:
    - name: {{ jupyterhub.secrets_dir }}
    - user: {{ jupyterhub.user }}
    - group: {{ jupyterhub.group }}
    - mode: "0711"
    - makedirs: true
    - require:
      - file: jupyterhub-runtime-dir-present
      - user: jupyterhub-user-present

jupyterhub-config-dir-present:
  file.directory:
    - name: {{ jupyterhub.config_dir }}
    - user: root
    - group: {{ jupyterhub.group }}
    - mode: "0750"
    - require:
      - group: jupyterhub-group-present

jupyterhub-ssl-dir-present:
  file.directory:
    - name: {{ jupyterhub.config_dir }}/ssl
    - user: root
    - group: root
    - mode: "0755"
    - require:
      - file: jupyterhub-config-dir-present

jupyterhub-lib-dir-present:
  file.directory:
    - name: {{ jupyterhub.lib_dir }}
    - user: root
    - group: root
    - mode: "0755"
    - makedirs: true

# In root's configuration directory: the hub reads it, nobody but root can replace it.
jupyterhub-cookie-secret-generated:
  jupyterhub.secret_present:
    - name: {{ jupyterhub.cookie_secret_file }}
    - user: root
    - group: {{ jupyterhub.group }}
    - mode: "0640"
    - require:
      - file: jupyterhub-config-dir-present

# Read by systemd (as root) for the hub and the proxy units.
jupyterhub-proxy-token-generated:
  jupyterhub.secret_present:
    - name: {{ jupyterhub.config_dir }}/proxy.env
    - template: "CONFIGPROXY_AUTH_TOKEN={secret}\n"
    - user: root
    - group: root
    - mode: "0600"
    - require:
      - file: jupyterhub-config-dir-present

# The Prometheus scraper's token (pillar metrics:enabled); root only: systemd gives the hub a copy.
{%- if jupyterhub.metrics.enabled %}
jupyterhub-metrics-token-generated:
  jupyterhub.secret_present:
    - name: {{ jupyterhub.config_dir }}/metrics-token
    - user: root
    - group: root
    - mode: "0600"
    - require:
      - file: jupyterhub-config-dir-present
{%- else %}
jupyterhub-metrics-token-absent:
  file.absent:
    - name: {{ jupyterhub.config_dir }}/metrics-token
{%- endif %}
