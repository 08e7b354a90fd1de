"""Fixtures for integration tests: real Debian 12 hosts booted with systemd-nspawn (tests/support/hosts.py).

    def test_something(make_host):
        hub = make_host("hub")                        # container <prefix>-hub, hostname "hub"
        demo = make_host("demo", shape="loopback")    # its name on 127.0.1.1, like a Debian install
        node = make_host("node1", binds=[(shared, "/opt/shared")])
        assert hub.state_apply("jupyterhub", pillar={...}).ok

Environment: JHSALT_TEST_PREFIX (container/bridge/nft names, default "jht") and JHSALT_TEST_SUBNET
(first three octets of the bridge's /24, default "10.251.0") keep concurrent runs apart. Parallel
pytest-xdist workers (bin/test) each get their own: worker gwN uses prefix <prefix><N> and subnet
<a>.<b>.<c+1+N>, i.e. jht0 on 10.251.1.0/24, jht1 on 10.251.2.0/24 by default.
"""
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # so that `tests.support` imports
from tests.support import hosts  # noqa: E402

REQUIRED_TOOLS = ("systemd-nspawn", "nsenter", "nft", "ip", "git", "mount")


def _skip_reason():
    if os.geteuid() != 0:
        return "integration tests boot systemd-nspawn containers and need root"
    missing = [tool for tool in REQUIRED_TOOLS if not shutil.which(tool)]
    if missing:
        return f"integration tests need {', '.join(missing)} (./bootstrap.sh --tests installs them)"
    return None


def pytest_collection_modifyitems(config, items):
    """Mark everything below tests/integration `integration` (-m 'not integration' deselects it) and
    skip it where containers cannot be booted."""
    reason = _skip_reason()
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def host_template():
    """Path of the cached template rootfs (built on first use: ~50 s debootstrap + bootstrap.sh)."""
    return hosts.ensure_template()


def network_names(environ=os.environ):
    """(prefix, subnet) of this pytest process's test network: from JHSALT_TEST_PREFIX/SUBNET, and
    one of its own for every pytest-xdist worker (PYTEST_XDIST_WORKER gw0, gw1, ...)."""
    prefix = environ.get("JHSALT_TEST_PREFIX", "jht")
    subnet = environ.get("JHSALT_TEST_SUBNET", "10.251.0")
    worker = environ.get("PYTEST_XDIST_WORKER")
    if worker:
        n = int(worker.removeprefix("gw"))
        first, second, third = subnet.split(".")
        prefix, subnet = f"{prefix}{n}", f"{first}.{second}.{int(third) + 1 + n}"
    return prefix, subnet


@pytest.fixture(scope="session")
def test_network():
    network = hosts.TestNetwork(*network_names())
    try:
        yield network.start()
    finally:
        network.close()


@pytest.fixture(scope="session")
def make_host(host_template, test_network):
    """make_host(name, *, ip=None, binds=(), shape="bridge") -> hosts.Host, booted and with the repo
    at /srv/formula.

    Hosts live until the end of the session unless the test stops them (host.stop()); names are unique
    among running hosts. binds: [(dir on the machine, dir in the container)], e.g. a shared filesystem.
    shape: how the host's own name resolves, as on real installs - "loopback" (127.0.1.1: Debian
    installer, cloud images), "static" (its address, with an FQDN), "two-nics" (a cluster and a
    public interface, the name on the public one) - or "bridge" (the harness's plain shape); see
    tests/support/hosts.py.
    """
    def make(name, *, ip=None, binds=(), shape="bridge"):
        return test_network.add_host(name, host_template, ip=ip, binds=binds, shape=shape)
    return make
