"""Unit tests of the sge execution module: every parser against outputs recorded on a real
Debian 12 Grid Engine cell (tests/unit/files/sge)."""

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from tests.unit.test_sge_support import SGEJOBS_UTILS, Recorded, recording
from tests.unit.test_sge_support import sge_module as sge


@pytest.fixture
def configure_loader_modules():
    return {sge: {"__opts__": {}, "__pillar__": {}, "__salt__": {}, "__utils__": dict(SGEJOBS_UTILS)}}


@pytest.fixture
def fake(monkeypatch):
    def install(*names, strict=True):
        rec = Recorded(*names, strict=strict)
        monkeypatch.setitem(sge.__salt__, "cmd.run_all", rec)
        return rec

    return install


@pytest.fixture
def written(monkeypatch):
    """The files the module hands to qconf -A*/-M*: flag -> content."""
    files = {}
    real = sge._with_file

    def spy(flag, content, what, **kwargs):
        files[flag] = content
        return real(flag, content, what, **kwargs)

    monkeypatch.setattr(sge, "_with_file", spy)
    return files


# ---- loading and configuration ---------------------------------------------------------------
def test_virtual_without_client(monkeypatch):
    monkeypatch.setitem(sge.__opts__, "sge.qconf", "/nonexistent/qconf")
    ret = sge.__virtual__()
    assert ret[0] is False and "/nonexistent/qconf" in ret[1]


def test_virtual_with_client(monkeypatch, tmp_path):
    qconf = tmp_path / "qconf"
    qconf.write_text("#!/bin/sh\n")
    qconf.chmod(0o755)
    monkeypatch.setitem(sge.__pillar__, "jupyterhub", {"sge": {"qconf": str(qconf)}})
    assert sge.__virtual__() == "sge"


def test_paths_from_pillar_and_env(fake, monkeypatch):
    monkeypatch.setitem(
        sge.__pillar__,
        "jupyterhub",
        {"sge": {"root": "/opt/sge", "cell": "c1", "qconf": "/opt/sge/bin/qconf"}},
    )
    rec = fake("ss")
    sge.list_submit_hosts()
    cmd, kwargs = rec.calls[0]
    assert cmd == ["/opt/sge/bin/qconf", "-ss"]
    assert kwargs["env"] == {"SGE_ROOT": "/opt/sge", "SGE_CELL": "c1"}


def test_minion_config_wins_over_pillar(fake, monkeypatch):
    monkeypatch.setitem(sge.__pillar__, "jupyterhub", {"sge": {"qconf": "/pillar/qconf"}})
    monkeypatch.setitem(sge.__opts__, "sge.qconf", "/opts/qconf")
    rec = fake("ss")
    sge.list_submit_hosts()
    assert rec.calls[0][0][0] == "/opts/qconf"


def test_debian_defaults(fake):
    rec = fake("ss")
    sge.list_submit_hosts()
    cmd, kwargs = rec.calls[0]
    assert cmd[0] == "/usr/lib/gridengine/qconf"
    assert kwargs["env"] == {"SGE_ROOT": "/var/lib/gridengine", "SGE_CELL": "default"}


# ---- host lists ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "func,name,expected",
    [
        ("list_submit_hosts", "ss", ["jhtb-h"]),
        ("list_submit_hosts", "ss_empty", []),
        ("list_admin_hosts", "sh", ["jhtb-q"]),
        ("list_admin_hosts", "sh_two", ["jhtb-h", "jhtb-q"]),
        ("list_exec_hosts", "sel", ["jhtb-q"]),
        ("list_exec_hosts", "sel_two", ["jhtb-h", "jhtb-q"]),
        ("list_queues", "sql", ["all.q"]),
        ("list_pes", "spl", ["smp"]),
        ("list_pes", "spl_empty", []),
        ("list_projects", "sprjl", ["proj1"]),
        ("list_projects", "sprjl_empty", []),
        ("list_hostgroups", "shgrpl", ["@allhosts"]),
        ("list_hostgroups", "shgrpl_empty", []),
    ],
)
def test_lists(fake, func, name, expected):
    fake(name)
    assert getattr(sge, func)() == expected


