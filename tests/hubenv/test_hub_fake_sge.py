"""A real JupyterHub with sgespawner.configure() on a fake Grid Engine (see conftest.py): the
spawner's behaviour end to end, minus the cluster (that is tests/integration/test_spawn.py)."""

import json
import os
import pathlib
import re
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="reads the job's /proc environ as root")


def test_spawn_with_options_progress_and_stop(make_hub):
    hub = make_hub().start()
    hub.api("POST", "/users", {"usernames": ["root"]})
    spawn = threading.Thread(target=hub.api, args=("POST", "/users/root/server",
                                                   {"slots": "2", "pe": "smp", "runtime": "00:30:00"}))
    spawn.start()
    hub.wait_for(lambda: hub.server("root"))
    messages = [e["message"] for e in hub.progress("root")]
    spawn.join()
    assert hub.server("root")["ready"], hub.logtext()
    [job] = hub.jobs()
    assert messages[1].startswith("Submitting the job (queue=all.q, pe=smp, slots=2, ram=2, runtime=00:30:00, ui=lab)")
    assert f"Job {job} is running on 127.0.0.1; starting Jupyter" in messages
    assert messages[-1].startswith("Server ready at /user/root/")
    script = (hub.sge / "jobs" / f"{job}.sh").read_text()
    directives = [line for line in script.splitlines() if line.startswith("#$")]
    assert directives[0] == "#$ -clear"  # nothing from ~/.sge_request or the cell's defaults
    assert directives[2] == "#$ -notify"  # SIGUSR2 before a kill: the job tells the hub it ends
    assert re.fullmatch(r"#\$ -N jupyterhub-[0-9a-f]{10}", directives[3])  # found again if qsub hangs
    assert directives[6:] == [
        "#$ -now yes", "#$ -q all.q", "#$ -pe smp 2", "#$ -l h_vmem=2G", "#$ -l h_rt=00:30:00"]
    # the token: in the server's environment, never in the script or qsub's arguments
    token = hub.server_env(job)["JUPYTERHUB_API_TOKEN"]
    assert len(token) > 20 and token not in script and not re.search(r"-v |-V", script)
    assert token not in "".join(hub.calls())
    assert os.listdir(hub.tmp / "srv/secrets") == []  # the token file is gone once the server is up
    status, _ = hub.api("DELETE", "/users/root/server")
    assert status in (202, 204)
    hub.wait_for(lambda: hub.server("root") is None)
    assert hub.jobs() == [] and hub.calls("qdel") == [f"qdel {job}"]


def test_hostile_options_are_refused_before_any_job(make_hub):
    hub = make_hub().start()
    hub.api("POST", "/users", {"usernames": ["root"]})
    for options, message in [
        ({"queue": "all.q\n#$ -V"}, "queue: line breaks and control characters are not allowed"),
        ({"slots": "12"}, "slots: 12 is out of range; allowed 1-8"),
        ({"slots": "2", "pe": ""}, "pe: 2 slots need a parallel environment; allowed: smp"),
        ({"email": "a@b.org -M x@y.org"}, "email: 'a@b.org -M x@y.org' is not an e-mail address"),
        ({"runtime": "1000:00:00"}, "runtime: '1000:00:00' is not a run time hh:mm:ss"),
        ({"gpus": "1"}, "gpus: not offered here"),
        ({"exec_prefix": "touch /tmp/x"}, "exec_prefix: unknown field"),
    ]:
        status, body = hub.api("POST", "/users/root/server", options)
        assert status == 400 and message in body["message"], (options, body)
    assert hub.calls("qsub") == [] and hub.calls("sudo") == []


def test_an_account_an_admin_adds_that_may_not_get_servers_is_refused_before_any_job(make_hub):
    """An admin adds `nobody` (a system account) and starts its server: refused, with the reason."""
    hub = make_hub().start()
    status, body = hub.spawn("nobody", wait=False)
    assert status == 403 and "No server for this account: nobody is a system account" in body["message"], body
    assert hub.calls("qsub") == [] and hub.calls("sudo") == []
    status, body = hub.spawn("no-such-account", wait=False)
    assert status == 403 and "has no Unix account on the hub host" in body["message"], body


