{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set timer = jupyterhub.update_timer %}
# A timer that checks the hub environment against the reviewed lock in this state tree: it logs
# what an update would change and applies it only when update_timer:unattended is true. Nothing
# is ever upgraded beyond the lock.
# The script runs salt-call as root from this checkout / Salt venv: salt_call_command refuses
# (render error naming the path) unless only root can change them, and the script checks them
# again with jupyterhub-trust-check (system Python, nothing imported from the checked paths)
# before every run. Disabled (update_timer:enabled false, e.g. a salt-ssh host without Salt):
# timer, units and scripts are removed.
{%- if timer.enabled %}
jupyterhub-env-update-trust-check-installed:
  file.managed:
    - name: /usr/local/sbin/jupyterhub-trust-check
    - source: salt://_modules/trusted_path.py
    - mode: "0755"

jupyterhub-env-update-script-installed:
  file.managed:
    - name: /usr/local/sbin/jupyterhub-env-update
{#- conda: compare the envs with their reviewed locks, never solve (conda_env.update_report) #}
    - source: salt://jupyterhub/files/{{ "conda/env-update.sh.j2" if jupyterhub.env_provider == "conda" else "jupyterhub-env-update.sh.j2" }}
    - template: jinja
    - mode: "0755"
    - context:
        unattended: {{ timer.unattended | json }}
        salt_call: {{ salt["jupyterhub.salt_call_command"]() | json }}
        trust_check: /usr/local/sbin/jupyterhub-trust-check
    - require:
      - file: jupyterhub-env-update-trust-check-installed

jupyterhub-env-update-units-installed:
  file.managed:
    - names:
      - /etc/systemd/system/jupyterhub-env-update.service:
        - contents: |
            # Managed by Salt (jupyterhub.update_timer).
            [Unit]
            Description=Check (and if allowed, apply) the reviewed JupyterHub environment
            [Service]
            Type=oneshot
            ExecStart=/usr/local/sbin/jupyterhub-env-update
      - /etc/systemd/system/jupyterhub-env-update.timer:
        - contents: |
            # Managed by Salt (jupyterhub.update_timer).
            [Unit]
            Description=Periodic check of the JupyterHub environment
            [Timer]
            OnCalendar={{ timer.on_calendar }}
            RandomizedDelaySec=1h
            Persistent=true
            [Install]
            WantedBy=timers.target
    - mode: "0644"

jupyterhub-env-update-units-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: jupyterhub-env-update-units-installed

jupyterhub-env-update-timer-running:
  service.running:
    - name: jupyterhub-env-update.timer
    - enable: true
    - require:
      - cmd: jupyterhub-env-update-units-reloaded
    - watch:
      - file: jupyterhub-env-update-units-installed
{%- else %}
jupyterhub-env-update-timer-dead:
  service.dead:
    - name: jupyterhub-env-update.timer
    - enable: false

jupyterhub-env-update-files-absent:
  file.absent:
    - names:
      - /etc/systemd/system/jupyterhub-env-update.timer
      - /etc/systemd/system/jupyterhub-env-update.service
      - /usr/local/sbin/jupyterhub-env-update
      - /usr/local/sbin/jupyterhub-trust-check
    - require:
      - service: jupyterhub-env-update-timer-dead

jupyterhub-env-update-units-forgotten:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: jupyterhub-env-update-files-absent
{%- endif %}
