"""JupyterHub configuration. Managed by Salt (jupyterhub.config): local changes are overwritten.

Everything site-specific comes from settings.json (next to this file), which Salt renders from
the validated pillar.
"""

import html
import json
import os
import sys

from jupyterhub.auth import PAMAuthenticator

SETTINGS_FILE = os.environ.get(
    "JUPYTERHUB_SETTINGS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "settings.json")
)
with open(SETTINGS_FILE, encoding="utf-8") as handle:
    settings = json.load(handle)

c = get_config()  # noqa: F821 - provided by JupyterHub's config loader
hub = settings["hub"]


class SiteAuthenticator(PAMAuthenticator):
    """PAM, with pillar authoritative for who may log in: a user whom a pillar edit no longer
    allows must log in again at their next request, and that login is refused."""

    async def refresh_user(self, user, handler=None):
        if user.name in self.allowed_users or self.check_allowed(user.name):
            return True
        self.log.warning("%s is no longer allowed (pillar): login required", user.name)
        return False


# Who may log in: local accounts through PAM. dev: only jh_whitelist_users; otherwise the members
# of the allow-list group (access:group). Admins may always log in. Neither list only adds:
# removing a name from pillar removes the login (allow_existing_users off) and the admin role
# (its membership is set exactly).
admins = sorted(settings["jh_admin_users"])
c.JupyterHub.authenticator_class = SiteAuthenticator
c.Authenticator.allow_existing_users = False
c.Authenticator.allow_all = False
if settings["is_devel_env"]:
    c.Authenticator.allowed_users = set(settings["jh_whitelist_users"]) | set(admins)
else:
    c.Authenticator.allowed_users = set(admins)
    c.PAMAuthenticator.allowed_groups = {settings["access"]["group"]}
c.JupyterHub.load_roles = [{"name": "admin", "users": admins}]

# nginx terminates TLS and forwards to the proxy on loopback; the proxy runs as its own service
# (jupyterhub-proxy) so that restarting the hub does not drop the routes of running servers.
c.JupyterHub.bind_url = f"http://127.0.0.1:{hub['proxy_port']}"
c.JupyterHub.hub_bind_url = f"http://{settings['hub_ip']}:{hub['port']}"
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{hub['proxy_api_port']}"
# Users only ever reach the hub over https (nginx): its cookies are Secure.
c.JupyterHub.tornado_settings = {"cookie_options": {"secure": True}}

c.JupyterHub.cookie_secret_file = settings["cookie_secret_file"]
database = settings["database"]
if database["backend"] == "postgresql":  # on this host; the password comes from systemd (see below)
    c.JupyterHub.db_url = (f"postgresql+psycopg2://{database['user']}@127.0.0.1:{database['port']}/"
                           f"{database['name']}")
    # libpq reads it from the hub's environment (not the URL: JupyterHub's schema check would
    # write that into a temporary alembic.ini); the hub's children do not inherit it (JupyterHub
    # passes services only its env_keep variables; the job commands get an explicit environment)
    if os.environ.get("CREDENTIALS_DIRECTORY"):
        with open(os.path.join(os.environ["CREDENTIALS_DIRECTORY"], "database-password"), encoding="utf-8") as handle:
            os.environ["PGPASSWORD"] = handle.read().strip()
else:
    c.JupyterHub.db_url = "sqlite:///" + os.path.join(settings["state_dir"], "jupyterhub.sqlite")
c.JupyterHub.log_level = hub["log_level"]
# Stopping or restarting the hub leaves the users' jobs running.
c.JupyterHub.cleanup_servers = False

# Pillar's announcements (plain text) at the top of the hub's pages: `all` everywhere, or one page.
# A page's own variable only when set: JupyterHub's templates prefer it even when empty.
c.JupyterHub.template_vars.update({
    ("announcement" if page == "all" else f"announcement_{page}"): html.escape(text).replace("\n", "<br>")
    for page, text in settings["announcement"].items() if text
})

# Several servers per user, each its own job (pillar named_servers).
c.JupyterHub.allow_named_servers = settings["named_servers"]["enabled"]
c.JupyterHub.named_server_limit_per_user = settings["named_servers"]["limit"]

# Prometheus: /hub/metrics needs a token with read:metrics. The `metrics` service's token lives in
# a root-only file; systemd hands the hub a copy (LoadCredential=, see jupyterhub.service).
# (Outside the service, e.g. Salt's check that this file loads, there is no such copy.)
if settings["metrics"]["enabled"] and os.environ.get("CREDENTIALS_DIRECTORY"):
    with open(os.path.join(os.environ["CREDENTIALS_DIRECTORY"], "metrics-token"), encoding="utf-8") as handle:
        c.JupyterHub.services.append({"name": "metrics", "api_token": handle.read().strip()})
    c.JupyterHub.load_roles.append({"name": "metrics", "description": "read /hub/metrics (Prometheus)",
                                    "scopes": ["read:metrics"], "services": ["metrics"]})
c.JupyterHub.authenticate_prometheus = True

sys.path.insert(0, settings["lib_dir"])
import sgespawner  # noqa: E402

sgespawner.configure(c, settings)
