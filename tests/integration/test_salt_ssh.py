"""The agentless path on real hosts: salt-ssh from a `salt` host, which has the formula as its file
roots (salt/top.sls, pillar/top.sls as they are) and the host's pillar in /srv/pillar, applies the
hub role to a fresh host that runs no minion, through a roster and root's SSH key.

Its own module (not part of test_master's site) so that a parallel run can take it on a worker of
its own: the first highstate over salt-ssh is the longest single test of the suite."""

import re
import textwrap

import pytest

from tests.support.hosts import wait_for
from tests.support.saltdaemons import SaltMaster, host_pillar

pytestmark = pytest.mark.integration

ROSTER = """hub-ssh:
  host: {ip}
  user: root
  priv: /root/.ssh/id_ed25519
"""
# salt-ssh runs ssh for each remote call (its Jinja's salt[...] lookups too): one shared connection
SSH_CONFIG = """Host *
  ControlMaster auto
  ControlPath /root/.ssh/control-%C
  ControlPersist 120
"""
LOGIN_PAGE = textwrap.dedent("""
    import ssl, urllib.request
    print(urllib.request.urlopen("https://127.0.0.1/hub/login", context=ssl._create_unverified_context()).read().decode())
    """)


@pytest.fixture(scope="module")
def hosts(make_host, test_network):
    """The salt host and the target; both are stopped at the module's end."""
    with test_network.own_hosts():
        yield make_host("salt"), make_host("hub-ssh", shape="loopback")


def test_salt_ssh_applies_the_hub_role_to_a_fresh_host(hosts, test_network):
    """No minion on the target: the same top file and host pillar as with a master, through a roster."""
    salt, target = hosts
    master = SaltMaster(salt).start()
    target.run(["apt-get", "install", "-y", "-q", "openssh-server"], timeout=600)
    salt.run(["apt-get", "install", "-y", "-q", "openssh-client"], timeout=600)
    salt.run(["install", "-d", "-m", "700", "/root/.ssh"])
    salt.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", "/root/.ssh/id_ed25519"])
    target.put_file("/root/.ssh/authorized_keys", salt.read_file("/root/.ssh/id_ed25519.pub"), mode=0o600)
    keys = salt.run(["ssh-keyscan", "-t", "ed25519", target.ip]).stdout
    salt.put_file("/root/.ssh/known_hosts", keys, mode=0o600)
    salt.put_file("/etc/salt/roster", ROSTER.format(ip=target.ip))
    salt.put_file("/root/.ssh/config", SSH_CONFIG, mode=0o600)
    pillar = {"cluster_net_cidr": f"{test_network.subnet}.0/24",
              # a name the target resolves, for act_qmaster; this test submits no jobs
              "sge": {"qmaster": "salt"},
              # no Salt on the host: nothing for the env-update timer to run
              "update_timer": {"enabled": False}}
    master.put_pillar("hosts/hub-ssh.sls", host_pillar("dev", ["jupyterhub-hub"], **pillar))

    run = master.cli("salt-ssh", "hub-ssh", "state.highstate", timeout=3600)
    print(f"\n[salt-ssh] hub role, first run: {run.duration:.1f} s")
    assert run.returncode == 0 and run.minion_ok("hub-ssh"), str(run)
    target.run(["systemctl", "is-active", "jupyterhub", "jupyterhub-proxy", "nginx"])
    # nginx answers 503 until the hub (just started) listens
    page = wait_for(lambda: target.run(["python3", "-c", LOGIN_PAGE], check=False).stdout, timeout=120,
                    interval=1, what="the hub's login page")
    assert re.search(r'name="password"', page)

    run = master.cli("salt-ssh", "hub-ssh", "state.highstate", timeout=3600)
    assert run.returncode == 0 and run.minion_ok("hub-ssh") and run.minion_changes("hub-ssh") == {}, str(run)
