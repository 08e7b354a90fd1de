"""The salt-master path on real daemons: a `salt` host runs salt-master with the formula as its file
roots (as it is: salt/top.sls, pillar/top.sls, salt/orch) and the site's pillar in /srv/pillar; the
minions `qmaster` (roles sge-cell + sge-admin), `hub-dev` and `hub-prod` (jupyterhub-hub) are booted
systemd hosts running salt-minion, keys accepted here. dev and prod differ only in their pillar
files. /home, each hub's env (its worker env too) and token directory are shared with `qmaster`
like a cluster filesystem.

The tests run in order and build on each other (module-scoped hosts). Orchestration wall times are
printed (pytest -s) and written as JSON to $JHSALT_MASTER_TIMES when set."""

import contextlib
import json
import os

import pytest
import requests

from tests.support.hosts import wait_for
from tests.support.saltdaemons import Minion, SaltMaster, host_pillar
from tests.support.webclient import HubUser

pytestmark = pytest.mark.integration

USERS = {"alice": 3101, "bob": 3102, "carol": 3103, "dave": 3104}
QM = "qmaster.jhsalt.test"  # the names Grid Engine knows the hosts by (their FQDNs)
SUBMIT = {"hub-dev": "hub-dev.jhsalt.test", "hub-prod": "hub-prod.jhsalt.test", "hub3": "hub3"}
TIMES = {}


def password(user):
    return f"{user}-pw-{USERS[user]}"


@pytest.fixture(scope="module", autouse=True)
def report_times():
    yield
    print("\n[orchestration wall times] " + json.dumps(TIMES))
    if os.environ.get("JHSALT_MASTER_TIMES"):
        with open(os.environ["JHSALT_MASTER_TIMES"], "w") as handle:
            json.dump(TIMES, handle, indent=1)


@pytest.fixture(scope="module")
def site(make_host, test_network, tmp_path_factory):
    """The master, the qmaster and two hubs; every host this module boots is stopped at its end
    (host names such as qmaster are free again for the next test module)."""
    with test_network.own_hosts():
        yield boot_site(make_host, test_network, tmp_path_factory)


def boot_site(make_host, test_network, tmp_path_factory):
    """Boots the four hosts, starts the master and the minions, writes the site's pillar."""
    shared = tmp_path_factory.mktemp("cluster")
    home = (shared / "home", "/home")
    dev = [(shared / "dev-opt", "/opt/jupyterhub"), (shared / "dev-secrets", "/srv/jupyterhub/secrets")]
    prod = [(shared / "prod-opt", "/opt/jupyterhub-prod"), (shared / "prod-secrets", "/srv/jupyterhub-prod/secrets")]
    salt = make_host("salt")
    qmaster = make_host("qmaster", binds=[home, *dev, *prod], shape="loopback")
    hub_dev = make_host("hub-dev", binds=[home, *dev], shape="static")
    hub_prod = make_host("hub-prod", binds=[home, *prod], shape="loopback")
    for user, uid in USERS.items():
        hub_dev.run(["useradd", "--create-home", "-u", str(uid), "--shell", "/bin/bash", user])
        for host in (hub_prod, qmaster):
            host.run(["useradd", "-u", str(uid), "--shell", "/bin/bash", user])
        for host in (hub_dev, hub_prod):
            host.run(["chpasswd"], input=f"{user}:{password(user)}\n")

    master = SaltMaster(salt).start()
    cluster = f"{test_network.subnet}.0/24"
    sge = {"qmaster": "qmaster"}
    master.put_pillar("hosts/qmaster.sls", host_pillar(None, ["sge-cell", "sge-admin"], sge={
        **sge, "cell_setup": {"exec_host": {"slots": 8}, "queues": {"all.q": {"slots": 8, "load_thresholds": "NONE"}}}}))
    dev_pillar = {"cluster_net_cidr": cluster, "sge": sge, "jh_admin_users": ["alice"],
                  "jh_whitelist_users": ["alice", "bob"]}
    prod_pillar = {"cluster_net_cidr": cluster, "sge": sge, "jh_admin_users": ["alice"],
                   "access": {"members": ["alice", "carol", "dave"]}, "tls": {"self_signed": True},
                   "venv_prefix": "/opt/jupyterhub-prod/venv", "lib_dir": "/opt/jupyterhub-prod/lib",
                   "spawner": {"secrets_dir": "/srv/jupyterhub-prod/secrets"}}
    master.put_pillar("hosts/hub-dev.sls", host_pillar("dev", ["jupyterhub-hub"], **dev_pillar))
    master.put_pillar("hosts/hub-prod.sls", host_pillar("prod", ["jupyterhub-hub"], **prod_pillar))
    for host in (qmaster, hub_dev, hub_prod):
        Minion(host).start()
    for host in (qmaster, hub_dev, hub_prod):
        master.accept(host.name)
    return {"master": master, "salt": salt, "qmaster": qmaster, "hub-dev": hub_dev, "hub-prod": hub_prod,
            "dev_pillar": dev_pillar, "prod_pillar": prod_pillar, "network": test_network}


