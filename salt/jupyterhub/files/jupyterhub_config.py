"""JupyterHub configuration. Managed by Salt (jupyterhub.config): local changes are overwritten.

Everything site-specific comes from settings.json, which Salt renders from the validated pillar.
"""

import json
import os
import sys

SETTINGS_FILE = os.environ.get("JUPYTERHUB_SETTINGS", "/etc/jupyterhub/settings.json")
with open(SETTINGS_FILE, encoding="utf-8") as handle:
    settings = json.load(handle)

c = get_config()  # noqa: F821 - provided by JupyterHub's config loader
hub = settings["hub"]
runtime = settings["runtime_dir"]

# Who may log in: local accounts through PAM. dev: only the whitelist; prod: everyone.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.admin_users = set(settings["jh_admin_users"])
if settings["is_devel_env"]:
    c.Authenticator.allowed_users = set(settings["jh_whitelist_users"])
else:
    c.Authenticator.allow_all = True

# nginx terminates TLS and forwards to the proxy on loopback; the proxy runs as its own service
# (jupyterhub-proxy) so that restarting the hub does not drop the routes of running servers.
c.JupyterHub.bind_url = f"http://127.0.0.1:{hub['proxy_port']}"
c.JupyterHub.hub_bind_url = f"http://{settings['hub_ip']}:{hub['port']}"
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub['proxy_api_port']}"

c.JupyterHub.cookie_secret_file = os.path.join(runtime, "jupyterhub_cookie_secret")
c.JupyterHub.db_url = "sqlite:///" + os.path.join(runtime, "jupyterhub.sqlite")
c.JupyterHub.log_level = hub["log_level"]
# Stopping or restarting the hub leaves the users' jobs running.
c.JupyterHub.cleanup_servers = False

sys.path.insert(0, settings["lib_dir"])
import sgespawner  # noqa: E402

sgespawner.configure(c, settings)
