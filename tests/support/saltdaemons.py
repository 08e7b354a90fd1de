"""Real Salt daemons on booted test hosts (tests/support/hosts.py): a salt-master and salt-minions as
systemd units, run from the Salt venv the template already has (/opt/salt-jupyterhub/venv), and
salt-ssh from the master host.

    master = SaltMaster(salt_host).start()          # file_roots/pillar_roots: the formula + /srv/pillar
    master.put_pillar("hosts/hub01.sls", "roles: [jupyterhub-hub]\\n")
    Minion(hub01, master).start(); master.accept("hub01")
    run = master.orchestrate("orch.jupyterhub")     # SaltRun: .ok, .steps(), .changed_states()
"""

import json
import re
import time

from tests.support.hosts import FORMULA, wait_for

VENV_BIN = "/opt/salt-jupyterhub/venv/bin"
PILLAR = "/srv/pillar"  # the site's own pillar on the master, after the formula's pillar/

UNIT = """[Unit]
Description=Salt {role} (test host, Salt venv)
After=network-online.target
Wants=network-online.target
[Service]
ExecStart={venv}/salt-{role}
KillMode=process
Restart=on-failure
[Install]
WantedBy=multi-user.target
"""

MASTER_CONF = f"""# the formula as it is (top files, orch, _modules/_states via salt/_modules) + the site's pillar
file_roots:
  base:
    - {FORMULA}/salt
pillar_roots:
  base:
    - {FORMULA}/pillar
    - {PILLAR}
"""


# CPython 3.11's import lock can fail a Salt client thread before anything is published: a
# re-entrant import (a finalizer importing while the thread waits for a module lock) deletes the
# thread's entry in importlib._bootstrap._blocking_on, and the outer acquire() raises
# KeyError(<thread id>) (python/cpython#91351, fixed in 3.12). Salt reports it as
# "SaltClientError: <thread id>". Seen once in ~20 suite runs, in the orchestration's first step.
IMPORT_LOCK_RACE = re.compile(r'importlib\._bootstrap>\\?", line \d+, in acquire(?:\s|\\n)+KeyError: \d+')


def host_pillar(profile, roles, **jupyterhub):
    """A host's pillar file on the master: its roles, its profile, its own settings."""
    text = f"roles: {json.dumps(roles)}\n"
    if profile:
        text = f"include:\n  - jupyterhub.{profile}\n" + text
    if jupyterhub:
        text += "jupyterhub: " + json.dumps(jupyterhub) + "\n"
    return text


class SaltRun:
    """A salt / salt-run / salt-ssh call on the master with --out=json."""

    def __init__(self, proc, duration, cmd):
        self.returncode, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        self.duration, self.cmd = duration, cmd
        self.data = None
        lines = self.stdout.splitlines()
        for start in [i for i, line in enumerate(lines) if line.startswith("{")]:
            try:
                self.data = json.loads("\n".join(lines[start:]))
                break
            except ValueError:
                continue

    def __str__(self):
        return (f"{' '.join(self.cmd)} -> rc={self.returncode} in {self.duration:.1f}s\n"
                f"--- stdout ---\n{self.stdout[-12000:]}\n--- stderr ---\n{self.stderr[-4000:]}")

    # -- state.orchestrate

    def steps(self):
        """Orchestration step ID -> its state return."""
        data = (self.data or {}).get("data") or {}
        [returns] = data.values() if len(data) == 1 else [{}]
        if not isinstance(returns, dict):
            return {}
        return {ret.get("__id__", key): ret for key, ret in returns.items() if isinstance(ret, dict)}

    @property
    def ok(self):
        steps = self.steps()
        return self.returncode == 0 and bool(steps) and all(s.get("result") for s in steps.values())

    def changed_states(self):
        """{(step, minion, state ID): changes} of every state that changed something on a minion,
        plus {(step, None, None): changes} for steps whose changes are not minions' states (a
        failed minion's error list is a failure, not a change: see steps())."""
        out = {}
        for step, ret in self.steps().items():
            changes = ret.get("changes") or {}
            per_minion = changes.get("ret") if isinstance(changes.get("ret"), dict) else None
            if per_minion is None:
                if changes:
                    out[(step, None, None)] = changes
                continue
            for minion, states in per_minion.items():
                if not isinstance(states, dict):  # a failed minion's errors (e.g. a render error)
                    continue
                for key, state in states.items():
                    if isinstance(state, dict) and state.get("changes"):
                        out[(step, minion, state.get("__id__", key))] = state["changes"]
        return out

    # -- salt / salt-ssh state runs

    def minion_states(self, minion):
        """State key -> return of one minion of a `salt ... state.*` / salt-ssh run."""
        ret = (self.data or {}).get(minion)
        if isinstance(ret, dict) and "return" in ret and isinstance(ret["return"], dict):
            ret = ret["return"]  # salt-ssh wraps it
        return ret if isinstance(ret, dict) else {}

    def minion_changes(self, minion):
        return {s.get("__id__", k): s["changes"] for k, s in self.minion_states(minion).items()
                if isinstance(s, dict) and s.get("changes")}

    def minion_ok(self, minion):
        states = self.minion_states(minion)
        return bool(states) and all(isinstance(s, dict) and s.get("result") is True
                                    for s in states.values())


