"""Grid Engine on real hosts: a cell built by jupyterhub.sge.cell on `qmaster` (qmaster + execd),
a JupyterHub host `hub` with the client (jupyterhub.sge.client), registered as a submit host from
`qmaster` by jupyterhub.sge.submit_hosts; an ordinary user on `hub` runs an immediate job on
`qmaster`. Also the sge execution module against the real cell and the systemd units.

Both hosts come as real ones do: `qmaster` has two interfaces (the cluster network and a public
one its own name resolves to), `hub` has its own name on 127.0.1.1 (Debian installer, cloud images)
while the qmaster's name resolves to its cluster address: the hub must still submit.

The tests of this module run in order and build on each other (module-scoped hosts). Apply times
are printed (pytest -s) and written to $JHSALT_SGE_TIMES (default: none)."""

import json
import os
import time

import pytest

from tests.support.hosts import wait_for

SGE = {"qmaster": "qmaster"}
# the names Grid Engine knows the hosts by: their FQDNs (Debian's cell has ignore_fqdn false)
QM, HUB = "qmaster.jhsalt.test", "hub.jhsalt.test"
USER, UID = "alice", 2001
TIMES = {}


def pillar(**sge):
    return {"jupyterhub": {"sge": dict(SGE, **sge)}}


def timed(label, result):
    TIMES[label] = round(result.duration, 1)
    print(f"\n[sge apply time] {label}: {result.duration:.1f}s")
    return result


@pytest.fixture(scope="module", autouse=True)
def report_times():
    yield
    path = os.environ.get("JHSALT_SGE_TIMES")
    if path:
        with open(path, "w") as fh:
            json.dump(TIMES, fh, indent=1)
    print("\n[sge apply times] " + json.dumps(TIMES))


@pytest.fixture(scope="module")
def qmaster(make_host):
    host = make_host("qmaster", shape="two-nics")
    yield host
    host.stop()


@pytest.fixture(scope="module")
def hub(make_host, qmaster):
    host = make_host("hub", shape="loopback")
    yield host
    host.stop()



def queue_instance_ok(host, instance=f"all.q@{QM}"):
    """The queue instance is up: execd reported a load and no state flag (a, u, d, E, ...)."""
    out = host.run(["qstat", "-f", "-q", "all.q"], check=False).stdout
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == instance:
            # queuename qtype resv/used/tot. load_avg arch [states]
            return len(fields) == 5 and fields[3] != "-NA-"
    return False


def salt_data(host, *args, **kw):
    ret = host.salt_call(*args, **kw)
    assert ret.returncode == 0, str(ret)
    return ret.data


# ---- the cell ----------------------------------------------------------------------------------
def test_cell_first_apply(qmaster):
    ret = timed("cell first apply", qmaster.state_apply("jupyterhub.sge.cell", pillar=pillar()))
    assert ret.ok, str(ret)
    changed = ret.changed()
    for sid in (
        "jupyterhub-sge-qmaster-installed",
        "jupyterhub-sge-execd-installed",
        "jupyterhub-sge-hostgroup-configured",
        "jupyterhub-sge-pe-smp-configured",
        "jupyterhub-sge-queue-all.q-configured",
        "jupyterhub-sge-scheduler-configured",
        "jupyterhub-sge-global-config-configured",
    ):
        assert sid in changed, (sid, str(ret))
    for unit in ("gridengine-master", "gridengine-exec"):
        assert qmaster.run(["systemctl", "is-active", unit]).stdout.strip() == "active"
        assert qmaster.run(["systemctl", "is-enabled", unit]).stdout.strip() == "enabled"
        # our unit, not the SysV script's generated one
        path = qmaster.run(["systemctl", "show", "-P", "FragmentPath", unit]).stdout.strip()
        assert path == f"/etc/systemd/system/{unit}.service"


def test_cell_second_apply_changes_nothing(qmaster):
    pids = qmaster.run("pgrep -x sge_qmaster; pgrep -x sge_execd").stdout.split()
    ret = timed("cell second apply", qmaster.state_apply("jupyterhub.sge.cell", pillar=pillar()))
    assert ret.ok, str(ret)
    assert ret.changed() == {}, ret
    assert qmaster.run("pgrep -x sge_qmaster; pgrep -x sge_execd").stdout.split() == pids  # nothing restarted


def test_cell_test_mode_predicts_a_change(qmaster):
    settings = {"cell_setup": {"queues": {"all.q": {"slots": 2}}}}
    ret = qmaster.state_apply("jupyterhub.sge.cell", pillar=pillar(**settings), test=True)
    assert ret.ok, str(ret)
    assert ret.changed() == {"jupyterhub-sge-queue-all.q-configured": {"slots": {"old": "999", "new": "2"}}}
    assert salt_data(qmaster, "sge.show_queue", "all.q")["slots"] == "999"