def test_empty_queue_list(fake):
    # recorded on a fresh Debian cell: rc=1 "no cqueue list defined"
    assert recording("sql_empty")["retcode"] == 1
    fake("sql_empty")
    assert sge.list_queues() == []


def test_list_as_ordinary_user_still_works(fake):
    fake("ss_user")
    assert sge.list_submit_hosts() == ["jhtb-h"]


# ---- submit / admin / exec hosts -----------------------------------------------------------
def test_add_submit_host(fake):
    fake("as_added")
    assert sge.add_submit_host("jhtb-h") is True


def test_add_submit_host_already_there(fake):
    fake("as_exists")
    assert sge.add_submit_host("jhtb-h") is False


def test_add_submit_host_denied_is_an_error_despite_rc_0(fake):
    assert recording("as_denied")["retcode"] == 0
    fake("as_denied")
    with pytest.raises(CommandExecutionError, match="must be manager"):
        sge.add_submit_host("jhtb-q")


def test_add_submit_host_unresolvable(fake):
    fake("as_unresolvable")
    with pytest.raises(CommandExecutionError, match='can\'t resolve hostname "nosuchhost"'):
        sge.add_submit_host("nosuchhost")


def test_remove_submit_host(fake):
    fake("ds_removed")
    assert sge.remove_submit_host("jhtb-h") is True


def test_remove_submit_host_not_there(fake):
    fake("ds_missing")
    assert sge.remove_submit_host("jhtb-h") is False


def test_remove_submit_host_denied(fake):
    fake("ds_denied")
    with pytest.raises(CommandExecutionError, match="must be manager"):
        sge.remove_submit_host("jhtb-h")


def test_remove_submit_host_unresolvable(fake):
    fake("ds_unresolvable")
    with pytest.raises(CommandExecutionError, match="can't resolve"):
        sge.remove_submit_host("nosuchhost")


def test_admin_hosts(fake):
    fake("ah_added", "ah_exists", "dh_removed", "dh_missing")
    assert sge.add_admin_host("jhtb-h") is True
    assert sge.add_admin_host("jhtb-h") is False
    assert sge.remove_admin_host("jhtb-h") is True
    assert sge.remove_admin_host("jhtb-h") is False


def test_admin_host_denied_and_unresolvable(fake):
    fake("ah_denied", "ah_unresolvable")
    with pytest.raises(CommandExecutionError, match="must be manager"):
        sge.add_admin_host("jhtb-h")
    with pytest.raises(CommandExecutionError, match="can't resolve"):
        sge.add_admin_host("nosuchhost")


def test_show_exec_host_joins_continuation_lines(fake):
    fake("se")
    host = sge.show_exec_host("jhtb-q")
    assert host["hostname"] == "jhtb-q"
    assert host["processors"] == "2"
    assert host["report_variables"] == "NONE"
    loads = dict(kv.split("=", 1) for kv in host["load_values"].split(","))
    assert loads["num_proc"] == "2" and loads["np_load_long"] == "0.125976"
    assert " " not in host["load_values"]


def test_show_exec_host_missing(fake):
    fake("se_missing")
    assert sge.show_exec_host("jhtb-h") == {}


def test_add_exec_host_writes_every_required_attribute(fake, written):
    fake("Ae")
    assert "added" in sge.add_exec_host("jhtb-h")
    lines = dict(line.split(" ", 1) for line in written["-Ae"].splitlines())
    assert lines["hostname"] == "jhtb-h"
    assert set(lines) == {k for k, _ in sge.EXEC_HOST_TEMPLATE}


def test_add_exec_host_existing_is_an_error(fake):
    fake("Ae_exists")
    with pytest.raises(CommandExecutionError, match="already exists"):
        sge.add_exec_host("jhtb-h")


def test_add_exec_host_incomplete_file_error(fake):
    fake("Ae_min")
    with pytest.raises(CommandExecutionError, match='required attribute "load_scaling"'):
        sge.add_exec_host("jhtb-h")


def test_remove_exec_host(fake):
    fake("de_removed")
    assert sge.remove_exec_host("jhtb-h") is True


