#!/usr/bin/env python3
"""The benchmark suite: every figure next to its floor, measured in the same run on hosts it boots.

One Debian 12 host (systemd-nspawn, as the integration tests boot them) gets the demo profile: a
Grid Engine cell, this host as its execution host and the hub, sized by pillar so that 50 small
servers fit (slots 60, h_vmem 300G). Users u01..u50 log in through nginx (HTTPS) and start their
servers with the spawn form (POST /hub/spawn, as a browser: the hub asks Grid Engine with
``qsub -w p`` first, then submits); readiness is followed on the progress stream (one connection
per user, as the spawn-pending page does), so the benchmark itself does not load the hub with
polling.

Figures (seconds unless named; written to bench/results/<date>-<label>.json):

- ``apply.first``, ``apply.noop``: the demo profile's first ``state.apply`` on a fresh host, and
  the second one (``apply.noop_changes`` must be 0);
- ``spawn.median``: request to ready, one user, 5 spawns (--quick: 3); ``spawn.floor_qsub`` (``qsub -now yes``
  until the job's first command ran) and ``spawn.floor_server`` (the same Jupyter app started on
  its own until it answers HTTP); ``spawn.ratio`` = median / (floor_qsub + floor_server);
  ``spawn.floor_singleuser`` (the hub's server, ``jupyterhub-singleuser``, started on its own the
  same way) and ``spawn.ratio_singleuser`` = median / (floor_qsub + floor_singleuser): what the
  hub, the spawner and the job add beyond JupyterHub's own server; ``spawn.floor_server_cpu_s`` and
  ``spawn.floor_singleuser_cpu_s``: the CPU seconds each used until it answered;
- ``poll.qstat_per_min.N``: the hub's qstat calls per minute with N servers running;
- ``detect.qdel`` (median of 3, --quick 2; qdel to the hub's notice), ``detect.dying`` (a server that fails
  at start: its death to the error on the user's spawn page; ``detect.dying_request_to_error``
  from the request), ``detect.hrt`` (the run time's end to the hub's notice; Grid Engine's start time has a
  1 s resolution);
- ``burst.N.p50``/``p95`` (request to ready of each of N users pressing Start at once),
  ``burst.N.all_ready``, ``burst.N.wall`` and ``burst.N.floor`` (N bare servers started as jobs at
  once on the same cell; ``burst.N.floor_p50`` their median start), ``burst.N.ratio`` = wall / floor;
  ``burst.N.floor_singleuser`` (the same with the hub's server on its own) and
  ``burst.N.ratio_singleuser`` = wall / floor_singleuser;
  with ``--repeat K`` the burst and its floor run K times, alternating, and each figure is the median
  (``raw.burst.N.runs``: every run; all_ready: the worst); ``burst.N.hub_cpu_s`` (the hub
  process's CPU seconds during the burst), ``burst.N.machine_cpu_s`` and
  ``burst.N.floor_machine_cpu_s`` (the whole machine's busy CPU seconds during the burst and during
  its floor: where a CPU-bound burst's extra time goes; ``raw.burst.N.unit_cpu_s`` and
  ``floor_unit_cpu_s``: the same per systemd unit of the host, e.g. gridengine-exec.service = the
  jobs); ``burst_postgresql.N.*`` the same with
  ``database:backend: postgresql`` (once, against the median floor);
- ``hub.rss_mb``, ``hub.cpu_s_per_min`` (the hub process with N idle servers, one minute),
  ``hub.requests_per_min`` and ``hub.request_s_per_min`` (the requests it answered in that minute
  and the time it spent on them, from its own request log; ``raw.hub.window``: per route, and the
  qstat calls of the window),
  ``proxy.rss_mb``, ``server.rss_mb`` (one idle server's job: its processes' RSS);
- ``conda.noop``: a no-op ``conda_env.present`` of a 300-package env with its lock
  (bench/conda_noop.py).

    sudo bench/run.py [--quick] [--label NAME]   # full: ~35 min; --quick: < 10 min (N = 1, 20)

JHSALT_TEST_PREFIX / JHSALT_TEST_SUBNET apply as for the integration tests (default here: jhb,
10.250.0). bench/plot.py draws the PNGs of docs/PERFORMANCE.md from a results file.
"""

import argparse
import concurrent.futures
import datetime
import html
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support import hosts  # noqa: E402
from tests.support.webclient import HubUser  # noqa: E402

