# The JupyterHub host role. Each included SLS handles one concern.
include:
  - jupyterhub.packages
  - jupyterhub.sge.client
  - jupyterhub.user
  - jupyterhub.access
  - jupyterhub.env
  - jupyterhub.sudo
  - jupyterhub.dirs
  - jupyterhub.database
  - jupyterhub.tls
  - jupyterhub.config
  - jupyterhub.service
  - jupyterhub.nginx
  - jupyterhub.update_timer
  - jupyterhub.journald
