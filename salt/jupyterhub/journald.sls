{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# Keep the journal (hub, proxy, update timer logs) across reboots.
jupyterhub-journald-configured:
  file.managed:
    - name: /etc/systemd/journald.conf.d/50-jupyterhub.conf
    - makedirs: true
    - mode: "0644"
    - contents: |
        # Managed by Salt (jupyterhub.journald).
        [Journal]
        Storage={{ "persistent" if jupyterhub.journald.persistent else "auto" }}
        SystemMaxUse={{ jupyterhub.journald.system_max_use }}

jupyterhub-journald-running:
  service.running:
    - name: systemd-journald
    - watch:
      - file: jupyterhub-journald-configured