def test_the_form_page_refuses_hostile_input_and_starts_a_server(make_hub):
    hub = make_hub().start()
    browser = hub.browser("root")
    status, _, page = browser.request("GET", "/hub/spawn")
    assert status == 200 and "Your Jupyter server on the cluster" in page  # our spawn.html, the hub's page.html
    for name in ("queue", "pe", "slots", "ram", "runtime", "email"):
        assert f'name="{name}"' in page
    assert 'name="project"' not in page and 'name="gpus"' not in page  # not enabled in pillar
    assert re.search(r'<option value="all.q" selected data-free="4" data-load="4 of 4 slots free">\s*'
                     r'all.q: Default queue \(4 of 4 slots free\)</option>', page), page
    form = {"queue": "all.q", "pe": "", "slots": "12", "ram": "2", "runtime": "00:30:00", "email": "x"}
    status, _, page = browser.request("POST", "/hub/spawn", form)
    assert "Error: slots: 12 is out of range; allowed 1-8\nemail: &#39;x&#39; is not an e-mail address" in page
    assert "white-space: pre-line" in page
    assert hub.calls("qsub") == [] and hub.server("root") is None
    form.update(slots="2", pe="smp", email="")
    status, headers, _ = browser.request("POST", "/hub/spawn", form)
    assert status == 302 and "/hub/spawn-pending/root" in headers["Location"]
    hub.wait_for(lambda: (hub.server("root") or {}).get("ready"))
    [job] = hub.jobs()
    assert "#$ -pe smp 2" in (hub.sge / "jobs" / f"{job}.sh").read_text()
    # the next form shows the last choices
    status, _, page = browser.request("GET", "/hub/home")
    assert status == 200


def test_a_refused_immediate_job_ends_the_spawn_with_qsubs_reason(make_hub):
    hub = make_hub().start()
    (hub.sge / "reject").touch()
    started = time.monotonic()
    status, body = hub.spawn("root")
    assert status == 503, body
    assert "Grid Engine refused the job: Your qsub request could not be scheduled" in body["message"]
    assert time.monotonic() - started < 3 and os.listdir(hub.tmp / "srv/secrets") == []


def test_a_job_in_error_state_ends_the_spawn_within_one_poll(make_hub):
    hub = make_hub().start()
    (hub.sge / "eqw").touch()
    started = time.monotonic()
    status, body = hub.spawn("root")
    assert status == 500 and "is in error state (Eqw): " in body["message"], body
    assert "can't open output file" in body["message"]
    assert time.monotonic() - started < 1 + 2  # poll interval 1 s (+ the hub's own work)
    hub.wait_for(lambda: hub.jobs() == [])  # the failed job was deleted, not left in the queue
    assert len(hub.calls("qdel")) == 1


def test_a_job_that_dies_at_start_is_reported_with_its_output(make_hub):
    hub = make_hub().start()
    (hub.sge / "die").touch()
    started = time.monotonic()
    status, body = hub.spawn("root")
    assert status == 500, body
    assert "ended before Jupyter started (exit status 3)" in body["message"]
    assert "ModuleNotFoundError: No module named 'jupyterhub' (simulated)" in body["message"]
    assert time.monotonic() - started < 1 + 2
    assert os.listdir(hub.tmp / "srv/secrets") == []


def test_the_job_can_report_only_its_port_and_failure(make_hub):
    """batchspawner's own handler sets ANY spawner attribute the token holder names: the submit
    command, the exec prefix (the hub would run them). Ours accepts only port and failure."""
    hub = make_hub().start()
    hub.spawn("root")
    [job] = hub.jobs()
    token = hub.server_env(job)["JUPYTERHUB_API_TOKEN"]

    def post(body):
        request = urllib.request.Request(hub.url + "/batchspawner", data=json.dumps(body).encode(),
                                         headers={"Authorization": f"token {token}"}, method="POST")
        try:
            return urllib.request.urlopen(request, timeout=10).status
        except urllib.error.HTTPError as error:
            return error.code

    assert post({"exec_prefix": "touch /tmp/pwned;", "batch_submit_cmd": "id"}) == 400
    assert post({"port": 1}) == 400  # not while the server runs: the route stays
    assert post({"exit_status": "x"}) == 400
    assert not os.path.exists("/tmp/pwned")
    assert hub.server("root")["ready"]
    # what the job says when it ends: the hub marks the server stopped at once (no qstat needed)
    # and deletes what is left of the job; the reporter can only end its own server
    reported = time.monotonic()
    assert post({"exit_status": 140, "output": ""}) == 201
    hub.wait_for(lambda: hub.server("root") is None, timeout=10, step=0.05)
    assert time.monotonic() - reported < 1
    hub.wait_for(lambda: hub.jobs() == [])
    assert set(hub.calls("qdel")) == {f"qdel {job}"}  # (again at each poll until it has left)
    assert "ended outside JupyterHub" in hub.logtext()