def main_pid(host):
    return host.run(["systemctl", "show", "-p", "MainPID", "--value", "jupyterhub"]).stdout.strip()


def submit_hosts(qmaster):
    return qmaster.run(["qconf", "-ss"], check=False).stdout.split()


def login(host, user):
    """Log in through the login form, once the hub answers it (it may be restarting)."""
    session = requests.Session()
    session.trust_env = False  # no proxy, no CA bundle from the environment

    def form():
        with contextlib.suppress(requests.RequestException):
            page = session.get(f"https://{host.ip}/hub/login", verify=False, timeout=30)
            return page.status_code == 200 and 'name="_xsrf"' in page.text
    wait_for(form, timeout=120, interval=1, what=f"the login page of {host.name}")
    return HubUser(host.ip, user, password(user))


def wait_ready(user, timeout=180):
    def ready():
        server = user.server()
        assert server is not None, f"{user.user}'s server is gone"
        return server["ready"]
    wait_for(ready, timeout=timeout, interval=1, what=f"{user.user}'s server")


def running_jobs(qmaster, user):
    """Job IDs of `user` running on the qmaster host."""
    out = qmaster.run(["qstat", "-u", user, "-s", "r"]).stdout.splitlines()[2:]
    return [line.split()[0] for line in out if "@qmaster" in line]


def test_orchestration_brings_the_site_up(site):
    run = site["master"].orchestrate()
    TIMES["first orchestration (s)"] = round(run.duration, 1)
    print(f"\n[orchestration] first run: {run.duration:.1f}s")
    assert run.ok, str(run)
    # the formula's modules reached the minions from the master's file roots (saltutil.sync_all)
    for name in ("qmaster", "hub-dev", "hub-prod"):
        site[name].run(["test", "-f", "/var/cache/salt/minion/extmods/modules/sge.py"])
        site[name].run(["test", "-f", "/var/cache/salt/minion/extmods/states/sge.py"])
    for name in ("hub-dev", "hub-prod"):
        page = login(site[name], "alice")
        assert page.logged_in, (name, page.login_response.status_code)


def test_dev_refuses_a_user_off_its_whitelist_and_prod_admits_them(site):
    assert not login(site["hub-dev"], "carol").logged_in
    assert login(site["hub-dev"], "bob").logged_in
    assert login(site["hub-prod"], "carol").logged_in
    assert not login(site["hub-prod"], "bob").logged_in  # not in prod's access:members


def test_both_hubs_are_submit_hosts_and_spawn_jobs_on_the_qmaster(site):
    qmaster = site["qmaster"]
    assert {SUBMIT["hub-dev"], SUBMIT["hub-prod"]} <= set(submit_hosts(qmaster))
    alice, carol = login(site["hub-dev"], "alice"), login(site["hub-prod"], "carol")
    for user in (alice, carol):
        response = user.start()
        assert response.status_code in (201, 202), response.text
    for user in (alice, carol):
        wait_ready(user)
        assert running_jobs(qmaster, user.user), qmaster.run(["qstat", "-u", "*"]).stdout


def test_a_second_orchestration_changes_nothing(site):
    pids = {name: main_pid(site[name]) for name in ("hub-dev", "hub-prod")}
    run = site["master"].orchestrate()
    TIMES["second orchestration (s)"] = round(run.duration, 1)
    print(f"\n[orchestration] re-run: {run.duration:.1f}s")
    assert run.ok, str(run)
    assert run.changed_states() == {}
    assert {name: main_pid(site[name]) for name in pids} == pids


