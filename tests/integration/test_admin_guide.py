"""docs/ADMIN.md, recipe by recipe, on a booted single-host demo: each recipe's `pillar/site.sls`
block is written as the whole file and applied with `./bin/setup`, each shell block runs as root
in the repository, exactly as the guide shows them; then the effect an admin and their users rely
on is checked (the form, a server started through the hub as a Grid Engine job, logins, pages).

Tests run in order on one module-scoped host.
"""

import re
import time
from pathlib import Path

import pytest
import requests

from tests.support.webclient import HubUser

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parents[2] / "docs/ADMIN.md"
RECIPE = re.compile(r"<!-- recipe ([a-z-]+): (site\.sls|run) -->\s*```[a-z]*\n(.*?)```", re.S)
SITE = "/srv/formula/pillar/site.sls"


def recipes():
    found = {}
    for name, kind, body in RECIPE.findall(GUIDE.read_text()):
        found.setdefault(name, []).append((kind, body))
    return found


RECIPES = recipes()
TESTED = {"add-queue", "add-project", "add-pe", "gpus", "runtime", "users", "extras", "upgrade", "backup",
          "restore", "reasons", "postgresql"}


@pytest.fixture(scope="module")
def demo(make_host):
    host = make_host("guide", shape="static")
    setup = host.run(["/srv/formula/bin/setup"], timeout=1800)
    host.password = re.search(r"Log in as 'demo' with the password '([0-9a-f]+)'", setup.stdout).group(1)
    yield host
    host.stop()


def setup(host):
    """./bin/setup, then wait until the hub answers again (it restarts when its settings changed)."""
    applied = host.run(["/srv/formula/bin/setup"], timeout=1800, check=False)
    assert applied.returncode == 0 and re.search(r"Failed:\s+0\n", applied.stdout), \
        f"./bin/setup failed\n{applied.stdout[-6000:]}\n{applied.stderr[-3000:]}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"https://{host.ip}/hub/login", verify=False, timeout=10).status_code == 200:
                return applied
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, "the hub does not answer after ./bin/setup"
        time.sleep(1)


def follow(host, name):
    """Do what recipe `name` says; the output of its shell blocks."""
    outputs = []
    for kind, body in RECIPES[name]:
        if kind == "site.sls":
            host.put_file(SITE, body, mode=0o600)
            setup(host)
        else:
            ran = host.run(["/bin/sh", "-ec", f"cd /srv/formula\n{body}"], timeout=900, check=False)
            assert ran.returncode == 0, f"recipe {name}: rc {ran.returncode}\n{ran.stdout}\n{ran.stderr}"
            outputs.append(ran.stdout)
    return outputs


def login(host, user="demo", password=None):
    return HubUser(host.ip, user, password or host.password)


def jobs(host, owner="demo"):
    """The job ids of `owner` in the queue."""
    return set(re.findall(r"^\s*(\d+)\s", host.run(["qstat", "-u", owner]).stdout, re.M))


def started(user, options, server="", host=None):
    """Start a server through the hub and wait until it is ready: its Grid Engine job id."""
    before = jobs(host)
    response = user.start(options, server=server)
    assert response.status_code in (201, 202), response.text
    deadline = time.monotonic() + 300
    while not (user.server(server=server) or {}).get("ready"):
        assert time.monotonic() < deadline, f"server {server!r} not ready: {user.server(server=server)}"
        time.sleep(1)
    [job] = jobs(host) - before
    return job


def stopped(user, server=""):
    user.stop(server=server)
    deadline = time.monotonic() + 120
    while user.server(server=server) is not None:
        assert time.monotonic() < deadline, "the server did not stop"
        time.sleep(1)


def job_detail(host, job):
    return host.run(["qstat", "-j", job]).stdout


def test_every_recipe_of_the_guide_is_exercised_here():
    assert set(RECIPES) == TESTED, "docs/ADMIN.md and this test disagree on the recipes"


