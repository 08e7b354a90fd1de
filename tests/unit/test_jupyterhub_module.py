"""Unit tests of _modules/jupyterhub.py: pillar validation, host values, sudo Runas list."""

import grp
import os
import pwd
import stat

import jupyterhub_module as jh  # provided by tests/unit/conftest.py
import pytest
import yaml
from salt.exceptions import CommandExecutionError


@pytest.fixture(scope="module")
def defaults(repo):
    return yaml.safe_load((repo / "salt/jupyterhub/defaults.yaml").read_text())["jupyterhub"]


@pytest.fixture(scope="module")
def schema(repo):
    return yaml.safe_load((repo / "salt/jupyterhub/schema.yaml").read_text())


@pytest.fixture
def configure_loader_modules():
    return {
        jh: {
            "__grains__": {"fqdn": "hub.example.org", "host": "hub", "id": "hub", "fqdn_ip4": []},
            "__salt__": {"network.ip_addrs": lambda: ["192.0.2.10", "10.1.2.3"]},
            "__opts__": {"test": False},
        }
    }


def errors_of(config, defaults, schema):
    with pytest.raises(CommandExecutionError) as info:
        jh.check_pillar(config, defaults, schema)
    return str(info.value)


def test_defaults_and_profiles_are_valid(repo, defaults, schema):
    assert jh.check_pillar({}, defaults, schema)
    assert jh.check_pillar(None, defaults, schema)
    for profile in ("dev", "prod"):
        data = yaml.safe_load((repo / f"pillar/jupyterhub/{profile}.sls").read_text())
        assert jh.check_pillar(data["jupyterhub"], defaults, schema)


def test_pillar_example_is_valid(repo, defaults, schema):
    data = yaml.safe_load((repo / "pillar.example").read_text())
    assert jh.check_pillar(data["jupyterhub"], defaults, schema)


@pytest.mark.parametrize(
    "config, key, expected",
    [
        ({"is_devel_env": "yes"}, "jupyterhub:is_devel_env", "expected a boolean"),
        ({"jh_admin_users": "alice"}, "jupyterhub:jh_admin_users", "expected a list"),
        ({"jh_admin_users": ["alice", 3]}, "jupyterhub:jh_admin_users:1", "expected a string"),
        ({"hub": {"port": "8081"}}, "jupyterhub:hub:port", "expected an integer"),
        ({"hub": {"port": True}}, "jupyterhub:hub:port", "expected an integer"),
        ({"hub": ["port"]}, "jupyterhub:hub", "expected a mapping"),
        ({"tls": {"key_size": None}}, "jupyterhub:tls:key_size", "expected an integer"),
    ],
)
def test_wrong_type_names_the_key(defaults, schema, config, key, expected):
    message = errors_of(config, defaults, schema)
    assert f"{key}: {expected}" in message
    assert "nothing was changed" in message


def test_unknown_keys_are_named_with_the_allowed_ones(defaults, schema):
    message = errors_of({"jh_admins": ["bob"], "hub": {"prot": 1}}, defaults, schema)
    assert "jupyterhub:jh_admins: unknown key" in message
    assert "jupyterhub:hub:prot: unknown key; allowed keys here: extra_groups, ip, log_level, port" in message


def test_open_maps_accept_new_entries_but_check_their_type(defaults, schema):
    queues = {"spawner": {"fields": {"queue": {"choices": {"gpu.q": "GPU nodes"}}}}}
    assert jh.check_pillar(queues, defaults, schema)
    bad = {"spawner": {"fields": {"queue": {"choices": {"gpu.q": 5}}}}}
    assert "jupyterhub:spawner:fields:queue:choices:gpu.q: expected a string" in errors_of(
        bad, defaults, schema
    )


def test_all_errors_are_reported_at_once(defaults, schema):
    message = errors_of({"is_devel_env": 1, "user": 2}, defaults, schema)
    assert "is_devel_env" in message and "jupyterhub:user" in message


def test_int_is_accepted_where_a_float_is_expected():
    assert jh.check_pillar({"x": 3}, {"x": 1.5}, {})
    assert "expected a number" in errors_of({"x": "3"}, {"x": 1.5}, {})


def test_cluster_address_picks_the_address_in_the_network():
    assert jh.cluster_address("10.0.0.0/8") == "10.1.2.3"
    assert jh.cluster_address("0.0.0.0/0") == "192.0.2.10"


def test_cluster_address_prefers_the_fqdn_address():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(jh.__grains__, "fqdn_ip4", ["10.1.2.3"])
        assert jh.cluster_address("0.0.0.0/0") == "10.1.2.3"