def test_pillar_edits_take_effect_and_spare_running_sessions(site):
    master, dev, prod, qmaster = site["master"], site["hub-dev"], site["hub-prod"], site["qmaster"]
    carol = login(prod, "carol")
    [carol_job] = running_jobs(qmaster, "carol")
    prod_pid, dev_pid = main_pid(prod), main_pid(dev)

    def highstate():
        run = master.salt("-L", "hub-dev,hub-prod", "state.highstate")
        assert run.minion_ok("hub-dev") and run.minion_ok("hub-prod"), str(run)
        assert run.minion_changes("hub-prod") == {}, run.minion_changes("hub-prod")
        return run

    # carol onto the dev whitelist, bob a dev admin
    edited = dict(site["dev_pillar"], jh_whitelist_users=["alice", "bob", "carol"], jh_admin_users=["alice", "bob"])
    master.put_pillar("hosts/hub-dev.sls", host_pillar("dev", ["jupyterhub-hub"], **edited))
    highstate()
    assert main_pid(dev) != dev_pid  # its config changed: restarted
    assert login(dev, "carol").logged_in
    assert login(dev, "alice").api("GET", "/users/bob").json()["admin"] is True
    # ... and off again
    master.put_pillar("hosts/hub-dev.sls", host_pillar("dev", ["jupyterhub-hub"], **site["dev_pillar"]))
    dev_pid = main_pid(dev)
    highstate()
    assert main_pid(dev) != dev_pid
    assert not login(dev, "carol").logged_in
    assert login(dev, "alice").api("GET", "/users/bob").json()["admin"] is False
    # prod was never restarted and carol's session there kept running
    assert main_pid(prod) == prod_pid
    assert carol.server()["ready"] and running_jobs(qmaster, "carol") == [carol_job]
    # a run with nothing edited restarts nothing
    dev_pid = main_pid(dev)
    run = highstate()
    assert run.minion_changes("hub-dev") == {} and main_pid(dev) == dev_pid


def test_a_pillar_error_names_the_key_and_changes_no_minion(site):
    master, prod = site["master"], site["hub-prod"]
    settings = prod.read_file("/etc/jupyterhub/settings.json")
    # a typo on dev, a valid edit on prod: the orchestration must stop before either is applied
    bad = dict(site["dev_pillar"], jh_whitelist_user=["carol"])
    master.put_pillar("hosts/hub-dev.sls", host_pillar("dev", ["jupyterhub-hub"], **bad))
    master.put_pillar("hosts/hub-prod.sls", host_pillar(
        "prod", ["jupyterhub-hub"], **dict(site["prod_pillar"], jh_admin_users=["alice", "dave"])))
    try:
        run = master.orchestrate()
        assert not run.ok
        assert "jh_whitelist_user" in run.stdout, str(run)
        steps = run.steps()
        assert steps["jupyterhub-pillar-valid-everywhere"]["result"] is False
        assert not any(step.startswith("jupyterhub-role-") for step in steps), list(steps)
        assert run.changed_states() == {}
        assert prod.read_file("/etc/jupyterhub/settings.json") == settings
    finally:
        master.put_pillar("hosts/hub-dev.sls", host_pillar("dev", ["jupyterhub-hub"], **site["dev_pillar"]))
        master.put_pillar("hosts/hub-prod.sls", host_pillar("prod", ["jupyterhub-hub"], **site["prod_pillar"]))


def test_a_third_hub_is_registered_by_the_next_run_and_deregistered_with_its_role(site, make_host):
    master, qmaster = site["master"], site["qmaster"]
    hub3 = make_host("hub3")
    # no local accounts on this host: nobody is whitelisted (the role refuses names it cannot find)
    hub3_pillar = {"cluster_net_cidr": f"{site['network'].subnet}.0/24", "sge": {"qmaster": "qmaster"}}
    master.put_pillar("hosts/hub3.sls", host_pillar("dev", ["jupyterhub-hub"], **hub3_pillar))
    Minion(hub3).start()
    master.accept("hub3")
    run = master.orchestrate()
    assert run.ok, str(run)
    assert SUBMIT["hub3"] in submit_hosts(qmaster)
    # nothing changed on the other hosts but the registration
    others = {key for key in run.changed_states() if key[1] not in ("hub3", None)}
    assert others == {("jupyterhub-hubs-are-the-submit-hosts", "qmaster",
                       "jupyterhub-sge-hub-hosts-are-the-managed-submit-hosts")}, others
    assert HubUser(hub3.ip, "nobody", "x").login_response.status_code in (200, 403)  # the page answers

    master.put_pillar("hosts/hub3.sls", host_pillar("dev", [], **hub3_pillar))
    run = master.orchestrate()
    assert run.ok, str(run)
    hosts = submit_hosts(qmaster)
    assert SUBMIT["hub3"] not in hosts and {SUBMIT["hub-dev"], SUBMIT["hub-prod"]} <= set(hosts)
