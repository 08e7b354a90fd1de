# Development hub: only whitelisted users may log in (and get servers); self-signed TLS
# certificate. The hub's API listens on this host's address in cluster_net_cidr (default
# 10.0.0.0/8), the network the worker nodes reach it on: set yours.
jupyterhub:
  is_devel_env: true
  jh_admin_users: []
  jh_whitelist_users: []
