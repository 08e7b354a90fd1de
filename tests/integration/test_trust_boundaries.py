"""The trust boundaries, tried as an attacker would on the single-host demo (bin/setup), on a host
that has - before the role is applied - what installers and cloud images leave: the installer's
admin (uid 1000, group sudo), a cloud image's `debian` with `NOPASSWD: ALL`, and ordinary users.

Threat model (docs/SECURITY.md): cluster users are untrusted; the `jupyter` account is a service
account whose compromise must not give root or any privileged account; a JupyterHub admin is not
root; root (a state run) never follows a path a less-privileged account can change.

Tests run in order on one module-scoped host.
"""

import hashlib
import json
import re
import socket
import time

import pytest

from tests.support.hosts import wait_for
from tests.support.webclient import HubUser

pytestmark = pytest.mark.integration

ORDINARY = ["alice", "bob", "mallory"]
PASSWORDS = {user: f"{user}-pw-7" for user in ["admin", "debian", *ORDINARY]}
PILLAR = """# test: the demo profile with three ordinary users and a hub admin
jupyterhub:
  is_devel_env: false
  demo_account: demo
  jh_admin_users: [alice]
  access:
    members: {members}
  hub:
    ip: 127.0.0.1
  sge:
    command_timeout: {timeout}
  tls:
    self_signed: true
"""


def write_pillar(host, members=ORDINARY, timeout=30):
    host.put_file("/srv/formula/pillar/jupyterhub/demo.sls",
                  PILLAR.format(members=json.dumps(members), timeout=timeout))


@pytest.fixture(scope="module")
def host(make_host):
    host = make_host("trust")
    # what the Debian installer and a cloud image leave behind
    host.run(["useradd", "-m", "-u", "1000", "-G", "sudo", "-s", "/bin/bash", "admin"])
    host.run(["useradd", "-m", "-u", "1001", "-s", "/bin/bash", "debian"])
    host.put_file("/etc/sudoers.d/90-cloud-init-users", "debian ALL=(ALL) NOPASSWD:ALL\n", mode=0o440)
    for user in ORDINARY:
        host.run(["useradd", "-m", "-s", "/bin/bash", user])
    host.run(["chpasswd"], input="".join(f"{u}:{p}\n" for u, p in PASSWORDS.items()))
    write_pillar(host)
    setup = host.run(["/srv/formula/bin/setup"], timeout=1800)
    host.setup_output = setup.stdout
    yield host
    host.stop()


def user(host, name):
    return HubUser(host.ip, name, PASSWORDS[name])


def as_jupyter(host, *argv):
    return host.run(["runuser", "-u", "jupyter", "--", *argv], check=False)


def jobs_of(host, name):
    return [line.split()[0] for line in host.run(["qstat", "-u", name]).stdout.splitlines()[2:]]


def apply_and_wait(host):
    """Apply the highstate; when it restarted the hub, wait until the hub answers again."""
    result = host.state_apply()
    assert result.ok, str(result)
    wait_for(lambda: user(host, "alice").logged_in, 120, what="the hub after the apply")
    return result


def hub_log(host, lines=80):
    return host.run(["journalctl", "-u", "jupyterhub", "--no-pager", "-o", "cat", "-n", str(lines)]).stdout


def wait_ready(hub_user):
    def settled():
        server = hub_user.server()
        return server is None or server["ready"] or not server["pending"]
    wait_for(settled, 180, what=f"the server of {hub_user.user}")
    return hub_user.server()


def stop_and_wait(host, hub_user):
    hub_user.stop()
    wait_for(lambda: hub_user.server() is None and not jobs_of(host, hub_user.user), 60,
             what=f"{hub_user.user}'s job to go")


# ------------------------------------------------------------------ 1. links root would follow

