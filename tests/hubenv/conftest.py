"""Tests of the spawner's JupyterHub layer: they need jupyterhub and batchspawner (the hub's env).

Run them with the hub's Python, which needs pytest (e.g. a venv made from the hub's lock):

    python -m pytest --confcutdir=tests/hubenv -p no:cacheprovider tests/hubenv

(--confcutdir: the repository's top-level conftest needs Salt, which the hub's env has not.)
In the Salt venv (bin/test) this directory is skipped.

`hub` starts a real JupyterHub with the real configure() on a fake Grid Engine (fake_sge.py: jobs
are local processes) and real single-user servers from this env.
"""

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

try:
    import batchspawner
    import jupyterhub  # noqa: F401
except ImportError:  # the Salt venv: these tests need the hub's env
    batchspawner = None


def pytest_collection_modifyitems(config, items):
    if batchspawner is None:
        skip = pytest.mark.skip(reason="needs jupyterhub and batchspawner (run with the hub's Python)")
        for item in items:
            if HERE in pathlib.Path(item.fspath).parents:
                item.add_marker(skip)

REPO = pathlib.Path(__file__).resolve().parents[2]
FILES = REPO / "salt/jupyterhub/files"
PACKAGE = FILES / "sgespawner"
HERE = pathlib.Path(__file__).resolve().parent
TOKEN = "hubenv-test-token-0123456789abcdef"

CONFIG = '''
# The role's own jupyterhub_config.py (next to settings.json) with what a test hub replaces:
# no PAM, no TLS in front (cookies not Secure), routes in memory, a service token for the tests.
import os, sys
from jupyterhub.proxy import Proxy

import sgespawner.gridengine, sgespawner.options
sgespawner.gridengine.Cluster.SUDO = (SGE_ROOT + "/sudo", "-n", "-u")
# the test users root, daemon and bin are system accounts, which the spawner refuses: let them
# through; every other account gets the real check (tests/unit and the integration tests cover it)
_account_refusal = sgespawner.options.account_refusal
sgespawner.options.account_refusal = lambda name, access, sge: (
    "" if name in ("root", "daemon", "bin") else _account_refusal(name, access, sge))

load_subconfig(ROLE_CONFIG)

class MemoryProxy(Proxy):
    """Routes in memory: no configurable-http-proxy needed for these tests."""
    should_start = False
    routes = {}
    async def add_route(self, routespec, target, data):
        self.routes[routespec] = {"routespec": routespec, "target": target, "data": data}
    async def delete_route(self, routespec):
        self.routes.pop(routespec, None)
    async def get_all_routes(self):
        return dict(self.routes)

c = get_config()
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.proxy_class = MemoryProxy
c.JupyterHub.bind_url = f"http://127.0.0.1:{PROXY_PORT}"
c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{HUB_PORT}"
c.JupyterHub.tornado_settings = {}
c.JupyterHub.log_level = "DEBUG"
c.JupyterHub.services = [{"name": "tester", "api_token": TOKEN}]
c.JupyterHub.load_roles = [{"name": "tester", "services": ["tester"],
    "scopes": ["admin:users", "admin:servers", "list:users", "read:users", "servers", "tokens"]}]
if os.geteuid() == 0:
    c.Spawner.args = ["--allow-root"]
c.SGESpawner.bind_ip = "127.0.0.1"
c.SGESpawner.cmd = [WRAPPER]
'''

# the single-user command of the jobs: fails on purpose while $SGE_ROOT/die exists
WRAPPER = '''#!/bin/bash
if [ -e {root}/die ]; then
  echo "Traceback (most recent call last):"
  echo "ModuleNotFoundError: No module named 'jupyterhub' (simulated)"
  exit 3
fi
exec jupyterhub-singleuser "$@"
'''


def worker_env():
    """The env that has batchspawner-singleuser: this one, or the one batchspawner comes from."""
    for prefix in (pathlib.Path(sys.prefix), pathlib.Path(batchspawner.__file__).parents[4]):
        if (prefix / "bin/batchspawner-singleuser").exists():
            return str(prefix)
    raise AssertionError("no batchspawner-singleuser next to this Python")


_installed = {}