def test_add_a_queue(demo):
    follow(demo, "add-queue")
    assert "short.q" in demo.run(["qconf", "-sql"]).stdout.split()
    user = login(demo)
    _, form = user.page("/hub/spawn")
    assert re.search(r'<option value="short.q"[^>]*data-free="\d+"', form), form
    job = started(user, {"queue": "short.q", "runtime": "00:30:00"}, host=demo)
    assert re.search(rf"^\s*{job}\s.*\sshort\.q@", demo.run(["qstat", "-u", "demo"]).stdout, re.M)
    stopped(user)
    # the queue's own h_rt (1 hour): Grid Engine's reason (on the form it comes before the submit)
    response = user.start({"queue": "short.q", "runtime": "02:00:00"})
    assert response.status_code == 503, response.text
    assert re.search(r'Grid Engine refused the job: .*could not be scheduled.*\(-l h_rt=7200\) cannot run in '
                     r'queue "short\.q"', response.json()["message"]), response.text
    assert jobs(demo) <= {job}  # nothing new was queued (the stopped job may still be leaving: dr)


def test_add_a_project(demo):
    follow(demo, "add-project")
    assert "physics" in demo.run(["qconf", "-sprjl"]).stdout.split()
    user = login(demo)
    _, form = user.page("/hub/spawn")
    assert 'name="project"' in form and 'value="physics"' in form
    assert 'value="short.q"' not in form  # the previous recipe's queue is no longer offered
    job = started(user, {"project": "physics"}, host=demo)
    assert re.search(r"^project:\s+physics$", job_detail(demo, job), re.M)
    stopped(user)
    response = user.start({"project": "chemistry"})
    assert response.status_code == 400 and "allowed: physics (or empty)" in response.json()["message"]


def test_add_a_parallel_environment(demo):
    follow(demo, "add-pe")
    assert "threads" in demo.run(["qconf", "-spl"]).stdout.split()
    user = login(demo)
    job = started(user, {"pe": "threads", "slots": "2"}, host=demo)
    assert re.search(r"^parallel environment:\s+threads range: 2$", job_detail(demo, job), re.M)
    stopped(user)


def test_offer_gpus(demo):
    follow(demo, "gpus")
    user = login(demo)
    _, form = user.page("/hub/spawn")
    assert 'name="gpus"' in form
    job = started(user, {"gpus": "1"}, host=demo)
    assert re.search(r"^hard resource_list:.*\bgpu=1\b", job_detail(demo, job), re.M)  # one GPU is one GPU
    stopped(user)
    response = user.start({"gpus": "2"})
    assert response.status_code == 400 and "gpus: 2 is out of range; allowed 0-1" in response.json()["message"]


def test_change_the_run_time_limits(demo):
    follow(demo, "runtime")
    user = login(demo)
    _, form = user.page("/hub/spawn")
    assert re.search(r'id="sge-runtime" name="runtime"\s+value="01:00:00"', form), form
    response = user.start({"runtime": "08:00:00"})
    assert response.status_code == 400
    assert "runtime: 08:00:00 is longer than the maximum 04:00:00" in response.json()["message"]
    started(user, {"runtime": "00:09:00"}, host=demo)
    _, home = user.page("/hub/home")  # less than the warning time (600 s) left: a warning
    assert re.search(r'class="alert alert-warning sge-time-left"', home) and "Save your work." in home, home
    stopped(user)


def test_who_may_log_in_and_who_is_admin(demo):
    [created] = follow(demo, "users")
    password = re.search(r"alice's password: (\S+)", created).group(1)
    alice = login(demo, "alice", password)
    assert alice.logged_in
    me = alice.api("GET", "/user").json()
    assert me["admin"] is True
    # taken out of pillar again: the next login is refused
    demo.put_file(SITE, "jupyterhub: {}\n", mode=0o600)
    setup(demo)
    assert not login(demo, "alice", password).logged_in
    assert alice.api("GET", "/user").status_code in (401, 403)


