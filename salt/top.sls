# Masterless default: this host is a JupyterHub host. On a salt-master, target your hub hosts.
base:
  "*":
    - jupyterhub
