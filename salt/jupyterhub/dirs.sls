{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# Directories of the hub and the secrets generated on this host (never in pillar or git).
# 0711: nobody else can list it; users only traverse it to reach their own token file.
jupyterhub-runtime-dir-present:
  file.directory:
    - name: {{ jupyterhub.runtime_dir }}
    - user: {{ jupyterhub.user }}
    - group: {{ jupyterhub.group }}
    - mode: "0711"
    - require:
      - user: jupyterhub-user-present

# Per-job files carrying the API token to the job (each readable only by its user, via an ACL).
# Must be visible at the same path on the execution hosts.
jupyterhub-token-dir-present:
  file.directory:
    - name: {{ jupyterhub.spawner.secrets_dir or jupyterhub.runtime_dir ~ "/secrets" }}
    - user: {{ jupyterhub.user }}
    - group: {{ jupyterhub.group }}
    - mode: "0711"
    - makedirs: true
    - require:
      - file: jupyterhub-runtime-dir-present

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

jupyterhub-cookie-secret-generated:
  jupyterhub.secret_present:
    - name: {{ jupyterhub.runtime_dir }}/jupyterhub_cookie_secret
    - user: {{ jupyterhub.user }}
    - group: {{ jupyterhub.group }}
    - mode: "0600"
    - require:
      - file: jupyterhub-runtime-dir-present

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
