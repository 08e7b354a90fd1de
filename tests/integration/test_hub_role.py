"""The hub role applied to a freshly booted Debian 12 host, checked from outside like a user would.

One container `hub` on the test bridge, highstate with the dev profile first (twice: the second
run must change and restart nothing), then the prod profile. (The default profile, demo, adds a
Grid Engine cell on the host: tests/integration/test_demo.py.)
"""

import hashlib
import json
import re
import ssl
import subprocess
import time

import pytest
import requests
import urllib3

from tests.support import hosts
from tests.support.conda_channel import build_wheel

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-pw-1", "bob": "bob-pw-2", "carol": "carol-pw-3"}
TIMINGS = {}
urllib3.disable_warnings()


def dev_pillar(network):
    return {
        "jupyterhub": {
            "cluster_net_cidr": f"{network.subnet}.0/24",
            "jh_admin_users": ["alice"],
            "jh_whitelist_users": ["alice", "carol"],
        }
    }


# Checks whose outcome does not depend on how the host's own name resolves (TLS protocols, PAM
# and the allow-lists, file modes, the env's lock, pillar errors, clean) run on the loopback shape
# only; what the name can change (the first and second apply, the certificate and the address the
# hub binds, sudo's host lookup, the prod profile's CSR) runs on both.
ONE_SHAPE = pytest.mark.parametrize("hub", ["loopback"], indirect=True)


def main_pids(host):
    out = host.run(
        ["systemctl", "show", "-p", "MainPID", "--value", "jupyterhub", "jupyterhub-proxy", "nginx"]
    ).stdout.split()
    return out