def test_cluster_address_without_address_in_network_is_a_clear_error():
    with pytest.raises(CommandExecutionError) as info:
        jh.cluster_address("172.16.0.0/12")
    message = str(info.value)
    assert "cluster_net_cidr" in message and "172.16.0.0/12" in message
    assert "192.0.2.10, 10.1.2.3" in message


def test_cluster_address_rejects_a_malformed_network():
    with pytest.raises(CommandExecutionError, match="cluster_net_cidr: '10.0.0.300/8'"):
        jh.cluster_address("10.0.0.300/8")


def test_computed_values(defaults):
    config = dict(defaults, tls=dict(defaults["tls"], subject_alt_names=["DNS:jupyter.example.org"]))
    values = jh.computed(config)
    assert values["hub_ip"] == "10.1.2.3"
    assert values["env_prefix"] == "/opt/jupyterhub/venv"
    assert values["common_name"] == "hub.example.org"
    assert values["subject_alt_names"] == [
        "DNS:hub.example.org",
        "DNS:hub",
        "IP:192.0.2.10",
        "IP:10.1.2.3",
        "DNS:jupyter.example.org",
    ]
    conda = jh.computed(dict(defaults, env_provider="conda"))
    assert conda["env_prefix"] == "/opt/conda/envs/jupyterhub"


def test_paths_follow_config_dir_and_runtime_dir(defaults):
    """Everything under the configuration directory moves with it (the hub, the spawner, bin/setup
    and the nginx site read these values; nothing else names /etc/jupyterhub)."""
    values = jh.computed(dict(defaults, config_dir="/etc/jhub-site", runtime_dir="/var/lib/jhub"))
    assert values["settings_file"] == "/etc/jhub-site/settings.json"
    assert values["cookie_secret_file"] == "/etc/jhub-site/jupyterhub_cookie_secret"
    assert values["job_template"] == "/etc/jhub-site/templates/sgespawner-job.sh.j2"
    assert values["form_template"] == "/etc/jhub-site/templates/sgespawner-form.html"
    assert values["secrets_dir"] == "/var/lib/jhub/secrets"
    assert values["state_dir"] == "/var/lib/jhub/state"
    assert values["spawner_src"] == "/opt/jupyterhub/lib/sgespawner"
    spawner = dict(defaults["spawner"], job_template="/site/job.j2", worker_env="/shared/env",
                   secrets_dir="/shared/secrets")
    values = jh.computed(dict(defaults, spawner=spawner))
    assert (values["job_template"], values["worker_env"], values["secrets_dir"]) == (
        "/site/job.j2", "/shared/env", "/shared/secrets")
    assert jh.computed(defaults)["worker_env"] == "/opt/jupyterhub/venv"  # the hub's own env


def test_conda_paths(defaults):
    paths = jh.computed(dict(defaults, conda_root="/opt/conda/"))["conda_paths"]
    assert paths == {"root": "/opt/conda", "pkgs_dir": "/opt/conda/pkgs",
                     "env_lock": "/opt/conda/locks/jupyterhub.lock.yml",
                     "base_lock": "/opt/conda/locks/base.lock.yml", "cluster_prefix": "",
                     "cluster_pkgs_dir": ""}
    conda = dict(defaults["conda"], cluster_env={"prefix": "/shared/envs/hub/", "pkgs_dir": ""})
    paths = jh.computed(dict(defaults, conda=conda))["conda_paths"]
    assert paths["env_lock"] == "/shared/envs/hub.lock.yml"
    assert paths["cluster_prefix"] == "/shared/envs/hub" and paths["cluster_pkgs_dir"] == "/shared/envs/pkgs"


class FakeAccounts:
    """pwd/grp/os.getgrouplist of a host as installers leave it: root, a system account, the
    installer's admin (group sudo), a cloud image's `debian` (sudo ALL in sudoers.d), ordinary
    users, and a Grid Engine manager."""

    USERS = {"root": 0, "daemon": 1, "admin": 1000, "debian": 1001, "alice": 1002, "bob": 1003,
             "sgemgr": 1004}
    GROUPS = {"root": (0, []), "sudo": (27, ["admin"]), "users": (100, []),
              "jupyterhub-users": (990, ["alice", "bob", "admin", "sgemgr", "daemon"])}

    def getpwnam(self, name):
        if name not in self.USERS:
            raise KeyError(name)
        uid = self.USERS[name]
        return pwd.struct_passwd((name, "x", uid, 100 if uid else 0, "", f"/home/{name}", "/bin/sh"))

    def getpwall(self):
        return [self.getpwnam(name) for name in self.USERS]

    def getgrnam(self, name):
        if name not in self.GROUPS:
            raise KeyError(name)
        gid, members = self.GROUPS[name]
        return grp.struct_group((name, "x", gid, members))

    def getgrgid(self, gid):
        return next(self.getgrnam(n) for n, (g, _) in self.GROUPS.items() if g == gid)

    def getgrouplist(self, name, gid):
        return [gid] + [g for n, (g, members) in self.GROUPS.items() if name in members]


