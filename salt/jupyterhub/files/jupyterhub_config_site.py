"""Site additions to jupyterhub_config.py. Managed by Salt (jupyterhub.config).

This is the formula's default: nothing. A site replaces it with its own file at
salt://jupyterhub_site/jupyterhub_config_site.py (in any of its file roots; for this checkout:
site/jupyterhub_site/jupyterhub_config_site.py) and sets JupyterHub options on ``c``, e.g.
``c.JupyterHub.shutdown_on_logout = True``. It is loaded last: what it sets wins.
"""

c = get_config()  # noqa: F821 - provided by JupyterHub's config loader