def test_the_hub_account_cannot_plant_anything_where_root_writes(host):
    for target in ("/etc/jupyterhub/jupyterhub_cookie_secret", "/etc/jupyterhub/settings.json",
                   "/etc/jupyterhub/proxy.env"):
        planted = as_jupyter(host, "ln", "-sf", "/etc/shadow", target)
        assert planted.returncode != 0 and "Permission denied" in planted.stderr, (target, planted)
    for directory in ("/srv/jupyterhub/secrets", "/srv/jupyterhub/state"):  # swap a dir for a link
        moved = as_jupyter(host, "mv", directory, directory + ".old")
        assert moved.returncode != 0 and "Permission denied" in moved.stderr, (directory, moved)
    # what it owns (its database dir) it may fill with links: root never looks inside
    as_jupyter(host, "ln", "-s", "/etc/shadow", "/srv/jupyterhub/state/jupyterhub_cookie_secret")
    shadow = host.run(["stat", "-c", "%U %G %a", "/etc/shadow"]).stdout
    result = host.state_apply()
    assert result.ok and result.changed() == {}, str(result)
    assert host.run(["stat", "-c", "%U %G %a", "/etc/shadow"]).stdout == shadow == "root shadow 640\n"


def test_a_link_at_a_secrets_path_fails_the_state_and_is_not_followed(host):
    """Defence in depth: even where only root can write, secret_present never follows a link."""
    secret = "/etc/jupyterhub/jupyterhub_cookie_secret"
    host.run(["mv", secret, secret + ".saved"])
    host.run(["ln", "-s", "/etc/shadow", secret])
    try:
        result = host.state_apply()
        failed = result.failed()
        assert "jupyterhub-cookie-secret-generated" in failed, str(result)
        assert "symbolic link" in failed["jupyterhub-cookie-secret-generated"]
        assert host.run(["stat", "-c", "%U %G %a", "/etc/shadow"]).stdout == "root shadow 640\n"
    finally:
        host.run(["rm", "-f", secret])
        host.run(["mv", secret + ".saved", secret])
    assert host.state_apply().ok


# ----------------------------------------------------- 2. sudo reaches ordinary users only

@pytest.mark.parametrize("account", ["debian", "admin", "root", "#0", "#1000", "daemon", "jupyter", "demo2"])
def test_the_hub_account_cannot_submit_as_a_privileged_account(host, account):
    denied = as_jupyter(host, "sudo", "-n", "-u", account, "/usr/lib/gridengine/qsub", "-help")
    assert denied.returncode != 0 and re.search(r"not allowed|password is required|unknown user",
                                                denied.stderr), denied


def test_the_hub_account_submits_as_ordinary_members_only_qsub_and_qdel(host):
    assert as_jupyter(host, "sudo", "-n", "-u", "alice", "/usr/lib/gridengine/qsub", "-help").returncode == 0
    for argv in (["/usr/lib/gridengine/qstat"], ["/bin/sh", "-c", "id"], ["/usr/lib/gridengine/qconf", "-sm"],
                 ["/usr/bin/qsub", "-help"]):  # Debian's wrapper script too: only the binaries the hub runs
        assert as_jupyter(host, "sudo", "-n", "-u", "alice", *argv).returncode != 0, argv
    # SGE's settings come from root's file: a compromised hub cannot point qsub elsewhere
    env = as_jupyter(host, "env", "SGE_ROOT=/srv/jupyterhub/state", "sudo", "-n", "-u", "alice",
                     "/usr/lib/gridengine/qsub", "-w", "v", "-b", "y", "/bin/true")
    assert env.returncode == 0 and "verification: found suitable queue" in env.stdout, env


def test_an_account_added_to_the_group_by_hand_stays_excluded(host):
    host.run(["gpasswd", "-a", "debian", "jupyterhub-users"])
    host.run(["gpasswd", "-a", "admin", "jupyterhub-users"])
    try:
        for account in ("debian", "admin"):
            denied = as_jupyter(host, "sudo", "-n", "-u", account, "/usr/lib/gridengine/qsub", "-help")
            assert denied.returncode != 0, denied
    finally:
        result = host.state_apply()  # the group is pillar's: both are removed again
    assert result.ok and set(result.changed()) == {"jupyterhub-users-group-present"}, str(result)
    assert "debian" not in host.run(["getent", "group", "jupyterhub-users"]).stdout