@pytest.fixture
def accounts(monkeypatch):
    fake = FakeAccounts()
    monkeypatch.setattr(jh, "pwd", fake)
    monkeypatch.setattr(jh, "grp", fake)
    monkeypatch.setattr(jh.os, "getgrouplist", fake.getgrouplist)
    commands = []

    def run_all(argv, **kwargs):
        commands.append(argv)
        if argv[0] == "sudo":  # sudo -n -l -U NAME -u root /bin/sh: allowed only for debian
            return {"retcode": 0 if argv[4] == "debian" else 1, "stdout": "", "stderr": ""}
        if argv == ["qconf", "-sm"]:
            return {"retcode": 0, "stdout": "root\nsgeadmin\nsgemgr", "stderr": ""}
        return {"retcode": 1, "stdout": "", "stderr": "no operator list defined"}

    monkeypatch.setitem(jh.__salt__, "cmd.run_all", run_all)
    monkeypatch.setattr(jh.shutil, "which", lambda name: f"/usr/bin/{name}")
    return commands


def test_privileged_accounts_are_named_with_the_reason(accounts):
    assert jh.privileged_reason("alice") == ""
    assert "uid 0 is a system account" in jh.privileged_reason("root")
    assert "uid 1 is a system account" in jh.privileged_reason("daemon")
    assert jh.privileged_reason("admin") == "member of the privileged group sudo"
    assert jh.privileged_reason("debian") == "sudoers lets it run anything as root"
    assert jh.privileged_reason("sgemgr") == "Grid Engine manager or operator"
    assert jh.privileged_reason("nobody-here") == "no such account"
    # commands are lists, never a shell line
    assert ["sudo", "-n", "-l", "-U", "alice", "-u", "root", "/bin/sh"] in accounts


def test_check_server_users_refuses_every_privileged_account_at_once(accounts):
    assert jh.check_server_users(["alice", "bob"]) is True
    with pytest.raises(CommandExecutionError) as info:
        jh.check_server_users(["alice", "admin", "debian", "ghost"])
    message = str(info.value)
    assert message.startswith("jupyterhub:access:members:")
    assert "admin (member of the privileged group sudo)" in message
    assert "debian (sudoers lets it run anything as root)" in message
    assert "ghost (no such account)" in message and "alice" not in message.split("Allowed")[0]


def test_sudo_runas_is_an_allow_list_without_privileged_members(accounts):
    items = [item.strip() for item in jh.sudo_runas("jupyterhub-users").split(",")]
    assert items[0] == "%jupyterhub-users"  # only the group, then exclusions (last match wins)
    assert "ALL" not in items
    assert {"!%sudo", "!%wheel", "!%admin", "!root", "!#0"} <= set(items)
    # privileged accounts are excluded by uid: members admin (sudo), sgemgr (SGE manager) and
    # daemon (system account), and debian (sudo ALL), not a member now but maybe added by hand later
    assert {"!#1000", "!#1001", "!#1004", "!#1"} <= set(items)
    assert "!#1002" not in items and "!#1003" not in items  # alice and bob may get servers


def test_sudo_runas_needs_the_group():
    with pytest.raises(CommandExecutionError, match="access:group: group 'nosuchgroup' does not exist"):
        jh.sudo_runas("nosuchgroup")


def test_write_secret_is_private_and_random(tmp_path):
    user = pwd.getpwuid(os.getuid()).pw_name
    group = __import__("grp").getgrgid(os.getgid()).gr_name
    first, second = tmp_path / "a", tmp_path / "b"
    jh.write_secret(str(first), 16, "TOKEN={secret}\n", user, group, "0600")
    jh.write_secret(str(second), 16, "TOKEN={secret}\n", user, group, "0600")
    text = first.read_text()
    assert text.startswith("TOKEN=") and len(text.strip()) == len("TOKEN=") + 32
    assert text != second.read_text()
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-secret")]