# ---- queues, PEs, projects, host groups, complexes -----------------------------------------
def test_show_queue(fake):
    fake("sq")
    queue = sge.show_queue("all.q")
    assert queue["qname"] == "all.q"
    assert queue["hostlist"] == "@allhosts"
    assert queue["qtype"] == "BATCH INTERACTIVE"
    assert queue["slots"] == "4"
    assert queue["h_vmem"] == "INFINITY"
    assert list(queue) == [k for k, _ in sge.QUEUE_TEMPLATE]


@pytest.mark.parametrize(
    "func,name",
    [
        ("show_queue", "sq_missing"),
        ("show_pe", "sp_missing"),
        ("show_project", "sprj_missing"),
        ("show_hostgroup", "shgrp_missing"),
    ],
)
def test_show_missing_objects_are_empty(fake, func, name):
    fake(name)
    assert getattr(sge, func)(recording(name)["cmd"][2]) == {}


def test_show_pe(fake):
    fake("sp")
    pe = sge.show_pe("smp")
    assert pe["allocation_rule"] == "$pe_slots"
    assert pe["slots"] == "999"
    assert list(pe) == [k for k, _ in sge.PE_TEMPLATE]


def test_show_project(fake):
    fake("sprj")
    assert sge.show_project("proj1") == {
        "name": "proj1",
        "oticket": "0",
        "fshare": "0",
        "acl": "NONE",
        "xacl": "NONE",
    }


def test_show_hostgroup(fake):
    fake("shgrp")
    assert sge.show_hostgroup("@allhosts") == {"group_name": "@allhosts", "hostlist": ["jhtb-q"]}


def test_set_hostgroup_adds_then_modifies(fake):
    fake("shgrp_missing_allhosts", "Ahgrp", "shgrp", "Mhgrp_same")
    assert "added" in sge.set_hostgroup("@allhosts", ["jhtb-q"])
    assert "modified" in sge.set_hostgroup("@allhosts", "jhtb-q")


def test_set_hostgroup_denied(fake):
    fake("shgrp_missing_allhosts", "Ahgrp_denied")
    with pytest.raises(CommandExecutionError, match="must be manager"):
        sge.set_hostgroup("@allhosts", ["jhtb-q"])


def test_qconf_error_with_rc_0_is_an_error(fake):
    # qconf -Ahgrp exits 0 even when it cannot read its file
    assert recording("Ahgrp_nofile")["retcode"] == 0
    fake("shgrp_missing_allhosts", "Ahgrp_nofile")
    with pytest.raises(CommandExecutionError, match="error opening file"):
        sge.set_hostgroup("@allhosts", ["jhtb-q"])


def test_add_queue_and_pe(fake):
    fake("Aq", "Ap")
    assert "added" in sge.add_queue("all.q", hostlist="@allhosts", pe_list=["smp"], slots=4)
    assert "added" in sge.add_pe("smp")


def test_add_queue_existing(fake):
    fake("Aq_exists")
    with pytest.raises(CommandExecutionError, match="already exists"):
        sge.add_queue("all.q")


def test_add_pe_denied(fake):
    fake("Ap_denied")
    with pytest.raises(CommandExecutionError, match="must be manager"):
        sge.add_pe("smp")


def test_modify_queue_keeps_other_attributes(fake, written):
    fake("sq", "Mq_nochange")
    sge.modify_queue("all.q", slots=2)
    lines = dict(line.split(" ", 1) for line in written["-Mq"].splitlines())
    assert lines["slots"] == "2" and lines["pe_list"] == "smp" and lines["hostlist"] == "@allhosts"


def test_modify_missing_queue(fake):
    fake("sq_missing")
    with pytest.raises(CommandExecutionError, match="does not exist"):
        sge.modify_queue("nosuchq", slots=2)


def test_complexes(fake):
    fake("sc", "sc", "sc")
    names = sge.list_complexes()
    assert "h_vmem" in names and "h_rt" in names and not any(n.startswith("#") for n in names)
    assert sge.show_complex("h_vmem") == {
        "name": "h_vmem",
        "shortcut": "h_vmem",
        "type": "MEMORY",
        "relop": "<=",
        "requestable": "YES",
        "consumable": "NO",
        "default": "0",
        "urgency": "0",
    }
    assert sge.show_complex("mf")["name"] == "mem_free"


