{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set clean = jupyterhub.clean %}
# Removes what the hub role (jupyterhub) installed: its services and units, the nginx site, the
# sudo rules, the update timer and its scripts, the configuration directory (settings, secrets,
# TLS key), the spawner source and the token files. Kept: users' homes, the hub and allow-list
# accounts and groups, the system packages, and (unless pillar clean:remove_database) the hub's
# database; the Python env is removed unless clean:remove_env is false. The Grid Engine states
# (jupyterhub.sge.*) have no clean state: a cell holds the cluster's configuration and jobs.
jupyterhub-clean-services-dead:
  service.dead:
    - names:
      - jupyterhub
      - jupyterhub-proxy
      - jupyterhub-env-update.timer
    - enable: false

jupyterhub-clean-files-absent:
  file.absent:
    - names:
      - /etc/systemd/system/jupyterhub.service
      - /etc/systemd/system/jupyterhub-proxy.service
      - /etc/systemd/system/jupyterhub-env-update.service
      - /etc/systemd/system/jupyterhub-env-update.timer
      - /etc/nginx/sites-enabled/jupyterhub.conf
      - /etc/nginx/sites-available/jupyterhub.conf
      - /etc/sudoers.d/jupyterhub
      - /etc/sudoers.d/jupyterhub.env
      - /usr/local/sbin/jupyterhub-env-update
      - /usr/local/sbin/jupyterhub-trust-check
      - /etc/systemd/journald.conf.d/50-jupyterhub.conf
      - {{ jupyterhub.config_dir }}
      - {{ jupyterhub.spawner_src }}
      - {{ jupyterhub.secrets_dir }}
{%- if clean.remove_database %}
      - {{ jupyterhub.state_dir }}
{%- endif %}
{%- if clean.remove_env %}
      - {{ jupyterhub.env_prefix }}
{%- endif %}
    - require:
      - service: jupyterhub-clean-services-dead

jupyterhub-clean-units-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: jupyterhub-clean-files-absent

# nginx (if it runs) stops serving the hub's site
jupyterhub-clean-nginx-reloaded:
  cmd.run:
    - name: systemctl try-reload-or-restart nginx
    - onlyif: test -x /usr/sbin/nginx
    - onchanges:
      - file: jupyterhub-clean-files-absent
