"""The integration-test harness itself: booted hosts, names, NAT, Salt, shared folders, cleanup."""
import uuid

import pytest


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return tmp_path_factory.mktemp("shared")


@pytest.fixture(scope="module")
def alpha(make_host, shared):
    host = make_host("alpha", binds=[(shared, "/srv/shared")])
    yield host
    host.stop()


@pytest.fixture(scope="module")
def beta(make_host, shared, alpha):
    host = make_host("beta", binds=[(shared, "/srv/shared")])
    yield host
    host.stop()


def test_hosts_reach_each_other_by_name(alpha, beta):
    for host in (alpha, beta):
        host.run("apt-get update -q && apt-get install -y -q iputils-ping", timeout=300)
    alpha.run(["ping", "-c1", "-W5", "beta"])
    beta.run(["ping", "-c1", "-W5", "alpha"])


def test_own_name_resolves_to_bridge_address(alpha, beta):
    for host in (alpha, beta):
        assert host.run("hostname").stdout.strip() == host.name
        assert host.run(["getent", "hosts", host.name]).stdout.split()[0] == host.ip
        assert host.run(["python3", "-c", "import socket; print(socket.gethostbyname(socket.getfqdn()))"]
                        ).stdout.strip() == host.ip
    assert alpha.run(["getent", "hosts", "beta"]).stdout.split()[0] == beta.ip  # added after alpha booted


def test_clean_environment_and_users(alpha):
    assert alpha.run("echo $HOME:$LANG:${PYTEST_CURRENT_TEST:-unset}").stdout.strip() == "/root:C.UTF-8:unset"
    assert alpha.run("echo $X", env={"X": "y"}).stdout.strip() == "y"
    alpha.run(["useradd", "-m", "harnessuser"], check=False)
    assert alpha.run(["id", "-un"], user="harnessuser").stdout.strip() == "harnessuser"
    with pytest.raises(AssertionError, match="rc=3"):
        alpha.run("echo visible-output; exit 3")


def test_pypi_through_nat(alpha):
    pip = "/opt/salt-jupyterhub/venv/bin/pip"
    alpha.run([pip, "download", "-q", "--no-deps", "-d", "/tmp/x", "six==1.16.0"], timeout=300)
    assert "six-1.16.0" in alpha.run(["ls", "/tmp/x"]).stdout


def test_salt_call(alpha):
    ping = alpha.salt_call("test.ping")
    assert ping.ok and ping.data is True, ping
    assert alpha.salt_call("grains.get", "id").data == "alpha"
    assert "harness" in alpha.salt_call("pillar.items", pillar={"harness": {"a": [1]}}).data  # values masked


def test_state_apply_changes_once(alpha):
    sls = f"harness{uuid.uuid4().hex[:8]}"
    alpha.put_file(f"/srv/formula/salt/{sls}.sls", f"""
harness-file:
  file.managed:
    - name: /tmp/{sls}.txt
    - contents: {{{{ pillar.get('word', 'hello') }}}}
""")
    first = alpha.state_apply(sls)
    assert first.ok, first
    assert list(first.changed()) == ["harness-file"], first
    assert alpha.read_file(f"/tmp/{sls}.txt").strip() == "hello"
    second = alpha.state_apply(sls)
    assert second.ok and second.changed() == {}, second
    dry = alpha.state_apply(sls, pillar={"word": "bye"}, test=True)
    assert dry.ok and "harness-file" in dry.changed(), dry
    assert alpha.read_file(f"/tmp/{sls}.txt").strip() == "hello"


def test_failed_state_is_reported(alpha):
    alpha.put_file("/srv/formula/salt/harnessfail.sls", "broken:\n  cmd.run:\n    - name: exit 7\n")
    result = alpha.state_apply("harnessfail")
    assert not result.ok and list(result.failed()) == ["broken"], result
    render = alpha.state_apply("harness-does-not-exist")
    assert not render.ok and render.failed(), render


def test_binds_share_files(alpha, beta, shared):
    alpha.put_file("/srv/shared/from-alpha", "hi beta\n")
    assert beta.read_file("/srv/shared/from-alpha") == "hi beta\n"
    assert (shared / "from-alpha").read_text() == "hi beta\n"


def test_stop_removes_everything(make_host, test_network):
    gamma = make_host("gamma")
    assert gamma.run("systemctl is-system-running").stdout.strip() in ("running", "degraded")
    gamma.stop()
    assert "gamma" not in test_network.hosts
    assert not gamma.dir.exists() and not any(d.exists() for d in gamma.cgroups)
    assert str(gamma.root) not in open("/proc/self/mountinfo").read()


@pytest.mark.parametrize("shape", ["loopback", "static", "two-nics"])
def test_host_shapes_resolve_names_like_real_installs(make_host, test_network, alpha, shape):
    host = make_host(f"shape-{shape}", shape=shape)
    try:
        own = {"loopback": "127.0.1.1", "static": host.ip, "two-nics": host.public_ip}[shape]
        assert host.run(["getent", "hosts", host.name]).stdout.split()[:2] == [own, host.fqdn]
        assert host.run(["hostname", "--fqdn"]).stdout.strip() == f"{host.name}.jhsalt.test"
        addresses = {line.split()[1]: line.split()[3] for line in host.run(
            ["ip", "-4", "-o", "addr", "show", "scope", "global"]).stdout.splitlines()}
        expected = {"host0": f"{host.ip}/24"}
        if shape == "two-nics":
            expected["pub0"] = f"{host.public_ip}/24"
        assert addresses == expected
        # the others see its name on the bridge (cluster network) address, and it sees theirs
        assert alpha.run(["getent", "hosts", host.name]).stdout.split()[:2] == [host.ip, host.fqdn]
        assert host.run(["getent", "hosts", "alpha"]).stdout.split()[0] == alpha.ip
    finally:
        host.stop()