def test_cell_is_configured(qmaster):
    assert salt_data(qmaster, "sge.list_queues") == ["all.q"]
    assert salt_data(qmaster, "sge.list_pes") == ["smp"]
    assert salt_data(qmaster, "sge.show_hostgroup", "@allhosts") == {
        "group_name": "@allhosts",
        "hostlist": [QM],
    }
    queue = salt_data(qmaster, "sge.show_queue", "all.q")
    assert (queue["hostlist"], queue["pe_list"], queue["slots"]) == ("@allhosts", "smp", "999")
    assert salt_data(qmaster, "sge.show_pe", "smp")["allocation_rule"] == "$pe_slots"
    sched = salt_data(qmaster, "sge.show_scheduler_config")
    assert (sched["schedule_interval"], sched["flush_submit_sec"], sched["flush_finish_sec"]) == (
        "0:0:1",
        "1",
        "1",
    )
    assert "accounting_flush_time=00:00:00" in salt_data(qmaster, "sge.show_config")["reporting_params"]
    wait_for(lambda: QM in salt_data(qmaster, "sge.list_exec_hosts"), what="execd registration")
    wait_for(lambda: queue_instance_ok(qmaster), what="all.q@qmaster to report a load")


# ---- the module against the real cell ----------------------------------------------------------
def test_module_lists_and_shows(qmaster):
    assert salt_data(qmaster, "sge.list_admin_hosts") == [QM]
    assert salt_data(qmaster, "sge.list_managers") == ["root", "sgeadmin"]
    assert salt_data(qmaster, "sge.list_submit_hosts") == []  # rc=1 "no submit host defined"
    assert salt_data(qmaster, "sge.list_projects") == []
    assert salt_data(qmaster, "sge.show_exec_host", "qmaster")["hostname"] == QM
    assert salt_data(qmaster, "sge.show_queue", "nosuch.q") == {}
    assert salt_data(qmaster, "sge.show_complex", "h_vmem")["type"] == "MEMORY"
    assert "h_rt" in salt_data(qmaster, "sge.list_complexes")
    assert salt_data(qmaster, "sge.resolve_host", "qmaster") == QM
    assert salt_data(qmaster, "sge.jobs") == []


def test_module_errors_carry_sges_message(qmaster):
    ret = qmaster.salt_call("sge.add_submit_host", "nosuchhost")
    assert ret.returncode != 0
    assert "can't resolve hostname" in ret.stdout + ret.stderr
    qmaster.run(["useradd", "-m", "-u", str(UID), USER])
    proc = qmaster.run(["qconf", "-as", "qmaster"], user=USER, check=False)
    assert proc.returncode == 0 and "must be manager" in proc.stderr  # the trap the module handles


# ---- the hub as a submit host ------------------------------------------------------------------
def test_hub_client(hub):
    ret = timed("client first apply (hub)", hub.state_apply("jupyterhub.sge.client", pillar=pillar()))
    assert ret.ok, str(ret)
    assert hub.read_file("/var/lib/gridengine/default/common/act_qmaster").strip() == QM
    again = timed("client second apply (hub)", hub.state_apply("jupyterhub.sge.client", pillar=pillar()))
    assert again.ok and again.changed() == {}, str(again)
    hub.run(["useradd", "-m", "-u", str(UID), USER])
    # not a submit host yet: SGE says so, and the module reports it as a rejection
    verdict = salt_data(hub, "sge.verify", "options=-q all.q", f"runas={USER}")
    assert verdict["accepted"] is False and f'host "{HUB}" is not a submit host' in verdict["reason"]


def test_submit_hosts_test_mode_predicts(qmaster, hub):
    ret = qmaster.state_apply(
        "jupyterhub.sge.submit_hosts", pillar=pillar(submit_hosts={"hub": "present"}), test=True
    )
    assert ret.ok, str(ret)
    assert ret.changed() == {
        "jupyterhub-sge-submit-host-hub-present": {"submit_hosts": {"old": [], "new": [HUB]}}
    }
    assert salt_data(qmaster, "sge.list_submit_hosts") == []


def test_submit_hosts_registers_hub(qmaster, hub):
    ret = timed(
        "submit_hosts first apply",
        qmaster.state_apply("jupyterhub.sge.submit_hosts", pillar=pillar(submit_hosts={"hub": "present"})),
    )
    assert ret.ok, str(ret)
    assert ret.changed() == {
        "jupyterhub-sge-submit-host-hub-present": {"submit_hosts": {"old": [], "new": [HUB]}}
    }
    again = timed(
        "submit_hosts second apply",
        qmaster.state_apply("jupyterhub.sge.submit_hosts", pillar=pillar(submit_hosts={"hub": "present"})),
    )
    assert again.ok and again.changed() == {}, str(again)
    assert salt_data(qmaster, "sge.list_submit_hosts") == [HUB]


def test_submit_hosts_unresolvable_host_fails_clearly(qmaster):
    ret = qmaster.state_apply(
        "jupyterhub.sge.submit_hosts", pillar=pillar(submit_hosts={"nosuchhost": "present"})
    )
    assert not ret.ok
    assert "nosuchhost" in ret.failed()["jupyterhub-sge-submit-host-nosuchhost-present"]
    assert "can't resolve" in ret.failed()["jupyterhub-sge-submit-host-nosuchhost-present"]