def test_announcements_metrics_and_named_servers(demo):
    follow(demo, "extras")
    user = login(demo)
    _, page = user.page("/hub/home")
    assert "Maintenance on Friday 18:00-20:00: servers are stopped at 18:00." in page
    token = demo.run(["cat", "/etc/jupyterhub/metrics-token"]).stdout.strip()
    assert demo.run(["stat", "-c", "%U %a", "/etc/jupyterhub/metrics-token"]).stdout.split() == ["root", "600"]
    assert requests.get(f"{user.base}/hub/metrics", verify=False, timeout=30).status_code == 403
    scraped = requests.get(f"{user.base}/hub/metrics", verify=False, timeout=30,
                           headers={"Authorization": f"token {token}"})
    assert scraped.status_code == 200 and "jupyterhub_" in scraped.text
    small = started(user, {"slots": "1"}, host=demo)
    big = started(user, {"slots": "1", "ui": "notebook"}, server="second", host=demo)
    assert small != big
    queued = demo.run(["qstat", "-u", "demo"]).stdout
    assert re.search(rf"^\s*{small}\s", queued, re.M) and re.search(rf"^\s*{big}\s", queued, re.M)
    stopped(user, "second")
    assert user.server()["ready"]
    stopped(user)
    demo.put_file(SITE, "jupyterhub: {}\n", mode=0o600)  # pillar authoritative: all of it goes
    setup(demo)
    assert demo.run(["test", "-e", "/etc/jupyterhub/metrics-token"], check=False).returncode == 1
    _, page = login(demo).page("/hub/home")
    assert "Maintenance on Friday" not in page


def test_upgrade_report(demo):
    [report] = follow(demo, "upgrade")
    assert "dry run done" in report and "nothing applied" in report, report


def test_back_up_and_restore_the_database_with_a_server_running(demo):
    user = login(demo)
    job = started(user, {}, host=demo)
    follow(demo, "backup")
    assert demo.run(["stat", "-c", "%U %a", "/var/backups/jupyterhub/jupyterhub.sql"]).stdout.split() == \
        ["root", "600"]
    follow(demo, "restore")
    deadline = time.monotonic() + 120
    while True:  # the restarted hub answers, and takes the running server over again
        try:
            again = login(demo)
            if again.logged_in and (again.server() or {}).get("ready"):
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the hub did not come back with the server"
        time.sleep(2)
    assert jobs(demo) == {job}
    stopped(again)


def test_grid_engines_reasons_are_in_the_journal(demo):
    demo.run(["qmod", "-d", "all.q"])
    try:
        user = login(demo)
        _, form = user.page("/hub/spawn")
        xsrf = user.session.cookies.get("_xsrf", path="/hub/")
        refused = user.session.post(f"{user.base}/hub/spawn", data={"_xsrf": xsrf}, timeout=120)
        assert "temporarily not available" in refused.text, refused.text[-3000:]
    finally:
        demo.run(["qmod", "-e", "all.q"])
    [journal] = follow(demo, "reasons")
    assert "Grid Engine cannot start this request now" in journal and "demo" in journal, journal


def test_postgresql_keeps_sessions_across_a_hub_restart(demo):
    follow(demo, "postgresql")
    assert demo.run(["stat", "-c", "%U %a", "/etc/jupyterhub/database-password"]).stdout.split() == ["root", "600"]
    assert demo.run(["systemctl", "is-active", "postgresql"]).stdout.strip() == "active"
    user = login(demo)
    job = started(user, {}, host=demo)
    users = demo.run(["runuser", "-u", "postgres", "--", "psql", "-At", "-d", "jupyterhub", "-c",
                      "SELECT name FROM users"]).stdout.split()
    assert "demo" in users  # the hub's state is in PostgreSQL now
    password = demo.run(["cat", "/etc/jupyterhub/database-password"]).stdout.strip()
    assert password not in demo.run(["ps", "-eo", "args"]).stdout
    assert password not in demo.run(["journalctl", "--no-pager", "-q"]).stdout
    demo.run(["systemctl", "restart", "jupyterhub"])
    deadline = time.monotonic() + 120
    while True:
        try:
            again = login(demo)
            if again.logged_in and (again.server() or {}).get("ready"):
                break
        except (OSError, requests.RequestException):
            pass
        assert time.monotonic() < deadline, "the hub did not come back with the server"
        time.sleep(2)
    assert jobs(demo) == {job}
    stopped(again)
    demo.put_file(SITE, "jupyterhub: {}\n", mode=0o600)  # back to SQLite: the password goes
    setup(demo)
    assert demo.run(["test", "-e", "/etc/jupyterhub/database-password"], check=False).returncode == 1