QSTAT_LOG = "/srv/jupyterhub/state/qstat-calls.log"
QSTAT_COUNTING = f"""#!/bin/sh
# benchmark only: count the hub's qstat calls, then run the real one
echo "$(date +%s.%N) $*" >> {QSTAT_LOG}
exec /usr/lib/gridengine/qstat "$@"
"""
# the floors submit with the binary the hub runs (the demo profile's sge:qsub), not Debian's wrapper
FLOOR_ENV = {"QSUB": "/usr/lib/gridengine/qsub", "SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}
FLOOR_QSUB = r"""
import os, re, subprocess, sys, time
mark = os.path.expanduser("~/.floor-started")
started, wall = time.monotonic(), time.time()
job = subprocess.run([os.environ.get("QSUB", "qsub"), "-now", "yes", "-terse", "-j", "y", "-o", "/dev/null", "-S", "/bin/sh"],
                     input=f"date +%s.%N > {mark}; sleep 60", capture_output=True, text=True,
                     check=True).stdout.strip()
while not os.path.exists(mark) or not open(mark).read().strip():
    time.sleep(0.005)
print(float(open(mark).read()) - wall)  # the job's first command ran (one clock: same host)
os.unlink(mark)
subprocess.run(["qdel", job], capture_output=True)
"""
SERVER_ARGV = ["{env}/bin/jupyter-lab", "--no-browser", "--ServerApp.ip=127.0.0.1", "--ServerApp.port={port}",
               "--IdentityProvider.token=x"]
SERVER_URL = "http://127.0.0.1:{port}/api/status?token=x"


def singleuser_argv(env, user):
    """The hub's server (``jupyterhub-singleuser``: JupyterLab + JupyterHub's extension) started
    on its own, with the environment the hub gives it (a token the hub does not know: it answers
    403 to anyone, which is an answer; activity reports off, so it sends the hub nothing)."""
    variables = {
        "JUPYTERHUB_API_TOKEN": "floor-not-a-token", "JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api",
        "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_CLIENT_ID": f"jupyterhub-user-{user}", "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVER_NAME": "", "JUPYTERHUB_SERVICE_PREFIX": f"/user/{user}/",
        "JUPYTERHUB_SERVICE_URL": f"http://127.0.0.1:{{port}}/user/{user}/",
        "JUPYTERHUB_OAUTH_CALLBACK_URL": f"/user/{user}/oauth_callback", "JUPYTERHUB_DEFAULT_URL": "/lab",
        "JUPYTERHUB_OAUTH_SCOPES": f'["access:servers!user={user}"]',
        "JUPYTERHUB_OAUTH_ACCESS_SCOPES": f'["access:servers!user={user}"]',
        "JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": "[]", "JUPYTERHUB_COOKIE_OPTIONS": '{"secure": true}',
        "JUPYTERHUB_ACTIVITY_URL": ""}
    return ["env", *(f"{k}={v}" for k, v in variables.items()), f"{env}/bin/jupyterhub-singleuser"]


FLOOR_SERVER = r"""
import json, os, subprocess, sys, time, urllib.error, urllib.request
argv, url = json.loads(sys.argv[1]), sys.argv[2]
started = time.monotonic()
server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=os.path.expanduser("~"))
while True:
    try:
        urllib.request.urlopen(url, timeout=5)
        break
    except urllib.error.HTTPError:  # an answer all the same (the hub's server refuses unknown callers)
        break
    except OSError:
        time.sleep(0.01)
wall = time.monotonic() - started
def cpu(pid):  # its own and its ended children's, and those of children still running
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()
    own = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
    return own + sum(cpu(int(k)) for k in kids)
print(json.dumps({"wall": wall, "cpu": cpu(server.pid)}))
server.terminate()
server.wait()
"""
FLOOR_BURST = r"""
import concurrent.futures, json, os, shlex, subprocess, sys, time, urllib.error, urllib.request
argv, ports, url = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
def one(port):
    script = "exec " + shlex.join(a.replace("{port}", str(port)) for a in argv)
    qsub = subprocess.run([os.environ.get("QSUB", "qsub"), "-now", "yes", "-terse", "-j", "y", "-o", "/dev/null", "-S", "/bin/sh",
                           "-l", "h_vmem=2G"], input=script, capture_output=True, text=True)
    if qsub.returncode:  # a refused submit is this floor's failure, as it would be a spawn's
        return None, None, (qsub.stdout + qsub.stderr).strip()[-300:]
    while True:
        try:
            urllib.request.urlopen(url.replace("{port}", str(port)), timeout=5)
        except urllib.error.HTTPError:  # an answer all the same
            pass
        except OSError:
            time.sleep(0.05)
            continue
        return qsub.stdout.strip(), time.monotonic(), None
started = time.monotonic()
with concurrent.futures.ThreadPoolExecutor(len(ports)) as pool:
    done = list(pool.map(one, ports))
ok = [(j, t) for j, t, _ in done if j]
print(json.dumps({"wall": max(t for _, t in ok) - started, "jobs": [j for j, _ in ok],
                  "ready": sorted(round(t - started, 3) for _, t in ok),
                  "failures": [f for _, _, f in done if f]}))
"""


UNIT_CPU = r"""
import glob, json
usage = {}
for path in glob.glob("/sys/fs/cgroup/**/system.slice/*.service/cpu.stat", recursive=True):
    for line in open(path):
        if line.startswith("usage_usec"):
            usage[path.split("/")[-2]] = int(line.split()[1]) / 1e6
print(json.dumps(usage))
"""


PARTS = ("spawn", "detect", "poll", "burst", "postgresql", "conda")
PHASES = [  # where a spawn's time goes, from the hub's journal: (name, pattern with {user})
    ("verify started", r"COMMAND=\S*/qsub -terse"),  # sudo's line of the -w p check (USER={user})
    ("submitting", r"{user}: Submitting the job"), ("qsub returned", r"{user}: Job \d+ submitted"),
    ("seen running", r"{user}: Job \d+ is running on"), ("port reported", r"POST /hub/api/batchspawner \({user}@"),
    ("listening", r"{user}: Jupyter is up on"), ("ready", r"Server {user} is ready|User {user} took")]


REQUEST_LOG = re.compile(r"\b(?P<status>[1-5]\d\d) (?P<method>[A-Z]+) (?P<uri>\S+)(?: -> \S+)? \(\S*\) (?P<ms>[\d.]+)ms$")


def hub_requests(journal, users):
    """JupyterHub's request log lines (``200 POST /hub/api/users/u01/activity (u01@10.0.0.2) 12.34ms``)
    grouped by method, route and status (user names as ``{user}``, no query): count and milliseconds,
    the most expensive first."""
    names = re.compile(r"/(" + "|".join(map(re.escape, users)) + r")(?=/|$)") if users else None
    routes = {}
    for line in journal.splitlines():
        match = REQUEST_LOG.search(line)
        if not match:
            continue
        uri = match["uri"].split("?", 1)[0]
        uri = names.sub("/{user}", uri) if names else uri
        route = routes.setdefault(f"{match['method']} {uri} {match['status']}", {"count": 0, "ms": 0.0})
        route["count"] += 1
        route["ms"] += float(match["ms"])
    return {key: {"count": r["count"], "ms": round(r["ms"], 1)}
            for key, r in sorted(routes.items(), key=lambda kv: -kv[1]["ms"])}


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def median(values):
    return round(statistics.median(values), 3)


def percentile(values, fraction):
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))], 3)