def test_ordinary_user_runs_an_immediate_job_from_the_hub(qmaster, hub):
    verdict = salt_data(hub, "sge.verify", "options=-now yes -q all.q -pe smp 1", f"runas={USER}")
    assert verdict["accepted"] is True, verdict
    wait_for(lambda: queue_instance_ok(qmaster), what="all.q@qmaster to be free")
    out = f"/home/{USER}/job.out"
    started = time.monotonic()
    # a job script on stdin (with -b y, SGE re-splits a binary's arguments at blanks)
    proc = hub.run(
        ["qsub", "-now", "yes", "-sync", "y", "-terse", "-j", "y", "-o", out, "-S", "/bin/sh"],
        input='echo "ran-on-$(hostname) as $(id -un)"\n',
        user=USER,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    print(f"\n[sge] qsub -now yes -sync y from hub: {time.monotonic() - started:.2f}s")
    job_id = proc.stdout.split()[0]
    assert qmaster.read_file(out).strip() == f"ran-on-qmaster as {USER}"
    assert hub.run(["test", "-e", out], check=False).returncode == 1  # written on qmaster only
    status = salt_data(qmaster, "sge.job_status", job_id)
    assert status["status"] == "absent"  # finished


def test_job_status_of_a_running_job(qmaster, hub):
    proc = hub.run(["qsub", "-terse", "-b", "y", "-N", "sleeper", "/bin/sleep", "300"], user=USER)
    job_id = proc.stdout.strip()
    status = wait_for(
        lambda: (s := salt_data(qmaster, "sge.job_status", job_id))["status"] == "running" and s,
        timeout=30,
        what="the job to run",
    )
    assert (status["owner"], status["queue"], status["host"], status["slots"]) == (
        USER,
        "all.q",
        QM,
        1,
    )
    held = hub.run(["qsub", "-terse", "-h", "-b", "y", "/bin/true"], user=USER).stdout.strip()
    mine = {j["job_id"]: j for j in salt_data(hub, "sge.user_jobs", USER)}
    assert mine[held]["status"] == "held" and mine[job_id]["running"]
    hub.run(["qdel", job_id, held], user=USER)


def test_the_cell_gives_no_job_more_than_the_host_has(qmaster, hub):
    """Slots (the host's cores) and h_vmem (its memory, per slot) are consumables: a request beyond
    them is refused before it is queued, one that fits is accepted; a job that asks for no memory
    runs (the previous test) with the per-slot default."""
    cores = int(qmaster.run(["nproc"]).stdout)
    mem_gb = int(qmaster.run(["awk", "/MemTotal/ {print int($2 / 1048576)}", "/proc/meminfo"]).stdout)
    fits = f"-pe smp {cores} -l h_vmem={mem_gb // cores}G"
    for options, accepted in [(fits, True), (f"-pe smp {cores + 1}", False),
                              (f"-pe smp 1 -l h_vmem={mem_gb + 1}G", False),
                              (f"-pe smp {cores} -l h_vmem={mem_gb // cores + 1}G", False)]:
        verdict = salt_data(hub, "sge.verify", f"options={options}", f"runas={USER}")
        assert verdict["accepted"] is accepted, (options, verdict)


def test_submit_host_removed_when_pillar_says_absent(qmaster, hub):
    ret = timed(
        "submit_hosts removal apply",
        qmaster.state_apply("jupyterhub.sge.submit_hosts", pillar=pillar(submit_hosts={"hub": "absent"})),
    )
    assert ret.ok, str(ret)
    assert ret.changed() == {
        "jupyterhub-sge-submit-host-hub-absent": {"submit_hosts": {"old": [HUB], "new": []}}
    }
    assert salt_data(qmaster, "sge.list_submit_hosts") == []
    again = qmaster.state_apply("jupyterhub.sge.submit_hosts", pillar=pillar(submit_hosts={"hub": "absent"}))
    assert again.ok and again.changed() == {}, str(again)
    proc = hub.run(["qsub", "-b", "y", "/bin/true"], user=USER, check=False)
    assert proc.returncode != 0 and "is not a submit host" in proc.stderr


# ---- the systemd units -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "unit,daemon", [("gridengine-exec", "sge_execd"), ("gridengine-master", "sge_qmaster")]
)
def test_units_really_stop_and_start(qmaster, unit, daemon):
    started = time.monotonic()
    qmaster.run(["systemctl", "stop", unit], timeout=120)
    print(f"\n[sge] systemctl stop {unit}: {time.monotonic() - started:.1f}s")
    assert qmaster.run(["pgrep", "-x", daemon], check=False).returncode == 1
    qmaster.run(["systemctl", "start", unit], timeout=120)
    assert qmaster.run(["pgrep", "-x", daemon], check=False).returncode == 0
    if unit == "gridengine-master":  # ExecStartPost waited until it answers
        assert qmaster.run(["qconf", "-sh"]).stdout.split() == [QM]
    assert qmaster.state_apply("jupyterhub.sge.cell", pillar=pillar()).changed() == {}