def test_show_complex_missing(fake):
    fake("sc")
    assert sge.show_complex("gpu") == {}


# ---- configuration ---------------------------------------------------------------------------
def test_show_config_global(fake):
    fake("sconf_global")
    conf = sge.show_config()
    assert conf["min_uid"] == "1000"
    assert conf["reporting_params"] == (
        "accounting=true reporting=false flush_time=00:00:15 joblog=false sharelog=00:00:00 "
        "accounting_flush_time=00:00:00"
    )
    assert "#global:" not in conf


def test_scheduler_config(fake):
    fake("ssconf_after")
    conf = sge.show_scheduler_config()
    assert conf["schedule_interval"] == "0:0:1"
    assert conf["flush_submit_sec"] == "1"


def test_modify_scheduler_config_denied(fake):
    fake("ssconf_after", "Msconf_denied")
    with pytest.raises(CommandExecutionError, match="must be manager"):
        sge.modify_scheduler_config(flush_finish_sec=1)


def test_modify_config_names_the_file_after_the_configuration(fake, monkeypatch):
    seen = {}
    real = sge._with_file

    def spy(flag, content, what, **kwargs):
        seen.update(kwargs, flag=flag, content=content)
        return real(flag, content, what, **kwargs)

    monkeypatch.setattr(sge, "_with_file", spy)
    fake("sconf_global", "Mconf")
    assert "modified" in sge.modify_config("global", min_uid=1000)
    assert seen["filename"] == "global" and seen["flag"] == "-Mconf"
    assert "min_uid 1000\n" in seen["content"]


# ---- jobs ------------------------------------------------------------------------------------
def test_jobs_of_all_users(fake):
    rec = fake("qstat_xml_all")
    jobs = sge.jobs()
    assert rec.calls[0][0][1:] == ["-xml", "-u", "*"]
    by_id = {}
    for job in jobs:
        by_id.setdefault(job["job_id"], []).append(job)
    running = by_id["1"][0]
    assert running["status"] == "running" and running["running"] and not running["pending"]
    assert running["owner"] == "alice" and running["name"] == "sleeper"
    assert running["queue"] == "all.q" and running["host"] == "jhtb-q"
    assert running["queue_instance"] == "all.q@jhtb-q"
    assert running["slots"] == 1 and running["start_time"] == "2026-11-26T06:54:30"
    pending = by_id["5"][0]
    assert pending["status"] == "pending" and pending["pending"] and pending["slots"] == 2
    assert pending["queue"] == "" and pending["host"] == ""
    assert pending["submission_time"] == "2026-11-26T06:54:35"
    held = by_id["3"][0]
    assert held["state"] == "hqw" and held["status"] == "held" and held["held"] and held["pending"]
    error = by_id["4"][0]
    assert error["state"] == "Eqw" and error["status"] == "error" and error["error"]
    array = by_id["6"]
    assert [(j["status"], j["tasks"]) for j in array] == [("running", "1"), ("pending", "2,3")]
    assert array[0]["owner"] == "bob"


def test_jobs_empty(fake):
    fake("qstat_xml_all_empty")
    assert sge.jobs() == []


def test_user_jobs(fake):
    rec = fake("qstat_xml_u_bob")
    jobs = sge.user_jobs("bob")
    assert rec.calls[0][0][1:] == ["-xml", "-u", "bob"]
    assert {j["owner"] for j in jobs} == {"bob"}


def test_user_jobs_unknown_user(fake):
    fake("qstat_xml_user_missing")
    assert sge.user_jobs("nosuchuser") == []


def test_job_status(fake):
    fake("qstat_xml_all", "qstat_xml_all", "qstat_xml_all")
    assert sge.job_status(4)["status"] == "error"
    array = sge.job_status("6")
    assert array["status"] == "running" and len(array["entries"]) == 2
    assert sge.job_status(999) == {"job_id": "999", "status": "absent", "state": ""}


def test_qstat_garbage_raises(fake, monkeypatch):
    monkeypatch.setitem(
        sge.__salt__, "cmd.run_all", lambda cmd, **kw: {"retcode": 0, "stdout": "not xml", "stderr": ""}
    )
    with pytest.raises(CommandExecutionError, match="cannot parse"):
        sge.jobs()