def installed_package():
    """The spawner package pip-installed from the state tree (as the role does) into a directory
    of its own, once per session: the hub finds it, and its entry point "sge", on PYTHONPATH."""
    if "path" not in _installed:
        import tempfile

        target = pathlib.Path(tempfile.mkdtemp(prefix="sgespawner-site-"))
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-input", "--quiet", "--no-deps",
                        "--no-index", "--no-build-isolation", "--target", str(target), str(PACKAGE)],
                       check=True, cwd="/", env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        _installed["path"] = target
    return _installed["path"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Hub:
    def __init__(self, tmp, config="", **spawner):
        self.tmp = tmp
        tmp.mkdir()
        self.sge = tmp / "sge"
        self.sge.mkdir()
        for name in ("qsub", "qstat", "qdel", "qconf", "sudo"):
            (self.sge / name).symlink_to(HERE / "fake_sge.py")
        (tmp / "etc").mkdir()
        (tmp / "srv").mkdir()
        shutil.copytree(FILES / "templates", tmp / "etc/templates")
        settings = yaml.safe_load((FILES.parent / "defaults.yaml").read_text())["jupyterhub"]
        settings.update(hub_ip="127.0.0.1", env_prefix=worker_env(), fqdn="localhost",
                        config_dir=str(tmp / "etc"), runtime_dir=str(tmp / "srv"),
                        state_dir=str(tmp / "srv"), secrets_dir=str(tmp / "srv/secrets"),
                        cookie_secret_file=str(tmp / "srv/cookie_secret"))
        (tmp / "srv/secrets").mkdir(mode=0o711)
        settings["sge"].update(root=str(self.sge), **{n: str(self.sge / n) for n in ("qsub", "qstat", "qdel", "qconf")})
        settings["spawner"].update({"poll_interval": 1, "startup_poll_interval": 0.2, "start_timeout": 60,
                                    "output": str(tmp / "job.log"), **spawner})
        templates = str(tmp / "etc/templates")  # what jupyterhub.computed adds on a host
        settings.update(templates_dir=templates, form_template=templates + "/sgespawner-form.html",
                        job_template=settings["spawner"]["job_template"] or templates + "/sgespawner-job.sh.j2",
                        worker_env=settings["spawner"]["worker_env"] or settings["env_prefix"],
                        settings_file=str(tmp / "etc/settings.json"))
        (tmp / "etc/settings.json").write_text(json.dumps(settings))
        shutil.copy(FILES / "jupyterhub_config.py", tmp / "etc/jupyterhub_config.py")
        wrapper = tmp / "singleuser"
        wrapper.write_text(WRAPPER.format(root=self.sge))
        wrapper.chmod(0o755)
        self.port = free_port()
        config = (f"ROLE_CONFIG = {str(tmp / 'etc/jupyterhub_config.py')!r}\nTOKEN = {TOKEN!r}\n"
                  f"SGE_ROOT = {str(self.sge)!r}\nHUB_PORT = {self.port}\nPROXY_PORT = {free_port()}\n"
                  f"WRAPPER = {str(wrapper)!r}\n" + CONFIG + config)
        (tmp / "etc/test_config.py").write_text(config)
        self.settings = settings
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hub/api"

    def start(self):
        self.log = open(self.tmp / "hub.log", "a")
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB")}
        env["PYTHONPATH"] = str(installed_package())  # the spawner package, installed as the role does
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.tmp / "etc/test_config.py")],
            cwd=self.tmp / "srv", stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.logtext()
            try:
                self.api("GET", "/")
                return self
            except OSError:
                time.sleep(0.2)
        raise AssertionError("hub did not start:\n" + self.logtext())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def logtext(self):
        return (self.tmp / "hub.log").read_text()[-20000:]

    def browser(self, user):
        return Browser(f"http://127.0.0.1:{self.port}").login(user)

    def api(self, method, path, body=None):
        """(status, parsed JSON or text) of a hub API call with the tester service's token."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"token {TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def calls(self, command=None):
        path = self.sge / "calls.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line for line in lines if command is None or line.split()[0] == command]

    def server_env(self, job):
        """The environment of the job's server process (root can read /proc/<pid>/environ)."""
        pid = json.loads((self.sge / "jobs" / f"{job}.json").read_text())["pid"]
        for proc in pathlib.Path("/proc").glob("[0-9]*"):
            try:
                if proc.joinpath("stat").read_text().split(") ")[1].split()[1] == str(pid):
                    env = proc.joinpath("environ").read_bytes().split(b"\0")
                    return dict(e.decode().split("=", 1) for e in env if b"=" in e)
            except (OSError, IndexError):
                continue
        raise AssertionError(f"no server process under job {job}")

    def jobs(self):
        return sorted(p.stem for p in (self.sge / "jobs").glob("*.json"))

    def server(self, user, name=""):
        status, model = self.api("GET", f"/users/{user}")
        assert status == 200, model
        return model["servers"].get(name)

    def wait_for(self, condition, timeout=30, step=0.1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(step)
        raise AssertionError(f"timed out after {timeout} s\n" + self.logtext())

    def spawn(self, user, options=None, wait=True):
        self.api("POST", "/users", {"usernames": [user]})
        status, body = self.api("POST", f"/users/{user}/server", options if options is not None else {})
        if wait and status in (201, 202):
            self.wait_for(lambda: (self.server(user) or {}).get("ready") or self.spawn_failed(user), 60)
        return status, body

    def spawn_failed(self, user):
        server = self.server(user)
        return server is None or (not server["pending"] and not server["ready"])

    def progress(self, user):
        """The spawn's progress events (server-sent events until ready or failed)."""
        request = urllib.request.Request(self.url + f"/users/{user}/server/progress",
                                         headers={"Authorization": f"token {TOKEN}"})
        events = []
        with urllib.request.urlopen(request, timeout=60) as response:
            for line in response:
                line = line.decode().strip()
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("ready") or events[-1].get("failed"):
                        break
        return events


class Browser:
    """Cookies, the _xsrf token and form posts, like a browser (no redirects followed)."""

    def __init__(self, base):
        import http.cookiejar

        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)

    def request(self, method, path, form=None):
        if form is not None:
            xsrf = next((c.value for c in self.jar if c.name == "_xsrf"), None)
            form = urllib.parse.urlencode({**form, **({"_xsrf": xsrf} if xsrf else {})}).encode()
        request = urllib.request.Request(self.base + path, data=form, method=method)
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode()

    def login(self, user, password="any"):
        self.request("GET", "/hub/login")
        status, headers, _ = self.request("POST", "/hub/login", {"username": user, "password": password})
        assert status == 302, status
        return self


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@pytest.fixture
def make_hub(tmp_path):
    hubs = []

    def make(config="", **spawner):
        """A hub with spawner settings ``spawner`` and extra lines of JupyterHub ``config``."""
        hub = Hub(tmp_path / f"hub{len(hubs)}", config, **spawner)
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        for user in ("root", "daemon", "bin"):
            try:
                if hub.proc:
                    hub.api("DELETE", f"/users/{user}/server")
            except OSError:
                pass
        hub.stop()
        for job in (hub.sge / "jobs").glob("*.json"):  # never leave a job process behind
            pid = json.loads(job.read_text()).get("pid")
            if pid:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