def test_pillar_cannot_give_a_privileged_account_servers(host):
    sudoers = hashlib.sha256(host.read_file("/etc/sudoers.d/jupyterhub").encode()).hexdigest()
    write_pillar(host, members=[*ORDINARY, "debian", "admin"])
    try:
        result = host.state_apply()
        message = json.dumps(result.failed())
        assert "jupyterhub:access:members" in message, str(result)  # refused while rendering
        assert "debian (sudoers lets it run anything as root)" in message
        assert re.search(r"admin \(member of the privileged group [a-z, ]*sudo\)", message), message
        assert result.changed() == {}
        assert hashlib.sha256(host.read_file("/etc/sudoers.d/jupyterhub").encode()).hexdigest() == sudoers
        members = host.run(["getent", "group", "jupyterhub-users"]).stdout
        assert "debian" not in members and "admin" not in members
    finally:
        write_pillar(host)


def test_a_jupyterhub_admin_cannot_start_servers_for_privileged_accounts(host):
    alice = user(host, "alice")
    assert alice.logged_in and alice.api("GET", "/user").json()["admin"] is True
    for account in ("debian", "admin", "root"):
        created = alice.api("POST", "/users", json={"usernames": [account]})
        assert created.status_code in (201, 409), created.text
        response = alice.start(name=account)
        assert response.status_code == 403, response.text
        assert "No server for this account" in response.json()["message"]
        assert jobs_of(host, account) == []


# --------------------------------------- 3. the user's files cannot steer the job past the form

def test_sge_request_files_do_not_reach_the_job(host):
    host.put_file("/home/bob/jsv.sh", "#!/bin/sh\ntouch /tmp/jsv-ran-$(id -un)\necho STARTED\n"
                  "while read l; do case $l in BEGIN*) echo 'RESULT STATE ACCEPT';; QUIT*) exit 0;; esac; done\n",
                  mode=0o755, owner="bob")
    host.put_file("/home/bob/.sge_request", "-ac EVIL=1\n-jsv /home/bob/jsv.sh\n-l h_rt=0:0:20\n-C @@\n-w v\n",
                  owner="bob")
    bob = user(host, "bob")
    try:
        assert bob.start().status_code in (201, 202)
        server = wait_ready(bob)
        assert server and server["ready"], hub_log(host)
        [job] = jobs_of(host, "bob")
        detail = host.run(["qstat", "-j", job]).stdout
        assert "EVIL" not in detail and "context" not in detail, detail
        assert re.search(r"hard resource_list:\s+.*h_rt=28800", detail), detail  # the form's 08:00:00
        assert host.run(["test", "-e", "/tmp/jsv-ran-bob"], check=False).returncode != 0
        stop_and_wait(host, bob)
    finally:
        host.run(["rm", "-f", "/home/bob/.sge_request"])


# ---------------------------------------------------- 4. one user cannot blind the poller

AWKWARD = ["a<b>&x", "]]>", "x" * 500, "ünïcødé-名前", "'\"$(id)`id`", "\x01ctrl\x1b[31m", "caf\udce9"]


def test_another_users_awkward_job_names_do_not_blind_the_poller(host):
    accepted = []
    for name in AWKWARD:  # (a lone surrogate becomes that raw, non-UTF-8 byte on the command line)
        proc = host.run(["runuser", "-u", "mallory", "--", "qsub", "-h", "-N", name,
                         "-b", "y", "/bin/sleep", "600"], check=False)
        if proc.returncode == 0:
            accepted.append(name)
    assert "a<b>&x" in accepted and "x" * 500 in accepted  # SGE itself refuses control characters
    alice = user(host, "alice")
    assert alice.start().status_code in (201, 202)
    assert wait_ready(alice)["ready"]
    time.sleep(12)  # a full poll interval with mallory's jobs in every snapshot
    log = host.run(["journalctl", "-u", "jupyterhub", "--no-pager", "-o", "cat"]).stdout
    assert "qstat failed" not in log and "sessions are kept" not in log, log[-3000:]
    assert alice.server()["ready"]
    stop_and_wait(host, alice)
    host.run(["qdel", "-u", "mallory"], check=False)