def test_qmaster_down_raises(fake):
    fake("ss_qmaster_down", "qstat_qmaster_down")
    with pytest.raises(CommandExecutionError, match="commlib error"):
        sge.list_submit_hosts()
    with pytest.raises(CommandExecutionError, match="unable to send message to qmaster"):
        sge.jobs()


def test_verify_qmaster_down_raises(monkeypatch):
    monkeypatch.setitem(sge.__salt__, "cmd.run_all", Recorded("wv_qmaster_down", strict=False))
    with pytest.raises(CommandExecutionError, match="commlib error"):
        sge.verify("-q all.q")


# ---- dry-run validation --------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,accepted,reason",
    [
        ("wv_ok", True, "verification: found suitable queue(s)"),
        ("wv_pe_ok", True, "found suitable queue"),
        ("wv_now", True, "found suitable queue"),
        ("wv_too_many_slots", False, 'cannot run in PE "smp" because it only offers 0 slots'),
        ("wv_unknown_queue", False, 'job requests unknown queue "nosuch.q"'),
        ("wv_unknown_pe", False, 'the requested parallel environment "nosuchpe" does not exist'),
        ("wv_unknown_complex", False, 'unknown resource "gpu"'),
        ("wv_bad_option", False, 'attribute "h_rt" is not a time value'),
        ("wv_unknown_project", False, 'the requested project "nosuchprj" does not exist'),
        ("wv_root", False, "lower than minimum user id 1000"),
        ("qsub_not_submit_host", False, 'host "jhtb-q" is not a submit host'),
    ],
)
def test_verify(monkeypatch, name, accepted, reason):
    monkeypatch.setitem(sge.__salt__, "cmd.run_all", Recorded(name, strict=False))
    result = sge.verify("-q all.q")
    assert result["accepted"] is accepted
    assert reason in result["reason"]
    assert "Exiting." not in result["reason"]
    assert "Unable to run job" not in result["reason"]


def test_verify_string_options_and_runas(fake):
    rec = fake("wv_pe_ok")
    sge.verify("-pe smp 2 -l h_rt=01:00:00 -q all.q", runas="alice")
    cmd, kwargs = rec.calls[0]
    assert cmd[1:] == [
        "-w",
        "v",
        "-pe",
        "smp",
        "2",
        "-l",
        "h_rt=01:00:00",
        "-q",
        "all.q",
        "-b",
        "y",
        "/bin/true",
    ]
    assert kwargs["runas"] == "alice"


def test_verify_poke_mode(fake):
    fake("wp_ok")
    result = sge.verify([], mode="p", runas="alice")
    assert result["accepted"] is False and "offers only qc:slots=0" in result["reason"]


def test_resolve_host(fake):
    fake("ghbn_ok", "ghbn_unresolvable")
    assert sge.resolve_host("jhtb-h") == "jhtb-h"
    with pytest.raises(CommandExecutionError, match="does not resolve.*nosuchhost"):
        sge.resolve_host("nosuchhost")


# ---- complexes -------------------------------------------------------------------------------
def test_modify_complex_writes_the_whole_table_back(fake, written):
    rec = fake("sc_before", "Mc_h_vmem")
    assert "modified \"h_vmem\"" in sge.modify_complex("h_vmem", consumable="YES")
    rows = [line.split() for line in written["-Mc"].splitlines()]
    before = sge._parse_complexes(recording("sc_before")["stdout"])
    assert [r[0] for r in rows] == list(before)  # every complex, in SGE's order
    assert rows[[r[0] for r in rows].index("h_vmem")] == ["h_vmem", "h_vmem", "MEMORY", "<=", "YES", "YES", "0", "0"]
    assert rows[0] == [before["arch"][c] for c in sge._COMPLEX_COLUMNS]
    assert rec.done


def test_modify_complex_refuses_unknown_columns_and_complexes(fake):
    with pytest.raises(SaltInvocationError, match="unknown column.*consumabel"):
        sge.modify_complex("h_vmem", consumabel="YES")
    fake("sc_before")
    with pytest.raises(CommandExecutionError, match="complex nosuch does not exist"):
        sge.modify_complex("nosuch", consumable="YES")
