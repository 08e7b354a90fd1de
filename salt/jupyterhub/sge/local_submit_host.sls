# Single-host installs (the demo profile): this host, the qmaster, is also the hub and submits
# jobs. Sites with a separate hub use jupyterhub.sge.submit_hosts on an admin host instead.
include:
  - jupyterhub.sge.cell

jupyterhub-sge-this-host-is-a-submit-host:
  sge.submit_host_present:
    - name: {{ grains["host"] }}
    - require:
      - sls: jupyterhub.sge.cell