class SaltMaster:
    """salt-master on a booted test host."""

    def __init__(self, host):
        self.host = host

    def start(self):
        self.host.put_file("/etc/salt/master.d/formula.conf", MASTER_CONF)
        self.host.run(["mkdir", "-p", f"{PILLAR}/hosts"])
        self.host.put_file("/etc/systemd/system/salt-master.service", UNIT.format(role="master", venv=VENV_BIN))
        self.host.run(["systemctl", "daemon-reload"])
        self.host.run(["systemctl", "enable", "--now", "salt-master"])
        wait_for(lambda: self.host.run([f"{VENV_BIN}/salt-key", "-L"], check=False).returncode == 0,
                 timeout=60, what="salt-master to answer salt-key")
        return self

    def put_pillar(self, path, text):
        self.host.put_file(f"{PILLAR}/{path}", text)

    def cli(self, program, *args, timeout=3600):
        """Run a Salt CLI on the master. A run that failed on CPython's import-lock race
        (IMPORT_LOCK_RACE: the client failed before it published the job) runs once more, as an
        admin would rerun it; any other failure is returned as it is."""
        cmd = [f"{VENV_BIN}/{program}", "--out=json", *map(str, args)]
        for attempt in (1, 2):
            started = time.monotonic()
            proc = self.host.run(cmd, check=False, timeout=timeout)
            run = SaltRun(proc, time.monotonic() - started, cmd)
            if attempt == 2 or run.returncode == 0 or not IMPORT_LOCK_RACE.search(run.stdout + run.stderr):
                return run

    def salt(self, *args, timeout=3600, wait=60):
        """`salt` with --timeout=wait: how long to wait for minions that do not answer at all."""
        return self.cli("salt", "--static", f"--timeout={wait}", *args, timeout=timeout)

    def orchestrate(self, name="orch.jupyterhub", timeout=3600):
        return self.cli("salt-run", "state.orchestrate", name, timeout=timeout)

    def accept(self, minion_id, timeout=300):
        """Accept the minion's key once it has asked, then wait until it answers."""
        def pending():
            out = self.host.run([f"{VENV_BIN}/salt-key", "--out=json", "-l", "pre"]).stdout
            return minion_id in json.loads(out).get("minions_pre", [])
        wait_for(pending, timeout=timeout, interval=1, what=f"{minion_id}'s key")
        self.host.run([f"{VENV_BIN}/salt-key", "-y", "-a", minion_id])

        def answers():
            run = self.salt(minion_id, "test.ping", timeout=120, wait=10)
            return (run.data or {}).get(minion_id) is True
        wait_for(answers, timeout=timeout, interval=2, what=f"{minion_id} to answer test.ping")


class Minion:
    """salt-minion on a booted test host, pointed at the master by its host name."""

    def __init__(self, host, master_name="salt"):
        self.host, self.master_name = host, master_name

    def start(self):
        self.host.put_file("/etc/salt/minion.d/master.conf",
                           f"master: {self.master_name}\nid: {self.host.name}\n")
        self.host.put_file("/etc/systemd/system/salt-minion.service", UNIT.format(role="minion", venv=VENV_BIN))
        self.host.run(["systemctl", "daemon-reload"])
        self.host.run(["systemctl", "enable", "--now", "salt-minion"])
        return self