class Bench:
    def __init__(self, args):
        self.args, self.results, self.raw = args, {}, {}
        self.users = [f"u{i:02d}" for i in range(1, max(args.sizes) + 1)]
        self.net = self.host = None
        self.sessions = {}

    # ------------------------------------------------------------------------------ the host
    def pillar(self, backend="sqlite"):
        slots = max(self.args.sizes) + 10
        return {"jupyterhub": {
            "access": {"members": self.users},
            "database": {"backend": backend},
            "sge": {
                "qstat": "/usr/local/bin/qstat-counting",
                "cell_setup": {"exec_host": {"slots": slots, "h_vmem": "300G"},
                               "queues": {"all.q": {"slots": slots}}}},
            # the form's limits of the demo profile come from the host's cores; the benchmark
            # asks for 1 slot and 2G like a class would
        }}

    def boot(self):
        prefix = os.environ.get("JHSALT_TEST_PREFIX", "jhb")
        subnet = os.environ.get("JHSALT_TEST_SUBNET", "10.250.0")
        self.net = hosts.TestNetwork(prefix, subnet)
        self.net.uv_cache = None  # apply.first downloads the hub env as a fresh host does
        self.net.start()
        log("booting the bench host")
        self.host = self.net.add_host("bench", hosts.ensure_template(), shape="loopback")
        host = self.host
        host.run(["rm", "-f", hosts.UNSAFE_IO])  # dpkg syncs its files as on a real host (apply.first)
        host.put_file("/usr/local/bin/qstat-counting", QSTAT_COUNTING, mode=0o755)
        lines = "".join(f"{u}:{u}-pw-bench\n" for u in self.users)
        host.run("for u in " + " ".join(self.users) + "; do useradd --create-home --shell /bin/bash $u; done")
        host.run(["chpasswd"], input=lines)
        host.salt_call("grains.setval", "jupyterhub_profile", "demo", check=True)

    def apply(self):
        log("first state.apply (demo profile)")
        first = self.host.state_apply(pillar=self.pillar())
        assert first.ok, str(first)
        second = self.host.state_apply(pillar=self.pillar())
        assert second.ok, str(second)
        self.results.update({"apply.first": round(first.duration, 1), "apply.noop": round(second.duration, 1),
                             "apply.noop_changes": len(second.changed())})
        self.worker_env = self.find_worker_env()
        log(f"apply.first {first.duration:.1f} s, apply.noop {second.duration:.1f} s "
            f"({len(second.changed())} changes)")

    def find_worker_env(self):
        for candidate in ("/opt/jupyterhub/venv", "/opt/jupyterhub/env", "/opt/conda/envs/jupyterhub"):
            if self.host.run(["test", "-x", f"{candidate}/bin/jupyter-lab"], check=False).returncode == 0:
                return candidate
        raise RuntimeError("no jupyter-lab in the worker env")

    def login(self, user):
        if user not in self.sessions:
            def logged_in():  # nginx answers 503 while the hub (re)starts
                session = HubUser(self.host.ip, user, f"{user}-pw-bench")
                if session.login_response.status_code in (502, 503):
                    return None
                assert session.logged_in, (user, session.login_response.status_code)
                return session
            self.sessions[user] = hosts.wait_for(logged_in, timeout=120, interval=1, what=f"{user}'s login")
        return self.sessions[user]

    # ------------------------------------------------------------------------- one user's server
    def spawn(self, user, **fields):
        """A user fills in the form and presses Start: (seconds to ready, None) or (seconds to the
        failure, its message)."""
        session = self.login(user)
        form = {"queue": "all.q", "pe": "", "slots": "1", "ram": "2", "runtime": "01:00:00", "email": "",
                "ui": "lab", **fields}
        xsrf = session.session.cookies.get("_xsrf", path="/hub/")
        started = time.monotonic()
        response = session.session.post(f"{session.base}/hub/spawn", data={**form, "_xsrf": xsrf},
                                        allow_redirects=False, timeout=600)
        if response.status_code != 302:  # the form again, with the reason
            match = re.search(r'<p class="spawn-error-msg[^"]*">\s*(.*?)\s*</p>', response.text, re.S)
            return time.monotonic() - started, html.unescape(match.group(1)) if match else response.text[-500:]
        return self.follow_progress(session, user, started)

    @staticmethod
    def follow_progress(session, user, started):
        xsrf = session.session.cookies.get("_xsrf", path="/hub/")
        with session.session.get(f"{session.base}/hub/api/users/{user}/server/progress", stream=True,
                                 headers={"X-XSRFToken": xsrf} if xsrf else {}, timeout=600) as stream:
            for line in stream.iter_lines(decode_unicode=True):
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("ready"):
                    return time.monotonic() - started, None
                if event.get("failed"):
                    return time.monotonic() - started, event.get("message")
        server = session.server()
        if server and server.get("ready"):
            return time.monotonic() - started, None
        return time.monotonic() - started, "the progress stream ended without ready"

    def phases(self, since, users, origin):
        """Each user's spawn phases (seconds after ``origin``, epoch) from the hub's journal."""
        journal = self.host.run(["journalctl", "--no-pager", "-o", "short-unix", "--since",
                                 f"@{since:.0f}"]).stdout.splitlines()
        found = {}
        for user in users:
            times = {}
            for name, pattern in PHASES:
                if name == "verify started":
                    regex = re.compile(rf"USER={user} ; {pattern}")
                else:
                    regex = re.compile(pattern.format(user=user))
                for line in journal:
                    if name not in times and regex.search(line):
                        times[name] = round(float(line.split()[0]) - origin, 3)
            found[user] = times
        return found

    def stop(self, user):
        session = self.login(user)
        session.api("DELETE", f"/users/{user}/server")

    def wait_gone(self, user, timeout=120, step=0.05):
        session, deadline = self.login(user), time.monotonic() + timeout
        while session.server() is not None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{user}'s server is still there after {timeout} s")
            time.sleep(step)
        return time.monotonic()

    def jobs(self, user="*"):
        out = self.host.run(["qstat", "-u", user]).stdout.splitlines()[2:]
        return [line.split()[0] for line in out]

    def wait_empty_queue(self, timeout=180):
        hosts.wait_for(lambda: not self.jobs(), timeout=timeout, interval=1, what="an empty queue")
        time.sleep(3)  # the slots of a job that ended are free again only after a moment

    def qstat_calls(self):
        out = self.host.run(["sh", "-c", f"cat {QSTAT_LOG} 2>/dev/null | wc -l"]).stdout.strip()
        return int(out or 0)

    def qstat_per_min(self, n):
        seconds = self.args.window
        time.sleep(5)  # the spawns' faster polling has settled
        before = self.qstat_calls()
        time.sleep(seconds)
        rate = (self.qstat_calls() - before) * 60 / seconds
        self.results[f"poll.qstat_per_min.{n}"] = round(rate, 1)
        log(f"qstat calls per minute with {n} servers: {rate:.1f}")

    # ---------------------------------------------------------------------------- the figures
    def spawn_and_floors(self):
        user, latencies, phases = self.users[0], [], []
        repeat = 3 if self.args.quick else 5
        for _ in range(repeat):
            since = time.time()
            seconds, failure = self.spawn(user)
            assert failure is None, failure
            latencies.append(seconds)
            phases.append(self.phases(since - 1, [user], since)[user])
            self.stop(user)
            self.wait_gone(user)
            self.wait_empty_queue()
        qsub = [float(self.host.run(["python3", "-c", FLOOR_QSUB], user=self.users[1], env=FLOOR_ENV).stdout)
                for _ in range(repeat)]
        floors = {}
        for kind in ("lab", "singleuser"):  # the bare server, and the hub's server on its own
            floors[kind] = []
            for i in range(repeat):
                argv, url = self.server_command(kind, self.users[1], 18800 + i)
                floors[kind].append(json.loads(self.host.run(["python3", "-c", FLOOR_SERVER, json.dumps(argv), url],
                                                             user=self.users[1]).stdout))
        server = [f["wall"] for f in floors["lab"]]
        self.wait_empty_queue()
        # what the hub's server (jupyterhub-singleuser: JupyterLab + the hub's extension) imports
        # more than the bare one: the part of the server start that is the hub's own
        python = f"{self.worker_env}/bin/python"
        imports = {}
        for name, modules in (("lab", "jupyterlab.labapp"),
                              ("lab_singleuser", "jupyterlab.labapp, jupyterhub.singleuser.extension")):
            code = f"import time; t = time.perf_counter(); import {modules}; print(time.perf_counter() - t)"
            imports[name] = median([float(self.host.run([python, "-c", code], user=self.users[1]).stdout)
                                    for _ in range(3)])
        self.results["spawn.import_lab"] = imports["lab"]
        self.results["spawn.import_singleuser_extra"] = round(imports["lab_singleuser"] - imports["lab"], 3)
        self.raw.update({"spawn.all": [round(x, 3) for x in latencies], "spawn.phases": phases,
                         "spawn.floor_qsub.all": qsub,
                         "spawn.floor_server.all": server})
        self.results.update({"spawn.median": median(latencies), "spawn.floor_qsub": median(qsub),
                             "spawn.floor_server": median(server)})
        self.results["spawn.ratio"] = round(self.results["spawn.median"] / (median(qsub) + median(server)), 2)
        singleuser = [f["wall"] for f in floors["singleuser"]]
        self.raw["spawn.floor_singleuser.all"] = singleuser
        self.results.update({
            "spawn.floor_singleuser": median(singleuser),
            "spawn.ratio_singleuser": round(self.results["spawn.median"] / (median(qsub) + median(singleuser)), 2),
            "spawn.floor_server_cpu_s": median([f["cpu"] for f in floors["lab"]]),
            "spawn.floor_singleuser_cpu_s": median([f["cpu"] for f in floors["singleuser"]])})
        log(f"spawn {self.results['spawn.median']} s vs floors {median(qsub)} + {median(server)} s: "
            f"ratio {self.results['spawn.ratio']}; against the hub's server on its own "
            f"({median(singleuser)} s): {self.results['spawn.ratio_singleuser']}")

    def detection(self):
        user = self.users[0]
        times = []
        for _ in range(2 if self.args.quick else 3):
            assert self.spawn(user)[1] is None
            time.sleep(2)
            [job] = self.jobs(user)
            deleted = time.monotonic()
            self.host.run(["qdel", job], user=user)
            times.append(self.wait_gone(user) - deleted)
            self.wait_empty_queue()
        self.raw["detect.qdel.all"] = [round(t, 3) for t in times]
        self.results["detect.qdel"] = median(times)

        # a server that dies at start: its config says when, then exits (one clock: same host)
        config = f"/home/{user}/.jupyter/jupyter_server_config.py"
        self.host.put_file(config, 'import sys, time\nprint(f"broken config (bench), dying at {time.time()}")\n'
                           'sys.exit(3)\n', owner=user)
        seconds, failure = self.spawn(user)
        noticed = time.time()
        self.host.run(["rm", config])
        assert failure and "exit status 3" in failure, failure
        died = float(re.findall(r"dying at ([0-9.]+)", failure)[-1])
        self.results["detect.dying"] = round(noticed - died, 3)
        self.results["detect.dying_request_to_error"] = round(seconds, 3)
        self.wait_gone(user)
        self.wait_empty_queue()

        runtime = 30
        assert self.spawn(user, runtime=f"00:00:{runtime}")[1] is None
        [job] = self.jobs(user)
        xml = self.host.run(["qstat", "-j", job, "-xml"]).stdout
        start = int(re.search(r"<JAT_start_time>(\d+)</JAT_start_time>", xml).group(1))
        self.wait_gone(user, timeout=runtime + 90, step=0.1)
        self.results["detect.hrt"] = round(time.time() - (start + runtime), 2)
        self.wait_empty_queue()
        log(f"detect: qdel {times}, dying {self.results['detect.dying']}, h_rt {self.results['detect.hrt']}")

    def burst(self, n, key="burst"):
        users = self.users[:n]
        for user in users:
            self.login(user)
        barrier = threading.Barrier(n)
        timeline = {}

        def press_start(user):
            barrier.wait()
            submitted = time.monotonic()
            seconds, failure = self.spawn(user)
            timeline[user] = (submitted, submitted + seconds, failure)

        log(f"{key} of {n}")
        since = time.time() - 1
        hub_cpu, machine_cpu, units = self.hub_cpu()[0], self.machine_cpu(), self.unit_cpu()
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            list(pool.map(press_start, users))
        self.raw[f"{key}.{n}.unit_cpu_s"] = self.unit_cpu(since=units)
        self.results[f"{key}.{n}.hub_cpu_s"] = round(self.hub_cpu()[0] - hub_cpu, 1)
        self.results[f"{key}.{n}.machine_cpu_s"] = round(self.machine_cpu() - machine_cpu, 1)
        first = min(t[0] for t in timeline.values())
        origin = time.time() - (time.monotonic() - first)  # the first request, on the epoch clock
        self.raw[f"{key}.{n}.phases"] = self.phases(since, users, origin)
        ready = [t[1] - t[0] for t in timeline.values() if t[2] is None]
        failures = [t[2] for t in timeline.values() if t[2] is not None]
        wall = max(t[1] for t in timeline.values()) - first
        self.raw[f"{key}.{n}.timeline"] = {u: [round(a - first, 3), round(b - first, 3), f]
                                           for u, (a, b, f) in sorted(timeline.items())}
        self.results.update({f"{key}.{n}.all_ready": len(ready), f"{key}.{n}.wall": round(wall, 2),
                             f"{key}.{n}.p50": percentile(ready, 0.5) if ready else None,
                             f"{key}.{n}.p95": percentile(ready, 0.95) if ready else None})
        log(f"{key} {n}: {len(ready)} ready, wall {wall:.1f} s, p50 {self.results[f'{key}.{n}.p50']}, "
            f"p95 {self.results[f'{key}.{n}.p95']}; failures: {failures[:3]}")
        return users

    def stop_all(self, users):
        for user in users:
            self.stop(user)
        for user in users:
            self.wait_gone(user, timeout=300, step=0.5)
        self.wait_empty_queue(timeout=300)

    def server_command(self, kind, user, port):
        """(argv, URL) of a bare JupyterLab ("lab") or of the hub's server on its own
        ("singleuser"), with ``{port}`` left in when ``port`` is None."""
        argv = ([a.replace("{env}", self.worker_env) for a in SERVER_ARGV] if kind == "lab"
                else singleuser_argv(self.worker_env, user))
        url = SERVER_URL if kind == "lab" else f"http://127.0.0.1:{{port}}/user/{user}/api/status"
        if port is None:
            return argv, url
        return [a.replace("{port}", str(port)) for a in argv], url.replace("{port}", str(port))

    def burst_floor(self, n, key="burst", kind="lab"):
        """N servers started as jobs at once, straight from qsub: bare JupyterLabs (the floor of
        ``burst.N.ratio``) or, with kind="singleuser", the hub's server on its own (``_singleuser``
        figures: what the burst costs beyond JupyterHub's single-user server)."""
        user = self.users[-1]
        argv, url = self.server_command(kind, user, None)
        ports = json.dumps([19000 + i for i in range(n)])
        suffix = "" if kind == "lab" else "_singleuser"
        machine_cpu, units = self.machine_cpu(), self.unit_cpu()
        out = self.host.run(["python3", "-c", FLOOR_BURST, json.dumps(argv), ports, url], user=user, env=FLOOR_ENV,
                            timeout=900).stdout
        floor = json.loads(out)
        self.results[f"{key}.{n}.floor{suffix}_machine_cpu_s"] = round(self.machine_cpu() - machine_cpu, 1)
        self.raw[f"{key}.{n}.floor{suffix}_unit_cpu_s"] = self.unit_cpu(since=units)
        self.host.run(["qdel", *floor["jobs"]], user=user, check=False)
        self.wait_empty_queue(timeout=300)
        self.results[f"{key}.{n}.floor{suffix}"] = round(floor["wall"], 2)
        self.results[f"{key}.{n}.floor{suffix}_p50"] = percentile(floor["ready"], 0.5)
        self.raw[f"{key}.{n}.floor{suffix}_ready"] = floor["ready"]
        self.results[f"{key}.{n}.floor{suffix}_all_ready"] = len(floor["ready"])
        if floor["failures"]:
            self.raw[f"{key}.{n}.floor{suffix}_failures"] = floor["failures"]
            log(f"{key} {n}: floor{suffix}: {len(floor['failures'])} submits refused, e.g. {floor['failures'][0]}")
        self.results[f"{key}.{n}.ratio{suffix}"] = round(self.results[f"{key}.{n}.wall"] / floor["wall"], 2)
        log(f"{key} {n}: floor{suffix} {floor['wall']:.1f} s (p50 {self.results[f'{key}.{n}.floor{suffix}_p50']}), "
            f"ratio{suffix} {self.results[f'{key}.{n}.ratio{suffix}']}")

    def hub_cpu(self):
        """(CPU seconds of the hub process so far, its RSS in MB)"""
        pid = self.host.run(["systemctl", "show", "-p", "MainPID", "--value", "jupyterhub"]).stdout.strip()
        stat = self.host.run(["cat", f"/proc/{pid}/stat"]).stdout.rsplit(")", 1)[1].split()
        rss = int(re.search(r"VmRSS:\s+(\d+)", self.host.read_file(f"/proc/{pid}/status")).group(1))
        return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK"), rss / 1024

    def unit_cpu(self, since=None):
        """CPU seconds each systemd unit of the host has used so far (its cgroup's usage_usec:
        exited processes included), or since the snapshot ``since`` (units that used >= 0.1 s):
        gridengine-exec.service holds the jobs, jupyterhub.service the hub and the sudo/qsub it runs."""
        usage = json.loads(self.host.run(["python3", "-c", UNIT_CPU]).stdout)
        if since is None:
            return usage
        return {unit: round(seconds - since.get(unit, 0), 1) for unit, seconds in usage.items()
                if seconds - since.get(unit, 0) >= 0.1}

    @staticmethod
    def machine_cpu():
        """CPU seconds the whole machine has used (busy time, all cores: /proc/stat)"""
        with open("/proc/stat") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
        return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait

    def hub_cost(self, n):
        sample = self.hub_cpu

        time.sleep(10)
        cpu0, _ = sample()
        since, qstat0 = time.time(), self.qstat_calls()
        time.sleep(self.args.window)
        cpu1, rss = sample()
        until, qstat1 = time.time(), self.qstat_calls()
        per_min = 60 / self.args.window
        self.results["hub.servers"] = n
        self.results["hub.rss_mb"] = round(rss, 1)
        self.results["hub.cpu_s_per_min"] = round((cpu1 - cpu0) * per_min, 2)
        # where that CPU goes: the requests the hub answered in the window (its own request log:
        # route, count, the milliseconds it spent on each) and the polls it made
        journal = self.host.run(["journalctl", "-u", "jupyterhub", "--no-pager", "-o", "cat",
                                 "--since", f"@{since:.3f}", "--until", f"@{until:.3f}"]).stdout
        routes = hub_requests(journal, self.users)
        self.raw["hub.window"] = {"seconds": self.args.window, "cpu_s": round(cpu1 - cpu0, 2),
                                  "qstat_calls": qstat1 - qstat0, "requests": routes}
        self.results["hub.requests_per_min"] = round(sum(r["count"] for r in routes.values()) * per_min, 1)
        self.results["hub.request_s_per_min"] = round(sum(r["ms"] for r in routes.values()) / 1000 * per_min, 2)
        log(f"hub window: {self.results['hub.requests_per_min']} requests/min taking "
            f"{self.results['hub.request_s_per_min']} s/min, {qstat1 - qstat0} qstat calls; "
            + ", ".join(f"{route} x{r['count']} {r['ms']:.0f} ms" for route, r in routes.items()))
        proxy = self.host.run("ps -C node -o rss= | awk '{s+=$1} END {print s/1024}'").stdout.strip()
        self.results["proxy.rss_mb"] = round(float(proxy or 0), 1)
        one = self.host.run(f"ps -u {self.users[0]} -o rss= | awk '{{s+=$1}} END {{print s/1024}}'").stdout.strip()
        self.results["server.rss_mb"] = round(float(one or 0), 1)
        log(f"hub with {n} idle servers: {rss:.0f} MB RSS, {self.results['hub.cpu_s_per_min']} CPU s/min; "
            f"one server {self.results['server.rss_mb']} MB")

    def conda(self):
        sys.path.insert(0, str(REPO / "bench"))
        import conda_noop

        numbers = conda_noop.measure(packages=300 if not self.args.quick else 100, repeat=3)
        self.results["conda.noop"] = round(numbers["noop_locked"], 3)
        self.raw["conda"] = numbers
        log(f"conda no-op apply: {self.results['conda.noop']} s")

    # ------------------------------------------------------------------------------- the run
    def run(self):
        sizes = self.args.sizes
        try:
            only = self.args.only
            self.boot()
            self.apply()
            if "spawn" in only:
                self.spawn_and_floors()
            if "detect" in only:
                self.detection()
            if "poll" in only:
                user = self.users[0]
                assert self.spawn(user)[1] is None
                self.qstat_per_min(1)
                self.stop(user)
                self.wait_gone(user)
                self.wait_empty_queue()
            for n in sizes if "burst" in only else ():
                runs = []
                for run in range(self.args.repeat):  # hub burst, then its floor, alternating
                    users = self.burst(n)
                    if run == 0:
                        self.qstat_per_min(n)
                        if n == max(sizes):
                            self.hub_cost(n)
                    self.stop_all(users)
                    self.burst_floor(n)
                    self.burst_floor(n, kind="singleuser")
                    runs.append({key.split(".", 2)[2]: value for key, value in self.results.items()
                                 if key.startswith(f"burst.{n}.")})
                    runs[-1]["timeline"] = self.raw[f"burst.{n}.timeline"]
                if len(runs) > 1:  # each figure's median over the runs; all_ready: the worst run
                    self.raw[f"burst.{n}.runs"] = runs
                    for key in ("wall", "p50", "p95", "floor", "floor_p50", "ratio", "hub_cpu_s", "machine_cpu_s",
                                "floor_machine_cpu_s", "floor_singleuser", "floor_singleuser_p50", "ratio_singleuser",
                                "floor_singleuser_machine_cpu_s"):
                        self.results[f"burst.{n}.{key}"] = median([r[key] for r in runs if r[key] is not None])
                    self.results[f"burst.{n}.all_ready"] = min(r["all_ready"] for r in runs)
                    log(f"burst {n}, median of {len(runs)} runs: ratio {self.results[f'burst.{n}.ratio']} "
                        f"(runs: {', '.join(str(r['ratio']) for r in runs)})")
            if not self.args.quick and "postgresql" in only:
                log("database: PostgreSQL")
                switched = self.host.state_apply(pillar=self.pillar("postgresql"))
                assert switched.ok, str(switched)
                self.sessions.clear()  # a new database: log in again
                for n in [size for size in sizes if size >= 20]:
                    users = self.burst(n, key="burst_postgresql")
                    self.stop_all(users)
                    self.results[f"burst_postgresql.{n}.ratio"] = round(
                        self.results[f"burst_postgresql.{n}.wall"] / self.results[f"burst.{n}.floor"], 2)
            if "conda" in only:
                self.conda()
        finally:
            if self.net and not self.args.keep:
                self.net.close()

    def write(self):
        out_dir = pathlib.Path(self.args.out)
        out_dir.mkdir(parents=True, exist_ok=True)
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        meta = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "label": self.args.label, "quick": self.args.quick, "commit": commit,
                "machine": {"cores": os.cpu_count(),
                            "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                            "load_before": self.load_before}}
        path = out_dir / f"{datetime.date.today().isoformat()}-{self.args.label}.json"
        path.write_text(json.dumps({"meta": meta, "results": self.results, "raw": self.raw}, indent=1) + "\n")
        return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 1 and 20, 30-s windows, no PostgreSQL run (< 10 min)")
    parser.add_argument("--label", default=None, help="results file name: <date>-<label>.json")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    parser.add_argument("--keep", action="store_true", help="leave the host running (debugging)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run each burst and its floor this many times, alternating; figures are medians")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {','.join(PARTS)}")
    parser.add_argument("--sizes", default=None, help="burst sizes, e.g. 20,50 (default 10,20,50; --quick 20)")
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    if args.only - set(PARTS):
        parser.error(f"--only: {', '.join(sorted(args.only - set(PARTS)))}: not one of {', '.join(PARTS)}")
    args.sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else [20] if args.quick else [10, 20, 50]
    args.window = 30 if args.quick else 60
    args.label = args.label or ("quick" if args.quick else "full")
    if os.geteuid() != 0:
        sys.exit("bench/run.py boots systemd-nspawn hosts: run it as root")
    bench = Bench(args)
    bench.load_before = os.getloadavg()[0]
    started = time.monotonic()
    try:
        bench.run()
    finally:
        bench.results["bench.seconds"] = round(time.monotonic() - started)
        path = bench.write()
        print(json.dumps(bench.results, indent=1))
        log(f"written: {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")


if __name__ == "__main__":
    main()
