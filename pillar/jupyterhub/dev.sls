# Development hub: only whitelisted users may log in; self-signed TLS certificate.
jupyterhub:
  is_devel_env: true
  # any address of this host (a dev host usually has one)
  cluster_net_cidr: 0.0.0.0/0
  jh_admin_users: []
  jh_whitelist_users: []
