"""The jupyterhub.sge.* SLS files render with the real Salt loader (no Grid Engine on this machine:
nothing is applied), take their objects from pillar, and refuse bad pillar. The module and states
themselves run against a real cell in tests/integration/test_sge_cell.py."""

import socket

import pytest

BASE = {"cluster_net_cidr": "0.0.0.0/0"}
# how the test's host names resolve (jupyterhub.sge_qmaster looks the qmaster up)
ADDRESSES = {"qm1": "192.0.2.1", "node1": "192.0.2.2", "node2": "192.0.2.3", "demo": "127.0.1.1"}


@pytest.fixture(autouse=True)
def resolver(monkeypatch):
    """qm1 and the nodes resolve to addresses, demo to 127.0.1.1 with an FQDN, nosuch* not."""
    real = socket.gethostbyname_ex

    def gethostbyname_ex(name):
        if name in ADDRESSES:
            return (f"{name}.example.org", [name], [ADDRESSES[name]])
        if name.startswith("nosuch"):
            raise socket.gaierror(-2, "Name or service not known")
        return real(name)

    monkeypatch.setattr(socket, "gethostbyname_ex", gethostbyname_ex)


def show(loaders, sls, **sge):
    pillar = {"jupyterhub": dict(BASE, sge=dict({"qmaster": "qm1"}, **sge))}
    return loaders.modules.state.show_sls(sls, pillar=pillar)


def args(rendered, sid):
    """The state function and its arguments as a dict, e.g. ("sge.queue_present", {...})."""
    (mod, items), *_ = [(k, v) for k, v in rendered[sid].items() if not k.startswith("__")]
    fun = next(i for i in items if isinstance(i, str))
    merged = {}
    for item in items:
        if isinstance(item, dict):
            merged.update(item)
    merged.pop("order", None)  # added by show_sls
    return f"{mod}.{fun}", merged


def test_client_preseeds_the_qmaster(make_loaders):
    rendered = show(make_loaders(), "jupyterhub.sge.client")
    _, preseed = args(rendered, "jupyterhub-sge-preseeded")
    # the name Grid Engine resolves qm1 to: what sge_qmaster itself writes into act_qmaster
    assert preseed["data"]["shared/gridenginemaster"] == {"type": "string", "value": "qm1.example.org"}
    assert preseed["data"]["shared/gridenginecell"]["value"] == "default"
    _, act = args(rendered, "jupyterhub-sge-act-qmaster-set")
    assert act["name"] == "/var/lib/gridengine/default/common/act_qmaster"
    assert act["contents"] == "qm1.example.org"
    assert act["follow_symlinks"] is False  # the folder is sgeadmin's


def test_cell_defaults(make_loaders):
    rendered = show(make_loaders(host="qm1"), "jupyterhub.sge.cell")
    assert args(rendered, "jupyterhub-sge-queue-all.q-configured") == (
        "sge.queue_present",
        {
            "name": "all.q",
            # priority: the demo profile's (its jobs run at nice 5 on the host that is also the hub)
            "settings": {"hostlist": "@allhosts", "pe_list": "smp", "slots": 999, "load_thresholds": "NONE",
                         "priority": 5},
            "require": [
                {"sge": "jupyterhub-sge-hostgroup-configured"},
                {"sge": "jupyterhub-sge-pe-smp-configured"},
            ],
        },
    )
    assert args(rendered, "jupyterhub-sge-pe-smp-configured")[1]["settings"] == {
        "slots": 999,
        "allocation_rule": "$pe_slots",
    }
    assert args(rendered, "jupyterhub-sge-hostgroup-configured")[1]["hosts"] == ["qm1"]
    sched = args(rendered, "jupyterhub-sge-scheduler-configured")[1]["settings"]
    assert sched == {"schedule_interval": "0:0:1", "flush_submit_sec": 1, "flush_finish_sec": 1}
    conf = args(rendered, "jupyterhub-sge-global-config-configured")[1]["settings"]
    assert "accounting_flush_time=00:00:00" in conf["reporting_params"]
    # the qmaster is an execution host: the execd SLS is included, after the qmaster
    assert "jupyterhub-sge-execd-running" in rendered
    assert args(rendered, "jupyterhub-sge-qmaster-running")[1]["require_in"] == [
        {"sge": "jupyterhub-sge-exec-host-capacity-set"},
        {"pkg": "jupyterhub-sge-execd-installed"},
    ]


def test_cell_fits_the_host_it_runs_on(make_loaders):
    """A 2-core host with 3.9 GB offers 2 slots and its memory as the h_vmem consumable, which the
    form's per-slot RAM request (-l h_vmem=<n>G) is counted against; both set before its execd starts."""
    rendered = show(make_loaders(host="qm1", num_cpus=2, mem_total=3931), "jupyterhub.sge.cell")
    assert args(rendered, "jupyterhub-sge-exec-host-capacity-set")[:2] == (
        "sge.exec_host_present",
        {"name": "qm1", "settings": {"complex_values": "slots=2,h_vmem=3931M"},
         "require": [{"pkg": "jupyterhub-sge-client-installed"}, {"file": "jupyterhub-sge-act-qmaster-set"}]},
    )
    assert {"sge": "jupyterhub-sge-exec-host-capacity-set"} in args(
        rendered, "jupyterhub-sge-execd-installed")[1]["require"]
    assert args(rendered, "jupyterhub-sge-complex-h_vmem-configured")[:2] == (
        "sge.complex_present",
        {"name": "h_vmem", "settings": {"consumable": "YES", "default": "2G"},
         "require": [{"service": "jupyterhub-sge-qmaster-running"}],
         "require_in": [{"sge": "jupyterhub-sge-exec-host-capacity-set"}]},
    )


