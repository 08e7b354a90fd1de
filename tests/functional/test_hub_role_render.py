"""The hub role renders with the real Salt loader, for both pillar profiles, and refuses bad pillar."""

import shutil

import pytest
from saltfactories.utils.functional import Loaders

ROLE_STATES = {
    "jupyterhub-system-packages-installed",
    "jupyterhub-user-present",
    "jupyterhub-python-env",
    "jupyterhub-sudoers-installed",
    "jupyterhub-runtime-dir-present",
    "jupyterhub-cookie-secret-generated",
    "jupyterhub-proxy-token-generated",
    "jupyterhub-tls-key-present",
    "jupyterhub-tls-csr-present",
    "jupyterhub-settings-installed",
    "jupyterhub-config-loads",
    "jupyterhub-proxy-running",
    "jupyterhub-running",
    "jupyterhub-nginx-running",
    "jupyterhub-env-update-timer-running",
    "jupyterhub-journald-configured",
}


# the dev/prod profiles bind the hub's API to the address in cluster_net_cidr (default 10.0.0.0/8),
# which this machine may not have: any address of it will do here
ANY = {"cluster_net_cidr": "0.0.0.0/0"}


def show(loaders, sls="jupyterhub", pillar=None, **kwargs):
    pillar = {"jupyterhub": {**ANY, **(pillar or {}).get("jupyterhub", {})}}
    return loaders.modules.state.show_sls(sls, pillar=pillar, **kwargs)


def settings_of(rendered):
    for item in rendered["jupyterhub-settings-installed"]["file"]:
        if isinstance(item, dict) and "dataset" in item:
            return item["dataset"]
    raise AssertionError("no dataset in jupyterhub-settings-installed")


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_role_renders_for_each_profile(make_loaders, profile):
    rendered = show(make_loaders(jupyterhub_profile=profile))
    assert isinstance(rendered, dict), rendered
    assert ROLE_STATES <= set(rendered)
    settings = settings_of(rendered)
    assert settings["is_devel_env"] is (profile == "dev")
    assert settings["hub_ip"]
    assert settings["env_prefix"] == "/opt/jupyterhub/venv"


def test_dev_gets_a_self_signed_certificate(make_loaders):
    rendered = show(make_loaders(jupyterhub_profile="dev"))
    assert "jupyterhub-tls-certificate-self-signed" in rendered
    assert "jupyterhub-tls-certificate-missing-notice" not in rendered


def test_prod_without_certificate_applies_and_says_so(make_loaders):
    rendered = show(
        make_loaders(jupyterhub_profile="prod"),
        pillar={"jupyterhub": {"tls": {"cert_file": "/nonexistent/hub.crt"}}},
    )
    notice = rendered["jupyterhub-tls-certificate-missing-notice"]["test"]
    text = next(item["text"] for item in notice if isinstance(item, dict) and "text" in item)
    assert "/nonexistent/hub.crt does not exist" in text and "hub.csr" in text


def test_prod_with_certificate_links_it(make_loaders, tmp_path):
    cert = tmp_path / "hub.crt"
    cert.write_text("certificate")
    rendered = show(
        make_loaders(jupyterhub_profile="prod"),
        pillar={"jupyterhub": {"tls": {"cert_file": str(cert)}}},
    )
    assert "jupyterhub-tls-certificate-linked" in rendered
    assert "jupyterhub-tls-certificate-self-signed" not in rendered


def args_of(rendered, state_id):
    (module,) = [key for key in rendered[state_id] if not key.startswith("__")]
    return {k: v for item in rendered[state_id][module] if isinstance(item, dict) for k, v in item.items()}


def test_pillar_whitelist_and_admins_reach_the_settings(make_loaders):
    rendered = show(
        make_loaders(jupyterhub_profile="dev"),
        pillar={"jupyterhub": {"jh_admin_users": ["alice"], "jh_whitelist_users": ["alice", "bob"],
                               "access": {"members": ["carol"]}}},
    )
    settings = settings_of(rendered)
    assert settings["jh_admin_users"] == ["alice"]
    assert settings["jh_whitelist_users"] == ["alice", "bob"]
    # dev: the whitelisted users get servers too; the group's members are exactly these
    assert args_of(rendered, "jupyterhub-users-group-present")["members"] == ["alice", "bob", "carol"]


def test_group_members_managed_elsewhere_are_left_alone(make_loaders):
    rendered = show(make_loaders(jupyterhub_profile="prod"),
                    pillar={"jupyterhub": {"access": {"group": "hpcusers", "manage_members": False}}})
    group = args_of(rendered, "jupyterhub-users-group-present")
    assert group["name"] == "hpcusers" and "members" not in group