@pytest.fixture(scope="module", params=["loopback", "static"])
def hub(make_host, test_network, request):
    """The hub host as fresh Debian 12 hosts come: its name on 127.0.1.1 (Debian installer, cloud
    images) or on its address with an FQDN (static install)."""
    TIMINGS.clear()
    host = make_host("hub", shape=request.param)
    for user, password in USERS.items():
        host.run(["useradd", "--create-home", "--shell", "/bin/bash", user])
        host.run(["chpasswd"], input=f"{user}:{password}\n")
    host.salt_call("grains.setval", "jupyterhub_profile", "dev", check=True)
    first = host.state_apply(pillar=dev_pillar(test_network))
    assert first.ok, str(first)
    TIMINGS["first apply (dev)"] = first.duration
    host.first_apply = first
    yield host
    host.stop()
    print(f"\nhub role timings ({host.shape} host): " + ", ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items()))


@pytest.fixture(scope="module")
def cert_file(hub):
    """The served certificate must be the role's hub.crt; requests then skips CA validation
    (the dev certificate is self-signed)."""
    served = ssl.get_server_certificate((hub.ip, 443))
    assert ssl.PEM_cert_to_DER_cert(served) == ssl.PEM_cert_to_DER_cert(
        hub.read_file("/etc/jupyterhub/ssl/hub.crt")
    )
    return False


def login(hub, cert_file, user, password):
    """Log in through nginx like a browser: GET the form (xsrf cookie + field), POST it."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = cert_file
    page = session.get(f"https://{hub.ip}/hub/login", timeout=30)
    assert page.status_code == 200
    match = re.search(r'name="_xsrf"\s+value="([^"]+)"', page.text)
    data = {"username": user, "password": password}
    if match:
        data["_xsrf"] = match.group(1)
    response = session.post(
        f"https://{hub.ip}/hub/login?next=", data=data, allow_redirects=False, timeout=60
    )
    return session, response


def current_user(session, hub):
    response = session.get(f"https://{hub.ip}/hub/api/user", timeout=30)
    return response.status_code, (response.json() if response.status_code == 200 else None)


def test_second_apply_changes_and_restarts_nothing(hub, test_network):
    pids = main_pids(hub)
    second = hub.state_apply(pillar=dev_pillar(test_network))
    assert second.ok, str(second)
    TIMINGS["second apply"] = second.duration
    assert second.changed() == {}
    assert main_pids(hub) == pids
    predicted = hub.state_apply(pillar=dev_pillar(test_network), test=True)
    assert predicted.ok, str(predicted)
    assert predicted.changed() == {}


def test_services_are_active_and_enabled(hub):
    for unit in ("jupyterhub", "jupyterhub-proxy", "nginx", "jupyterhub-env-update.timer"):
        assert hub.run(["systemctl", "is-active", unit]).stdout.strip() == "active"
        assert hub.run(["systemctl", "is-enabled", unit]).stdout.strip() == "enabled"


def test_http_redirects_to_https(hub):
    response = requests.get(f"http://{hub.ip}/hub/login", allow_redirects=False, timeout=30)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{hub.ip}/hub/login"


def test_certificate_names_the_host(hub):
    text = hub.run(["openssl", "x509", "-noout", "-text", "-in", "/etc/jupyterhub/ssl/hub.crt"]).stdout
    assert f"IP Address:{hub.ip}" in text and f"DNS:{hub.fqdn}" in text
    assert re.search(r"DNS:hub(,|$)", text, re.MULTILINE)  # the short name too
    csr = hub.run(["openssl", "req", "-noout", "-text", "-in", "/etc/jupyterhub/ssl/hub.csr"]).stdout
    assert f"IP Address:{hub.ip}" in csr


def test_https_login_page_with_hsts(hub, cert_file):
    with requests.Session() as session:
        session.trust_env = False
        response = session.get(f"https://{hub.ip}/hub/login", verify=cert_file, timeout=30)
    assert response.status_code == 200
    assert "password" in response.text
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


@ONE_SHAPE
@pytest.mark.parametrize("version, accepted", [("-tls1_1", False), ("-tls1", False), ("-tls1_2", True)])
def test_tls_versions(hub, version, accepted):
    # SECLEVEL=0 makes the client willing to speak the old protocols: a refusal is the server's.
    proc = subprocess.run(
        ["openssl", "s_client", "-connect", f"{hub.ip}:443", version, "-cipher", "DEFAULT@SECLEVEL=0"],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (proc.returncode == 0) is accepted, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_whitelisted_admin_logs_in_with_pam(hub, cert_file):
    session, response = login(hub, cert_file, "alice", USERS["alice"])
    assert response.status_code == 302, response.text[:500]
    status, model = current_user(session, hub)
    assert status == 200 and model["name"] == "alice" and model["admin"] is True
    # the login cookie only ever travels over https (the proxy must not make the hub think http)
    cookies = {cookie.name: cookie for cookie in session.cookies}
    assert cookies["jupyterhub-hub-login"].secure and cookies["jupyterhub-session-id"].secure


def wait_for_hub(hub, cert_file):
    def answers():
        try:
            return requests.get(f"https://{hub.ip}/hub/login", verify=cert_file, timeout=5).status_code == 200
        except requests.RequestException:
            return False
    hosts.wait_for(answers, 60, what="the hub to answer")


@ONE_SHAPE
def test_pillar_is_authoritative_for_logins_and_admins(hub, test_network, cert_file):
    """Removing a name from jh_whitelist_users / jh_admin_users removes the login / admin role
    (JupyterHub's own lists only add), without deleting anything of the user."""
    carol, response = login(hub, cert_file, "carol", USERS["carol"])
    assert response.status_code == 302 and current_user(carol, hub)[0] == 200
    pillar = dev_pillar(test_network)
    pillar["jupyterhub"].update(jh_whitelist_users=["alice"], jh_admin_users=[])
    result = hub.state_apply(pillar=pillar)
    assert result.ok, str(result)
    wait_for_hub(hub, cert_file)
    assert current_user(carol, hub)[0] == 403  # her session ended with the pillar edit
    assert login(hub, cert_file, "carol", USERS["carol"])[1].status_code != 302
    alice, response = login(hub, cert_file, "alice", USERS["alice"])
    assert response.status_code == 302 and current_user(alice, hub)[1]["admin"] is False
    assert hub.run(["test", "-d", "/home/carol"], check=False).returncode == 0  # nothing deleted
    # and back: adding them again works the same way
    result = hub.state_apply(pillar=dev_pillar(test_network))
    assert result.ok, str(result)
    wait_for_hub(hub, cert_file)
    assert login(hub, cert_file, "carol", USERS["carol"])[1].status_code == 302
    alice, _ = login(hub, cert_file, "alice", USERS["alice"])
    assert current_user(alice, hub)[1]["admin"] is True


@ONE_SHAPE
def test_whitelisted_user_is_not_admin(hub, cert_file):
    session, response = login(hub, cert_file, "carol", USERS["carol"])
    assert response.status_code == 302
    status, model = current_user(session, hub)
    assert status == 200 and model["admin"] is False


@ONE_SHAPE
def test_wrong_password_is_refused(hub, cert_file):
    session, response = login(hub, cert_file, "alice", "not-her-password")
    assert response.status_code != 302
    assert current_user(session, hub)[0] == 403


@ONE_SHAPE
def test_dev_refuses_a_user_who_is_not_whitelisted(hub, cert_file):
    session, response = login(hub, cert_file, "bob", USERS["bob"])
    assert response.status_code != 302
    assert current_user(session, hub)[0] == 403


def test_sudo_allows_exactly_qsub_and_qdel(hub):
    listing = hub.run(["sudo", "-l", "-U", "jupyter"]).stdout
    commands = re.findall(r"NOPASSWD:\s*(.+)", listing)
    assert len(commands) == 1, listing
    assert sorted(c.strip() for c in commands[0].split(",")) == ["/usr/lib/gridengine/qdel", "/usr/lib/gridengine/qsub"]
    assert "(%jupyterhub-users, %!sudo, %!wheel, %!admin, !root, !#0" in listing, listing
    # Grid Engine's settings come from root's file, nothing from the hub's environment
    assert "env_keep=LANG" in listing and "env_file=/etc/sudoers.d/jupyterhub.env" in listing, listing
    assert "command_timeout=30" in listing, listing


def test_sudo_runs_qsub_as_a_user_but_not_as_root_or_system_accounts(hub):
    def as_jupyter(*argv):
        return hub.run(["runuser", "-u", "jupyter", "--", "sudo", "-n", *argv], check=False)

    allowed = as_jupyter("-u", "alice", "/usr/lib/gridengine/qsub", "-help")
    assert "not allowed" not in allowed.stderr and "password is required" not in allowed.stderr, allowed
    # bob has an account but is not whitelisted on this dev host: not in the group
    for runas in ("root", "#0", "daemon", "www-data", "jupyter", "bob"):
        denied = as_jupyter("-u", runas, "/usr/lib/gridengine/qsub", "-help")
        assert denied.returncode != 0, runas
        assert "not allowed" in denied.stderr or "password is required" in denied.stderr, denied.stderr
    shell = as_jupyter("-u", "alice", "/bin/sh", "-c", "id")
    assert shell.returncode != 0


def stat_of(hub, path):
    owner, group, mode = hub.run(["stat", "-c", "%U %G %a", path]).stdout.split()
    return owner, group, mode


@ONE_SHAPE
@pytest.mark.parametrize(
    "path, expected",
    [
        ("/srv/jupyterhub", ("root", "root", "755")),
        ("/srv/jupyterhub/state", ("jupyter", "jupyter", "700")),
        ("/srv/jupyterhub/state/jupyterhub.sqlite", ("jupyter", "jupyter", "600")),
        ("/srv/jupyterhub/secrets", ("jupyter", "jupyter", "711")),
        ("/etc/jupyterhub/jupyterhub_cookie_secret", ("root", "jupyter", "640")),
        ("/etc/jupyterhub", ("root", "jupyter", "750")),
        ("/etc/jupyterhub/proxy.env", ("root", "root", "600")),
        ("/etc/jupyterhub/settings.json", ("root", "jupyter", "640")),
        ("/etc/jupyterhub/jupyterhub_config.py", ("root", "jupyter", "640")),
        ("/etc/jupyterhub/ssl/hub.key", ("root", "root", "600")),
        ("/etc/jupyterhub/ssl/hub.csr", ("root", "root", "644")),
        ("/etc/sudoers.d/jupyterhub", ("root", "root", "440")),
    ],
)
def test_file_owners_and_modes(hub, path, expected):
    assert stat_of(hub, path) == expected


@ONE_SHAPE
def test_secrets_are_not_readable_by_users_and_not_in_settings(hub):
    for path in ("/etc/jupyterhub/jupyterhub_cookie_secret", "/etc/jupyterhub/proxy.env", "/etc/jupyterhub/ssl/hub.key"):
        assert hub.run(["cat", path], user="alice", check=False).returncode != 0
    for directory in ("/srv/jupyterhub/state", "/srv/jupyterhub/secrets", "/etc/jupyterhub"):
        assert hub.run(["ls", directory], user="alice", check=False).returncode != 0
    token = hub.read_file("/etc/jupyterhub/proxy.env").strip().split("=", 1)[1]
    assert len(token) == 64
    for path in ("/etc/jupyterhub/settings.json", "/etc/jupyterhub/jupyterhub_config.py"):
        assert token not in hub.read_file(path)


def test_hub_runs_unprivileged_and_binds_the_cluster_address(hub):
    for unit in ("jupyterhub", "jupyterhub-proxy"):
        pid = hub.run(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip()
        assert hub.run(["stat", "-c", "%U", f"/proc/{pid}"]).stdout.strip() == "jupyter"
    # the hub submits through sudo: its sandbox must not set no_new_privs
    pid = hub.run(["systemctl", "show", "-p", "MainPID", "--value", "jupyterhub"]).stdout.strip()
    assert "NoNewPrivs:\t0" in hub.read_file(f"/proc/{pid}/status")
    settings = json.loads(hub.read_file("/etc/jupyterhub/settings.json"))
    assert settings["hub_ip"] == hub.ip
    listening = hub.run(["ss", "-Hltn"]).stdout
    assert f"{hub.ip}:8081" in listening
    assert "127.0.0.1:8000" in listening


@ONE_SHAPE
def test_journal_is_persistent(hub):
    assert "Storage=persistent" in hub.read_file("/etc/systemd/journald.conf.d/50-jupyterhub.conf")
    assert hub.run(["test", "-d", "/var/log/journal"], check=False).returncode == 0


@ONE_SHAPE
def test_env_update_timer_only_reports_by_default(hub):
    lock = hub.read_file("/opt/jupyterhub/venv/requirements.lock")
    hub.run(["systemctl", "start", "jupyterhub-env-update.service"], timeout=600)
    log = hub.run(["journalctl", "-u", "jupyterhub-env-update.service", "--no-pager", "-o", "cat"]).stdout
    assert "unattended updates are off" in log and "nothing applied" in log, log[-3000:]
    assert hub.read_file("/opt/jupyterhub/venv/requirements.lock") == lock


@ONE_SHAPE
def test_the_env_installs_only_files_whose_hashes_the_lock_lists(hub, test_network, tmp_path):
    """The role's own install command (uv, --require-hashes) refuses a package whose file does not
    have a hash of the lock and installs nothing; applying jupyterhub.env puts back what is missing
    and takes out a package the lock leaves out (rfc3987-syntax, as an older lock installed it)."""
    env = "/opt/jupyterhub/venv"
    wheel = build_wheel(tmp_path, "rfc3987-syntax", "1.1.0")
    hub.put_file(f"/root/{wheel.name}", wheel.read_bytes(), mode=0o600)
    hub.run([f"{env}/bin/python", "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", f"/root/{wheel.name}"])
    hub.run([f"{env}/bin/python", "-c", "import rfc3987_syntax"])
    states = hub.salt_call("state.show_sls", "jupyterhub.env", pillar=dev_pillar(test_network), check=True).data
    command = next(arg["name"] for arg in states["jupyterhub-python-env"]["cmd"] if "name" in arg)
    assert "--require-hashes" in command and f"{env}/requirements.lock" in command
    lines = hub.read_file(f"{env}/requirements.lock").splitlines()
    pin = next(n for n, line in enumerate(lines) if line.startswith("webencodings=="))
    for n in range(pin + 1, len(lines)):
        if not lines[n].startswith(" "):
            break
        lines[n] = re.sub(r"[0-9a-f]{64}", "0" * 64, lines[n])
    hub.put_file("/root/tampered.lock", "\n".join(lines) + "\n", mode=0o600)
    hub.run([f"{env}/bin/python", "-m", "pip", "uninstall", "--yes", "--quiet", "webencodings"])

    refused = hub.run(["sh", "-c", command.replace(f"{env}/requirements.lock", "/root/tampered.lock")],
                      check=False)
    assert refused.returncode != 0 and "hash" in refused.stderr.lower(), refused.stderr
    assert hub.run([f"{env}/bin/python", "-c", "import webencodings"], check=False).returncode != 0

    healed = hub.state_apply("jupyterhub.env", pillar=dev_pillar(test_network))
    assert healed.ok and "jupyterhub-python-env" in healed.changed(), str(healed)
    assert "jupyterhub-venv-left-out-packages-removed" in healed.changed(), str(healed)
    hub.run([f"{env}/bin/python", "-c", "import webencodings"])
    assert hub.run([f"{env}/bin/python", "-c", "import rfc3987_syntax"], check=False).returncode != 0
    hub.run([f"{env}/bin/python", f"{env}/check-lock.py", f"{env}/requirements.lock"])


@ONE_SHAPE
def test_env_update_timer_refuses_a_checkout_others_can_write(hub):
    """A group-writable directory in the checkout: the root timer runs nothing and says why."""
    hub.run(["chmod", "g+w", "/srv/formula/_modules"])
    try:
        hub.run(["journalctl", "--rotate"], check=False)
        since = hub.run(["date", "+%Y-%m-%d %H:%M:%S"]).stdout.strip()
        started = hub.run(["systemctl", "start", "jupyterhub-env-update.service"], check=False, timeout=600)
        log = hub.run(["journalctl", "-u", "jupyterhub-env-update.service", "--since", since,
                       "--no-pager", "-o", "cat"]).stdout
    finally:
        hub.run(["chmod", "g-w", "/srv/formula/_modules"])
    assert started.returncode != 0
    assert "/srv/formula/_modules is writable by group (mode 0775)" in log, log[-3000:]
    assert "chmod go-w /srv/formula/_modules" in log and "REFUSING to run salt-call" in log
    assert "Checking the hub environment" not in log


@ONE_SHAPE
def test_bad_pillar_names_the_key_and_changes_nothing(hub, test_network):
    before = hashlib.sha256(hub.read_file("/etc/jupyterhub/settings.json").encode()).hexdigest()
    pillar = dev_pillar(test_network)
    pillar["jupyterhub"]["hub"] = {"port": "8081x"}
    pillar["jupyterhub"]["jh_admin"] = ["mallory"]
    result = hub.state_apply(pillar=pillar)
    assert result.returncode != 0
    message = json.dumps(result.failed())
    assert "jupyterhub:hub:port: expected an integer" in message
    assert "jupyterhub:jh_admin: unknown key" in message
    assert result.changed() == {}
    after = hashlib.sha256(hub.read_file("/etc/jupyterhub/settings.json").encode()).hexdigest()
    assert before == after


def test_prod_profile_applies_and_admits_the_members_of_the_group(hub, test_network, cert_file):
    hub.salt_call("grains.setval", "jupyterhub_profile", "prod", check=True)
    pillar = {"jupyterhub": {"cluster_net_cidr": f"{test_network.subnet}.0/24", "jh_admin_users": ["alice"],
                             "access": {"members": ["bob"]}}}
    started = time.monotonic()
    result = hub.state_apply(pillar=pillar)
    assert result.ok, str(result)
    TIMINGS["switch to prod"] = time.monotonic() - started
    notice = [ret for sid, ret in result.states().items() if "certificate-missing-notice" in sid]
    assert notice and "hub.csr" in notice[0]["comment"]
    again = hub.state_apply(pillar=pillar)
    assert again.ok and again.changed() == {}, str(again)
    session, response = login(hub, cert_file, "bob", USERS["bob"])
    assert response.status_code == 302
    status, model = current_user(session, hub)
    assert status == 200 and model["name"] == "bob" and model["admin"] is False
    # carol has an account, and was whitelisted on dev: on prod only the group counts
    session, response = login(hub, cert_file, "carol", USERS["carol"])
    assert response.status_code != 302
    assert hub.run(["id", "-nG", "carol"]).stdout.split() == ["carol"]  # removed from the group



@ONE_SHAPE
def test_masterless_run_keeps_salt_state_inside_the_checkout(hub):
    for path in ("/etc/salt", "/var/cache/salt", "/var/log/salt"):
        assert hub.run(["test", "-e", path], check=False).returncode != 0, path
    assert hub.run(["test", "-d", "/srv/formula/.salt-run/var/cache/salt/minion"], check=False).returncode == 0


@ONE_SHAPE
def test_clean_removes_the_role_and_keeps_the_database(hub, test_network):
    """Last in this module: jupyterhub.clean leaves the host without the role's units, site and
    sudo rules; the database and the users' homes stay. Then the role applies again from there,
    one SLS at a time (each SLS applies on its own), and a full apply after them changes nothing."""
    result = hub.state_apply("jupyterhub.clean", pillar=dev_pillar(test_network))
    assert result.ok, str(result)
    gone = ["/etc/systemd/system/jupyterhub.service", "/etc/systemd/system/jupyterhub-proxy.service",
            "/etc/systemd/system/jupyterhub-env-update.timer", "/etc/nginx/sites-enabled/jupyterhub.conf",
            "/etc/sudoers.d/jupyterhub", "/etc/jupyterhub", "/opt/jupyterhub/venv", "/opt/jupyterhub/lib/sgespawner",
            "/srv/jupyterhub/secrets"]
    for path in gone:
        assert hub.run(["test", "-e", path], check=False).returncode != 0, path
    assert hub.run(["systemctl", "is-active", "jupyterhub"], check=False).stdout.strip() != "active"
    assert hub.run(["test", "-f", "/srv/jupyterhub/state/jupyterhub.sqlite"], check=False).returncode == 0
    assert hub.run(["test", "-d", "/home/alice"], check=False).returncode == 0
    again = hub.state_apply("jupyterhub.clean", pillar=dev_pillar(test_network))
    assert again.ok and again.changed() == {}, str(again)
    # every SLS of the role alone, each while what it makes is still missing (those that include
    # others come after them); each must apply, and together they must be the role: a full apply
    # afterwards changes nothing
    for sls in STANDALONE_ORDER:
        alone = hub.state_apply(sls, pillar=dev_pillar(test_network))
        assert alone.ok, f"{sls}: {alone}"
        assert alone.changed() or sls in KEPT_BY_CLEAN, f"{sls} applied alone after clean changed nothing: {alone}"
    assert hub.run(["systemctl", "is-active", "jupyterhub", "jupyterhub-proxy", "nginx"]).stdout.split() == \
        ["active"] * 3
    role = hub.state_apply("jupyterhub", pillar=dev_pillar(test_network))
    assert role.ok and role.changed() == {}, str(role)


# the hub role's SLS (salt/jupyterhub/init.sls) in an order in which each finds its own concern
# missing after jupyterhub.clean (which keeps packages, accounts, the journal setting)
STANDALONE_ORDER = (
    "jupyterhub.packages", "jupyterhub.sge.client", "jupyterhub.user", "jupyterhub.journald",
    "jupyterhub.access", "jupyterhub.dirs", "jupyterhub.sudo", "jupyterhub.tls", "jupyterhub.database",
    "jupyterhub.env", "jupyterhub.update_timer", "jupyterhub.config", "jupyterhub.service",
    "jupyterhub.nginx",
)
# what clean leaves in place (packages, accounts, the group, the journal setting) and SQLite, which
# needs nothing made: these SLS may find nothing to do
KEPT_BY_CLEAN = ("jupyterhub.packages", "jupyterhub.sge.client", "jupyterhub.user", "jupyterhub.journald",
                 "jupyterhub.access", "jupyterhub.database")


def test_the_standalone_order_is_the_whole_role(repo):
    """STANDALONE_ORDER lists exactly the SLS the role includes (a new SLS gets applied alone too)."""
    init = (repo / "salt/jupyterhub/init.sls").read_text()
    included = set(re.findall(r"^  - (jupyterhub[.\w]*)$", init, re.M))
    assert included == set(STANDALONE_ORDER)
