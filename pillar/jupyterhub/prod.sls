# Production hub: everyone who can log in (PAM) may use it; certificate from your CA.
jupyterhub:
  is_devel_env: false
  cluster_net_cidr: 10.0.0.0/8
  public_net_cidr: 0.0.0.0/0
  jh_admin_users: []
  tls:
    cert_file: /etc/ssl/certs/jupyterhub.crt
  update_timer:
    unattended: false