def test_sudo_rule_names_only_qsub_and_qdel(make_loaders):
    context = args_of(show(make_loaders(jupyterhub_profile="prod")), "jupyterhub-sudoers-installed")["context"]
    assert context["commands"] == ["/usr/lib/gridengine/qsub", "/usr/lib/gridengine/qdel"]
    assert context["access"]["group"] == "jupyterhub-users" and context["command_timeout"] == 30


@pytest.mark.parametrize(
    "pillar, message",
    [
        ({"hub": {"port": "eighty"}}, "jupyterhub:hub:port: expected an integer"),
        ({"jh_admins": []}, "jupyterhub:jh_admins: unknown key"),
        ({"is_devel_env": "false"}, "jupyterhub:is_devel_env: expected a boolean"),
        ({"cluster_net_cidr": "198.51.100.0/30"}, "jupyterhub:cluster_net_cidr: this host has no address in 198.51.100.0/30"),
    ],
)
def test_bad_pillar_stops_the_render_naming_the_key(make_loaders, pillar, message):
    rendered = make_loaders(jupyterhub_profile="dev").modules.state.show_sls(
        "jupyterhub", pillar={"jupyterhub": {**ANY, **pillar}})
    assert isinstance(rendered, list), "a bad pillar must not render any state"
    assert message in "\n".join(rendered)


def test_nginx_site_allows_only_tls12_and_13(make_loaders, repo, tmp_path):
    loaders = make_loaders(jupyterhub_profile="dev")
    settings = settings_of(show(loaders))
    out = tmp_path / "site.conf"
    text = loaders.modules.slsutil.renderer(
        str(repo / "salt/jupyterhub/files/nginx-site.conf.j2"), default_renderer="jinja", settings=settings
    )
    out.write_text(text)
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in text
    assert "TLSv1.1" not in text.replace("ssl_protocols TLSv1.2 TLSv1.3;", "")
    assert "Strict-Transport-Security" in text
    assert "return 301 https://$host$request_uri;" in text
    assert "client_max_body_size 100m;" in text


def test_demo_profile_is_the_default_and_adds_a_cell(make_loaders):
    loaders = make_loaders()
    top = loaders.modules.state.show_top()
    assert top["base"] == ["jupyterhub.sge.cell", "jupyterhub.sge.local_submit_host", "jupyterhub"]
    rendered = show(loaders)
    settings = settings_of(rendered)
    assert settings["is_devel_env"] is False and settings["tls"]["self_signed"] is True
    assert settings["hub_ip"] == "127.0.0.1"  # the jobs run here: nothing public on 8081
    assert args_of(rendered, "jupyterhub-users-group-present")["members"] == ["demo"]
    assert args_of(rendered, "jupyterhub-demo-account-password-generated")["password_file"] == (
        "/etc/jupyterhub/demo-password")
    assert "jupyterhub-tls-certificate-self-signed" in rendered
    assert "jupyterhub-tls-certificate-missing-notice" not in rendered


@pytest.mark.parametrize("profile", ["dev", "prod"])
def test_site_profiles_get_the_hub_role_only(make_loaders, profile):
    top = make_loaders(jupyterhub_profile=profile).modules.state.show_top()
    assert top["base"] == ["jupyterhub"]


def test_site_settings_are_merged_over_the_profile(minion_config, repo, tmp_path):
    """pillar/site.sls (untracked) overrides the profile; without it the pillar compiles too."""
    roots = tmp_path / "pillar"
    shutil.copytree(repo / "pillar", roots)
    (roots / "site.sls").unlink(missing_ok=True)

    def pillar():
        opts = dict(minion_config, pillar_roots={"base": [str(roots)]}, cachedir=str(tmp_path / "cache"))
        loaders = Loaders(opts)
        try:
            return loaders.pillar["jupyterhub"]
        finally:
            loaders.reset_state()

    assert pillar()["demo_account"] == "demo" and "access" not in pillar()
    (roots / "site.sls").write_text("jupyterhub:\n  access:\n    members: [alice, bob]\n  jh_admin_users: [alice]\n")
    merged = pillar()
    assert merged["access"] == {"members": ["alice", "bob"]} and merged["jh_admin_users"] == ["alice"]
    assert merged["demo_account"] == "demo" and merged["hub"] == {"ip": "127.0.0.1"}  # the profile's