# ---- salt_call_command: what the root timer runs must be root's alone ------------------------


@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A masterless checkout (Saltfile + conf/minion) and a Salt venv, both root's (0755)."""
    from tests.unit.conftest import _load

    trusted_path = _load("trusted_path_module", jh.__file__.replace("jupyterhub.py", "trusted_path.py"))
    repo = tmp_path / "srv" / "salt-jupyterhub"
    (repo / "conf").mkdir(parents=True)
    (repo / "Saltfile").write_text("salt-call: {local: true}\n")
    (repo / "conf" / "minion").write_text("file_client: local\n")
    venv = tmp_path / "opt" / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("")
    monkeypatch.setattr(jh.sys, "executable", str(venv / "bin" / "python"))
    monkeypatch.setattr(jh.sys, "prefix", str(venv))
    monkeypatch.setitem(jh.__opts__, "conf_file", str(repo / "conf" / "minion"))
    monkeypatch.setitem(jh.__opts__, "file_client", "local")
    monkeypatch.setitem(jh.__salt__, "trusted_path.check", trusted_path.check)
    return repo, venv


def test_salt_call_command_runs_from_a_root_only_checkout(checkout):
    repo, venv = checkout
    assert jh.salt_call_command() == {
        "cwd": str(repo),
        "argv": [str(venv / "bin" / "salt-call")],
        "trusted": [str(repo), str(venv)],
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (files of other owners)")
@pytest.mark.parametrize(
    "change,component,reason",
    [
        (lambda repo, venv: os.chmod(repo.parent, 0o775), "{repo.parent}", "writable by group"),
        (lambda repo, venv: os.chown(repo / "conf" / "minion", 65534, 0), "{repo}/conf/minion", "owned by uid 65534"),
        (lambda repo, venv: os.chmod(venv / "bin", 0o777), "{venv}/bin", "writable by group and others"),
    ],
    ids=["parent-group-writable", "config-of-a-user", "venv-bin-world-writable"],
)
def test_salt_call_command_refuses_what_others_can_change(checkout, change, component, reason):
    repo, venv = checkout
    change(repo, venv)
    with pytest.raises(CommandExecutionError) as err:
        jh.salt_call_command()
    text = str(err.value)
    assert "the env-update timer runs salt-call as root from" in text
    assert f"{component.format(repo=repo, venv=venv)} is {reason}" in text
    assert "keep the checkout and Salt's venv in directories only root can write" in text


@pytest.mark.parametrize(
    "resolved, expected",
    [
        (("demo.example.org", ["demo"], ["127.0.1.1"]),
         {"name": "demo.example.org", "host_aliases": "demo.example.org localhost"}),
        (("demo", [], ["127.0.0.1"]), {"name": "demo", "host_aliases": "demo localhost"}),
        (("demo.example.org", ["demo"], ["10.1.2.3"]), {"name": "demo.example.org", "host_aliases": ""}),
    ],
)
def test_sge_qmaster_is_named_as_sge_resolves_it_and_aliased_only_on_loopback(monkeypatch, resolved, expected):
    monkeypatch.setattr(jh.socket, "gethostbyname_ex", lambda name: resolved)
    assert jh.sge_qmaster("demo") == expected


def test_sge_qmaster_that_does_not_resolve_is_a_clear_error(monkeypatch):
    def fail(name):
        raise OSError(-2, "Name or service not known")

    monkeypatch.setattr(jh.socket, "gethostbyname_ex", fail)
    with pytest.raises(CommandExecutionError, match=r"jupyterhub:sge:qmaster: .*'nosuch' does not resolve"):
        jh.sge_qmaster("nosuch")


def test_merge_replaces_the_forms_choices_and_merges_the_rest():
    defaults = {"hub": {"port": 8081, "ip": ""}, "spawner": {"fields": {
        "queue": {"default": "all.q", "choices": {"all.q": "Default"}}}}}
    pillar = {"hub": {"port": 9000}, "spawner": {"fields": {"queue": {"choices": {"gpu.q": "GPUs"}}}}}
    schema = {"replaced": ["spawner:fields:*:choices"]}
    merged = jh.merge(defaults, pillar, schema)
    assert merged["hub"] == {"port": 9000, "ip": ""}
    assert merged["spawner"]["fields"]["queue"] == {"default": "all.q", "choices": {"gpu.q": "GPUs"}}
    assert defaults["spawner"]["fields"]["queue"]["choices"] == {"all.q": "Default"}  # not changed
    assert jh.merge(defaults, {}, schema) == defaults