def test_restart_keeps_the_session_and_qdel_behind_the_hubs_back_is_noticed(make_hub):
    hub = make_hub().start()
    hub.spawn("root")
    [job] = hub.jobs()
    hub.stop()
    hub.start()
    assert hub.server("root")["ready"] and hub.jobs() == [job], hub.logtext()
    assert "root still running" in hub.logtext()
    os.system(f"SGE_ROOT={hub.sge} {hub.sge}/qdel {job} >/dev/null")  # behind the hub's back
    gone = time.monotonic()
    hub.wait_for(lambda: hub.server("root") is None, timeout=10, step=0.05)
    # -notify: the job hears of its end (SIGUSR2) and tells the hub before Grid Engine kills it
    assert time.monotonic() - gone < 1 + 0.5, hub.logtext()[-3000:]  # (within one poll, 1 s here, anyway)
    assert "reported exit status 140" in hub.logtext()


def test_qstat_calls_per_interval_do_not_grow_with_users(make_hub):
    hub = make_hub().start()
    rates = {}
    for users in (["root"], ["root", "daemon", "bin"]):
        for user in users:
            if hub.server(user) is None if user in rates.get("users", []) else True:
                hub.spawn(user)
        rates["users"] = users
        before = len(hub.calls("qstat"))
        time.sleep(5)
        rates[len(users)] = len(hub.calls("qstat")) - before
    assert all(hub.server(u)["ready"] for u in ("root", "daemon", "bin")), hub.logtext()
    assert 4 <= rates[1] <= 6 and 4 <= rates[3] <= 6, rates  # poll interval 1 s: ~5 calls in 5 s


def test_the_form_shows_what_the_cluster_has_free_from_one_query_per_interval(make_hub):
    hub = make_hub(poll_interval=30).start()
    hub.spawn("daemon")  # one running job takes a slot of the 4
    browser = hub.browser("root")
    for _ in range(3):  # three page views (any users): one look at the cluster
        status, _, page = browser.request("GET", "/hub/spawn")
        assert status == 200
    assert 'all.q: Default queue (3 of 4 slots free)' in page
    assert 'smp: Shared memory, one host (3 of 4 slots free)' in page
    assert 'id="sge-wait-warning"' in page and "const immediate = true;" in page
    looks = [c for c in hub.calls("qstat") if c.startswith("qstat -f")]
    assert looks == ["qstat -f -F slots -xml -u * -r", "qstat -f -F slots -xml -pe smp"], looks
    assert '<div class="form-text">1-8</div>' in page  # the limits are next to the fields


def test_a_request_grid_engine_cannot_start_is_refused_on_the_form_with_its_reason(make_hub):
    hub = make_hub().start()
    (hub.sge / "unfit").touch()
    browser = hub.browser("root")
    form = {"queue": "all.q", "pe": "smp", "slots": "2", "ram": "2", "runtime": "00:30:00", "email": ""}
    status, _, page = browser.request("POST", "/hub/spawn", form)
    assert status == 400, page
    assert ("Grid Engine cannot start this request now: (-l h_vmem=100G) cannot run at host "
            "&#34;127.0.0.1&#34; because it offers only hc:h_vmem=4.000G") in page, page
    assert 'name="slots"' in page  # the form again, with the reason
    assert hub.jobs() == [] and hub.server("root") is None
    [verify] = [c for c in hub.calls("qsub")]  # the check, and no submit
    # checked without -now yes (which makes qsub wait for the scheduler's beat), as -w p
    assert hub.calls("qsub-check") == ["qsub-check -now no -w p"]
    (hub.sge / "unfit").unlink()
    status, headers, _ = browser.request("POST", "/hub/spawn", form)
    assert status == 302, headers
    hub.wait_for(lambda: (hub.server("root") or {}).get("ready"))
    assert len(hub.jobs()) == 1 and len(hub.calls("qsub")) == 3  # check + submit


