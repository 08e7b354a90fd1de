# Single-host demo (the default of bin/setup): a Grid Engine cell on this host (salt/top.sls adds
# jupyterhub.sge.cell and jupyterhub.sge.local_submit_host), the hub, and this host as the worker.
# Every local account may log in; the TLS certificate is self-signed.
jupyterhub:
  is_devel_env: false
  # any address of this host
  cluster_net_cidr: 0.0.0.0/0
  tls:
    self_signed: true
