"""A user's browser against a hub on a test host: HTTPS through nginx, the login form with its
_xsrf field, the hub's REST API with the session's cookies (as the hub's own pages call it)."""

import re

import requests
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # self-signed test certificates


class HubUser:
    """One logged-in user (or a failed login: ``self.login_response`` tells)."""

    def __init__(self, address, user, password, verify=False):
        self.base, self.user = f"https://{address}", user
        self.session = requests.Session()
        self.session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        self.session.verify = verify
        page = self.session.get(f"{self.base}/hub/login", timeout=30)
        match = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
        data = {"username": user, "password": password, **({"_xsrf": match.group(1)} if match else {})}
        self.login_response = self.session.post(
            f"{self.base}/hub/login?next=", data=data, allow_redirects=False, timeout=60)

    @property
    def logged_in(self):
        return self.login_response.status_code == 302

    def api(self, method, path, json=None):
        xsrf = self.session.cookies.get("_xsrf", path="/hub/")
        return self.session.request(method, f"{self.base}/hub/api{path}", json=json,
                                    headers={"X-XSRFToken": xsrf} if xsrf else {}, timeout=120)

    def server(self, name=None, server=""):
        """The user's server model (default server unless ``server`` names one; None: no such
        server), or raise if the user is not known."""
        response = self.api("GET", f"/users/{name or self.user}")
        response.raise_for_status()
        return response.json()["servers"].get(server)

    @staticmethod
    def _server_path(server):
        return f"/servers/{server}" if server else "/server"

    def start(self, options=None, name=None, server=""):
        """POST the spawn (the hub answers once submitted or refused): the response."""
        return self.api("POST", f"/users/{name or self.user}{self._server_path(server)}", json=options or {})

    def stop(self, name=None, server=""):
        return self.api("DELETE", f"/users/{name or self.user}{self._server_path(server)}")

    def page(self, path):
        """A hub page as the browser gets it: (status, HTML)."""
        response = self.session.get(f"{self.base}{path}", timeout=60)
        return response.status_code, response.text