def test_the_home_page_shows_the_time_left_and_warns_near_the_end(make_hub):
    hub = make_hub(time_left_warning=900).start()
    browser = hub.browser("root")
    hub.spawn("root", {"runtime": "02:00:00"})
    [job] = hub.jobs()
    status, _, page = browser.request("GET", "/hub/home")
    item = re.search(r'<p class="alert (alert-\w+) sge-time-left"[^>]*>\s*<strong class="sge-left">'
                     r'([^<]+)</strong> left: ([^<]+)</p>', page)
    assert item, page
    assert item.group(1) == "alert-info" and item.group(2) in ("2 h 00 min", "1 h 59 min"), item.groups()
    assert item.group(3).startswith(f"Grid Engine stops your server (job {job}) at ")
    hub.api("DELETE", "/users/root/server")
    hub.wait_for(lambda: hub.server("root") is None)
    hub.spawn("root", {"runtime": "00:10:00"})  # less than the warning time
    status, _, page = browser.request("GET", "/hub/home")
    assert '<p class="alert alert-warning sge-time-left"' in page and "Save your work." in page, page


def test_the_user_chooses_jupyterlab_or_the_notebook(make_hub):
    hub = make_hub().start()
    hub.spawn("root", {"ui": "notebook"})
    [job] = hub.jobs()
    assert hub.server_env(job)["JUPYTERHUB_DEFAULT_URL"] == "/tree"
    hub.api("DELETE", "/users/root/server")
    hub.wait_for(lambda: hub.server("root") is None)
    hub.spawn("root", {"ui": "lab"})
    [job] = hub.jobs()
    assert hub.server_env(job)["JUPYTERHUB_DEFAULT_URL"] == "/lab"
    status, body = hub.spawn("daemon", {"ui": "vscode"}, wait=False)
    assert status == 400 and "ui: 'vscode' is not allowed; allowed: lab, notebook" in body["message"], body


def test_with_named_servers_a_user_runs_a_small_and_a_big_server_at_once(make_hub):
    hub = make_hub(config="c.JupyterHub.allow_named_servers = True\n").start()
    hub.api("POST", "/users", {"usernames": ["root"]})
    status, _ = hub.api("POST", "/users/root/server", {"slots": "1"})
    assert status in (201, 202)
    status, body = hub.api("POST", "/users/root/servers/big", {"slots": "4", "pe": "smp"})
    assert status in (201, 202), body
    hub.wait_for(lambda: (hub.server("root") or {}).get("ready") and (hub.server("root", "big") or {}).get("ready"))
    jobs = hub.jobs()
    assert len(jobs) == 2
    scripts = {job: (hub.sge / "jobs" / f"{job}.sh").read_text() for job in jobs}
    big = next(job for job, script in scripts.items() if "#$ -pe smp 4" in script)
    hub.api("DELETE", "/users/root/servers/big")
    hub.wait_for(lambda: hub.server("root", "big") is None)
    assert hub.jobs() == [j for j in jobs if j != big] and hub.server("root")["ready"]


def test_gridengine_spawner_options_it_does_not_use_are_refused_not_ignored(make_hub):
    """The hub loads the spawner by its entry point ("sge", the package installed as the role
    installs it); a batchspawner option SGESpawner does not use stops the spawn with its name."""
    hub = make_hub(config='c.GridengineSpawner.batch_submit_cmd = "sudo -E -u {username} qsub"\n'
                          'c.SGESpawner.req_queue = "all.q"\n').start()
    status, body = hub.spawn("root", wait=False)
    assert status == 500 and hub.jobs() == [], body
    assert "SGESpawner does not use batch_submit_cmd, req_queue" in hub.logtext()


def test_a_starting_server_is_looked_at_often_at_first_and_at_most_once_a_second_later():
    """A server on a quiet node listens within seconds and is noticed within 0.1 s; 50 servers
    starting at once on a busy node take minutes, and the hub's knocks on their ports must not
    take the CPU they need (0.1 s for 2 minutes: 1200 connection attempts per server)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "salt/jupyterhub/files/sgespawner"))
    from sgespawner.spawner import knock_interval

    def knocks(seconds):
        waited, count = 0.0, 0
        while waited < seconds:
            count, waited = count + 1, waited + knock_interval(waited)
        return count

    assert knocks(2) == 20  # every 0.1 s while a quiet node's server comes up
    assert knock_interval(3) < 0.2
    assert knocks(120) < 200 and knock_interval(600) == 1.0
