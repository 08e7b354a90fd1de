"""The README's first Quick-start command on a freshly booted host: `bin/setup` must bring up a
complete single-host installation (a Grid Engine cell on the host, the hub, the host as worker)
where any local user logs in over https, submits the resource form with its defaults and gets a
Jupyter server running as a Grid Engine job. Re-running it changes nothing.

All of it runs on the two shapes fresh Debian 12 hosts come in (tests/support/hosts.py): the host's
name on 127.0.1.1 (Debian installer with DHCP, cloud images) and on its own address with an FQDN
(static install). Timings per shape are printed (pytest -s); JHSALT_DEMO_SHAPES selects others."""

import html.parser
import os
import re
import time

import pytest
import requests
import urllib3

from tests.support.hosts import wait_for

pytestmark = pytest.mark.integration
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)  # self-signed on the demo

USER = "demo"  # the demo profile's login account; bin/setup shows its generated password once
TIMINGS = {}
# JHSALT_DEMO_SHAPES=loopback,static,two-nics measures more shapes (tests/support/hosts.py:SHAPES)
SHAPES = os.environ.get("JHSALT_DEMO_SHAPES", "loopback,static").split(",")


class FormDefaults(html.parser.HTMLParser):
    """What a browser would submit from the spawn form without touching it."""

    def __init__(self):
        super().__init__()
        self.values, self._select = {}, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "input" and attrs.get("name") and attrs.get("type") not in ("submit", "button"):
            if attrs.get("type") in ("checkbox", "radio") and "checked" not in attrs:
                return
            self.values[attrs["name"]] = attrs.get("value", "")
        elif tag == "select":
            self._select = attrs.get("name")
        elif tag == "option" and self._select:
            if "selected" in attrs or self._select not in self.values:
                self.values[self._select] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None



@pytest.fixture(scope="module", params=SHAPES)
def demo(make_host, request):
    TIMINGS.clear()
    host = make_host("demo", shape=request.param)
    started = time.monotonic()
    setup = host.run(["/srv/formula/bin/setup"], timeout=1800)  # exactly the README's command
    TIMINGS["bin/setup on a fresh host"] = f"{time.monotonic() - started:.1f} s"
    host.setup_output = setup.stdout
    host.password = re.search(rf"Log in as '{USER}' with the password '([0-9a-f]+)'", setup.stdout).group(1)
    yield host
    host.stop()
    print(f"\ndemo timings ({host.shape} host): " + ", ".join(f"{k} {v}" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def browser(demo):
    session = requests.Session()
    session.trust_env = False
    session.verify = False
    page = session.get(f"https://{demo.ip}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"https://{demo.ip}/hub/login?next=",
        data={"username": USER, "password": demo.password, "_xsrf": xsrf},
        allow_redirects=False,
        timeout=60,
    )
    assert response.status_code == 302, response.text[:500]
    return session


def api(session, demo, method, path):
    xsrf = session.cookies.get("_xsrf", path="/hub/")
    return session.request(
        method, f"https://{demo.ip}/hub/api{path}", headers={"X-XSRFToken": xsrf}, timeout=60
    )


def test_setup_prints_the_url(demo):
    assert f"JupyterHub is at https://{demo.fqdn}/" in demo.setup_output


def test_running_setup_again_changes_nothing(demo):
    started = time.monotonic()
    again = demo.run(["/srv/formula/bin/setup"], timeout=1800)
    TIMINGS["bin/setup again"] = f"{time.monotonic() - started:.1f} s"
    assert f"JupyterHub is at https://{demo.fqdn}/" in again.stdout
    result = demo.state_apply()
    assert result.ok, str(result)
    TIMINGS["changes on a second run"] = len(result.changed())
    assert result.changed() == {}


def test_the_cell_runs_on_the_host(demo):
    assert demo.run(["systemctl", "is-active", "gridengine-master", "gridengine-exec"]).stdout.split() == [
        "active",
        "active",
    ]
    # Grid Engine knows the host by its FQDN (Debian's cell: ignore_fqdn false)
    assert demo.fqdn in demo.run(["qconf", "-ss"]).stdout.split()


def test_the_cell_offers_what_the_host_has(demo):
    """Slots = the host's cores, h_vmem = its memory, as consumables: the form's RAM per slot
    (-l h_vmem=<n>G) is counted against the host's memory and no host is given more than it has."""
    cores = int(demo.run(["nproc"]).stdout)
    mem_mb = int(demo.run(["awk", "/MemTotal/ {print int($2 / 1024)}", "/proc/meminfo"]).stdout)
    host = demo.run(["qconf", "-se", demo.fqdn]).stdout
    assert re.search(rf"^complex_values\s+slots={cores},h_vmem={mem_mb}M$", host, re.M), host
    h_vmem = demo.run(["qconf", "-sc"]).stdout
    assert re.search(r"^h_vmem\s+h_vmem\s+MEMORY\s+<=\s+YES\s+YES\s+2G\s", h_vmem, re.M), h_vmem


def test_any_local_user_gets_a_server_as_a_grid_engine_job(demo, browser):
    page = browser.get(f"https://{demo.ip}/hub/spawn", timeout=30)
    assert page.status_code == 200
    form = FormDefaults()
    form.feed(page.text)
    for field in ("queue", "slots", "ram", "runtime"):
        assert field in form.values, f"{field} missing from the form: {form.values}"
    data = dict(form.values, _xsrf=browser.cookies.get("_xsrf", path="/hub/"))
    started = time.monotonic()
    response = browser.post(f"https://{demo.ip}/hub/spawn", data=data, allow_redirects=False, timeout=120)
    assert response.status_code == 302 and "spawn-pending" in response.headers["Location"], re.sub(
        r"\s+", " ", re.sub(r"(?s)<(script|style).*?</\1>|<[^>]+>", " ", response.text)
    )

    def ready():
        server = api(browser, demo, "GET", f"/users/{USER}").json()["servers"].get("")
        assert server is not None and (server["pending"] or server["ready"]), "the spawn failed"
        return server["ready"]

    wait_for(ready, 180, what="the server")
    TIMINGS["spawn to ready"] = f"{time.monotonic() - started:.1f} s"
    jobs = demo.run(["qstat", "-u", USER]).stdout
    assert re.search(rf"\s{USER}\s+r\s.*@{demo.fqdn}", jobs), jobs
    lab = browser.get(f"https://{demo.ip}/user/{USER}/lab", timeout=60)
    assert lab.status_code == 200
    status = browser.get(f"https://{demo.ip}/user/{USER}/api/status", timeout=30)
    assert status.status_code == 200 and "started" in status.json()
    # the demo queue runs jobs at nice 5: the hub, nginx and the qmaster on this host come first
    nice = demo.run(["ps", "-o", "ni=", "-u", USER]).stdout.split()
    assert nice and set(nice) == {"5"}, nice

    stopped = api(browser, demo, "DELETE", f"/users/{USER}/server")
    assert stopped.status_code in (202, 204), stopped.text
    wait_for(lambda: api(browser, demo, "GET", f"/users/{USER}").json()["servers"].get("") is None, 60, what="the server to stop")
    wait_for(lambda: USER not in demo.run(["qstat", "-u", USER]).stdout, 30, what="the job to leave the queue")