def test_pillar_sets_the_hosts_capacity(make_loaders):
    rendered = show(make_loaders(host="qm1", num_cpus=2, mem_total=3931), "jupyterhub.sge.cell",
                    cell_setup={"exec_host": {"slots": 16, "h_vmem": "64G"}})
    settings = args(rendered, "jupyterhub-sge-exec-host-capacity-set")[1]["settings"]
    assert settings == {"complex_values": "slots=16,h_vmem=64G"}


def test_cell_objects_from_pillar(make_loaders):
    rendered = show(
        make_loaders(host="qm1"),
        "jupyterhub.sge.cell",
        cell_setup={
            "exec_hosts": ["node1", "node2"],
            "queues": {"gpu.q": {"hostlist": "node2", "slots": 1}},
            "pes": {"mpi": {"allocation_rule": "$round_robin"}},
        },
    )
    assert {"jupyterhub-sge-queue-all.q-configured", "jupyterhub-sge-queue-gpu.q-configured"} <= set(rendered)
    assert "jupyterhub-sge-pe-mpi-configured" in rendered
    assert args(rendered, "jupyterhub-sge-hostgroup-configured")[1]["hosts"] == ["node1", "node2"]
    for node in ("node1", "node2"):
        assert args(rendered, f"jupyterhub-sge-exec-host-{node}-is-admin-host")[0] == "sge.admin_host_present"
    # the qmaster runs no execd when it is not an execution host
    assert "jupyterhub-sge-execd-running" not in rendered


def test_submit_hosts_from_pillar(make_loaders):
    rendered = show(
        make_loaders(), "jupyterhub.sge.submit_hosts", submit_hosts={"hub1": "present", "old": "absent"}
    )
    assert args(rendered, "jupyterhub-sge-submit-host-hub1-present") == (
        "sge.submit_host_present",
        {"name": "hub1"},
    )
    assert args(rendered, "jupyterhub-sge-submit-host-old-absent") == (
        "sge.submit_host_absent",
        {"name": "old"},
    )


@pytest.mark.parametrize(
    "sge,needle",
    [
        ({"submit_hosts": {"hub1": True}}, "jupyterhub:sge:submit_hosts:hub1"),
        ({"cell_setup": {"exec_hosts": "node1"}}, "jupyterhub:sge:cell_setup:exec_hosts"),
        ({"cell_setup": {"queues": {"all.q": "big"}}}, "jupyterhub:sge:cell_setup:queues:all.q"),
        ({"cell_setup": {"nosuchkey": 1}}, "jupyterhub:sge:cell_setup:nosuchkey"),
    ],
)
def test_bad_pillar_is_refused(make_loaders, sge, needle):
    rendered = show(make_loaders(host="qm1"), "jupyterhub.sge.cell", **sge)
    assert isinstance(rendered, list), rendered
    assert needle in "\n".join(rendered)


def test_submit_hosts_without_pillar_is_empty(make_loaders):
    assert show(make_loaders(), "jupyterhub.sge.submit_hosts") == {}


def test_cell_on_a_host_whose_name_is_on_loopback_aliases_localhost_before_the_qmaster_starts(make_loaders):
    rendered = show(make_loaders(host="demo"), "jupyterhub.sge.cell", qmaster="")
    fun, aliases = args(rendered, "jupyterhub-sge-loopback-name-aliased")
    assert (fun, aliases["name"], aliases["contents"]) == (
        "file.managed", "/var/lib/gridengine/default/common/host_aliases", "demo.example.org localhost")
    assert aliases["follow_symlinks"] is False  # the folder is sgeadmin's
    assert {"file": "jupyterhub-sge-loopback-name-aliased"} in args(
        rendered, "jupyterhub-sge-qmaster-installed")[1]["require"]


def test_cell_on_a_host_with_a_real_address_has_no_aliases(make_loaders):
    rendered = show(make_loaders(host="qm1"), "jupyterhub.sge.cell")
    assert "jupyterhub-sge-loopback-name-aliased" not in rendered


def test_cell_with_an_unresolvable_qmaster_stops_before_anything_is_applied(make_loaders):
    rendered = show(make_loaders(host="qm1"), "jupyterhub.sge.cell", qmaster="nosuchqm")
    assert isinstance(rendered, list), rendered  # a render error: no state runs
    assert "jupyterhub:sge:qmaster: the qmaster host name 'nosuchqm' does not resolve" in " ".join(rendered)


@pytest.mark.parametrize("cores, mem_total, slots_max, ram_max, ram_default", [
    (2, 3931, 2, 1, 1),  # 2 cores, 3.8 GB: 1 GB per core
    (2, 24105, 2, 11, 2),  # the CI machines: 2 cores, 23.5 GB
    (16, 128000, 16, 7, 2),
])
def test_demo_form_offers_what_the_host_has(make_loaders, cores, mem_total, slots_max, ram_max, ram_default):
    """The demo cell counts slots and h_vmem against the host's cores and memory: its form asks
    for no more (slots x RAM per core fits the host)."""
    pillar = make_loaders(num_cpus=cores, mem_total=mem_total).opts["pillar"]["jupyterhub"]
    fields = pillar["spawner"]["fields"]
    assert (fields["slots"]["max"], fields["ram"]["max"], fields["ram"]["default"]) == (
        slots_max, ram_max, ram_default)
    assert slots_max * ram_max * 1024 <= mem_total