# ------------------------------------------------ 5. a hanging qsub does not break the spawner

def test_a_hanging_qsub_is_ended_and_a_job_it_queued_anyway_is_deleted(host):
    write_pillar(host, timeout=5)
    apply_and_wait(host)
    bob = user(host, "bob")
    # a first start and stop: the spawner's check of SGE's managers (qconf -sm, cached for a
    # minute) has its answer, so that what hangs below is the submit itself
    assert bob.start().status_code in (201, 202)
    assert wait_ready(bob)["ready"], hub_log(host)
    stop_and_wait(host, bob)
    qmaster = host.run(["systemctl", "show", "-p", "MainPID", "--value", "gridengine-master"]).stdout.strip()
    host.run(["kill", "-STOP", qmaster])  # accepts connections, answers nothing
    try:
        started = time.monotonic()
        response = bob.start()
        seconds = time.monotonic() - started
    finally:
        host.run(["kill", "-CONT", qmaster])
    assert response.status_code == 503, response.text
    assert "did not answer in time" in response.json()["message"]
    assert seconds < 60
    # whatever the qmaster queued from the broken submit is found by its name and deleted
    wait_for(lambda: not jobs_of(host, "bob"), 120, interval=2, what="no job of bob's")
    time.sleep(15)
    assert jobs_of(host, "bob") == []
    log = host.run(["journalctl", "-u", "jupyterhub", "--no-pager", "-o", "cat"]).stdout
    assert "Traceback" not in log and "PermissionError" not in log, log[-3000:]
    # `-sync y` in the user's own ~/.sge_request (Grid Engine honours it despite -clear) only
    # hurts that user: the submit is ended and the message says why
    host.put_file("/home/bob/.sge_request", "-sync y\n", owner="bob")
    try:
        response = bob.start()
        assert response.status_code == 503 and "-sync y" in response.json()["message"], response.text
    finally:
        host.run(["rm", "-f", "/home/bob/.sge_request"])
    wait_for(lambda: not jobs_of(host, "bob"), 120, interval=2, what="no job of bob's")
    # and the next start works
    assert bob.start().status_code in (201, 202)
    assert wait_ready(bob)["ready"], hub_log(host)
    stop_and_wait(host, bob)
    write_pillar(host)
    apply_and_wait(host)


# ---------------------------------------------------------------- 7. smaller ones

def test_the_hubs_plain_http_api_is_not_on_the_public_address(host):
    listening = host.run(["ss", "-Hltn"]).stdout
    assert "127.0.0.1:8081" in listening and f"{host.ip}:8081" not in listening and "*:8081" not in listening
    with socket.socket() as sock:
        sock.settimeout(5)
        assert sock.connect_ex((host.ip, 8081)) != 0


def test_login_cookies_are_secure_and_the_demo_account_works(host):
    match = re.search(r"Log in as 'demo' with the password '([0-9a-f]+)'", host.setup_output)
    assert match, host.setup_output[-2000:]
    assert host.read_file("/etc/jupyterhub/demo-password").strip() == match.group(1)
    assert host.run(["stat", "-c", "%U %a", "/etc/jupyterhub/demo-password"]).stdout.split() == ["root", "600"]
    demo = HubUser(host.ip, "demo", match.group(1))
    assert demo.logged_in
    assert all(cookie.secure for cookie in demo.session.cookies), list(demo.session.cookies)
    # a local account that pillar does not list may not log in
    assert not user(host, "debian").logged_in
