"""Unit tests of the sge state module over the real sge execution module, whose cmd.run_all is
fed with outputs recorded on a real Debian 12 Grid Engine cell."""

import pytest

from tests.unit.test_sge_support import Recorded
from tests.unit.test_sge_support import sge_module as mod
from tests.unit.test_sge_support import sge_state as state

FUNCS = [
    "resolve_host",
    "list_managers",
    "list_submit_hosts",
    "add_submit_host",
    "remove_submit_host",
    "list_admin_hosts",
    "add_admin_host",
    "remove_admin_host",
    "list_exec_hosts",
    "show_exec_host",
    "add_exec_host",
    "modify_exec_host",
    "remove_exec_host",
    "show_queue",
    "add_queue",
    "modify_queue",
    "show_pe",
    "add_pe",
    "modify_pe",
    "show_hostgroup",
    "set_hostgroup",
    "show_config",
    "modify_config",
    "show_scheduler_config",
    "modify_scheduler_config",
    "show_complex",
    "modify_complex",
    "format_value",
]


@pytest.fixture
def configure_loader_modules():
    return {
        mod: {"__opts__": {}, "__pillar__": {}, "__salt__": {}},
        state: {
            "__opts__": {"test": False},
            "__salt__": {f"sge.{fn}": getattr(mod, fn) for fn in FUNCS},
        },
    }


@pytest.fixture
def fake(monkeypatch):
    def install(*names, strict=True):
        rec = Recorded(*names, strict=strict)
        monkeypatch.setitem(mod.__salt__, "cmd.run_all", rec)
        return rec

    return install


@pytest.fixture
def test_mode(monkeypatch):
    monkeypatch.setitem(state.__opts__, "test", True)


@pytest.fixture
def as_root(monkeypatch):
    monkeypatch.setattr(state.getpass, "getuser", lambda: "root")


def test_virtual():
    assert state.__virtual__() == "sge"


# ---- submit hosts ----------------------------------------------------------------------------
def test_submit_host_added(fake):
    rec = fake("ghbn_ok", "ss_empty", "as_added", "ss")
    ret = state.submit_host_present("jhtb-h")
    assert ret == {
        "name": "jhtb-h",
        "result": True,
        "changes": {"submit_hosts": {"old": [], "new": ["jhtb-h"]}},
        "comment": "jhtb-h added to the submit hosts",
    }
    assert rec.done


def test_submit_host_already_present(fake):
    rec = fake("ghbn_ok", "ss")
    ret = state.submit_host_present("jhtb-h")
    assert ret["result"] is True and ret["changes"] == {}
    assert "already" in ret["comment"]
    assert rec.done


def test_submit_host_test_mode_predicts(fake, test_mode, as_root):
    rec = fake("ghbn_ok", "ss_empty", "sm")
    ret = state.submit_host_present("jhtb-h")
    assert ret["result"] is None
    assert ret["changes"] == {"submit_hosts": {"old": [], "new": ["jhtb-h"]}}
    assert "would be added" in ret["comment"]
    assert rec.done  # nothing but reads


def test_submit_host_test_mode_predicts_not_a_manager(fake, test_mode, monkeypatch):
    monkeypatch.setattr(state.getpass, "getuser", lambda: "alice")
    fake("ghbn_ok", "ss_empty", "sm_user")
    ret = state.submit_host_present("jhtb-h")
    assert ret["result"] is False
    assert "alice is not a Grid Engine manager" in ret["comment"]


def test_submit_host_unresolvable(fake):
    rec = fake("ghbn_unresolvable")
    ret = state.submit_host_present("nosuchhost")
    assert ret["result"] is False and ret["changes"] == {}
    assert "nosuchhost" in ret["comment"] and "can't resolve host name" in ret["comment"]
    assert rec.done


def test_submit_host_denied_fails_despite_rc_0(fake):
    fake("ghbn_ok", "ss_empty", "as_denied", strict=False)
    ret = state.submit_host_present("jhtb-h")
    assert ret["result"] is False and ret["changes"] == {}
    assert 'denied: "alice" must be manager' in ret["comment"]


def test_submit_host_removed(fake):
    rec = fake("ghbn_ok", "ss", "ds_removed", "ss_empty")
    ret = state.submit_host_absent("jhtb-h")
    assert ret["result"] is True
    assert ret["changes"] == {"submit_hosts": {"old": ["jhtb-h"], "new": []}}
    assert rec.done


def test_submit_host_absent_already(fake):
    fake("ghbn_ok", "ss_empty")
    ret = state.submit_host_absent("jhtb-h")
    assert ret["result"] is True and ret["changes"] == {}


def test_submit_host_absent_unresolvable_and_not_listed(fake):
    fake("ghbn_unresolvable", "ss")
    ret = state.submit_host_absent("nosuchhost")
    assert ret["result"] is True and ret["changes"] == {}


def test_submit_host_absent_test_mode(fake, test_mode, as_root):
    rec = fake("ghbn_ok", "ss", "sm")
    ret = state.submit_host_absent("jhtb-h")
    assert ret["result"] is None
    assert ret["changes"] == {"submit_hosts": {"old": ["jhtb-h"], "new": []}}
    assert rec.done


def test_admin_host_added(fake):
    fake("ghbn_ok", "sh", "ah_added", "sh_two")
    ret = state.admin_host_present("jhtb-h")
    assert ret["result"] is True
    assert ret["changes"] == {"admin_hosts": {"old": ["jhtb-q"], "new": ["jhtb-h", "jhtb-q"]}}


# ---- objects ---------------------------------------------------------------------------------
QUEUE = {"hostlist": "@allhosts", "pe_list": ["smp"], "slots": 4}


def test_queue_as_configured(fake):
    rec = fake("sq")
    ret = state.queue_present("all.q", settings=QUEUE)
    assert ret["result"] is True and ret["changes"] == {}
    assert rec.done


def test_queue_change_predicted(fake, test_mode, as_root):
    fake("sq", "sm")
    ret = state.queue_present("all.q", settings=dict(QUEUE, slots=2))
    assert ret["result"] is None
    assert ret["changes"] == {"slots": {"old": "4", "new": "2"}}


def test_queue_created(fake):
    # sq_missing was recorded for nosuch.q
    rec = fake("sq_missing", "Aq", "sq", strict=False)
    ret = state.queue_present("all.q", settings=QUEUE)
    assert ret["result"] is True
    assert ret["changes"]["queue"] == {"old": None, "new": "all.q"}
    assert ret["changes"]["pe_list"] == {"old": None, "new": "smp"}
    assert rec.calls[1][0][1] == "-Aq"


def test_queue_changed_but_sge_disagrees(fake):
    # SGE still reports slots 4 after the modification: the state must say so
    fake("sq", "sq", "Mq_nochange", "sq")
    ret = state.queue_present("all.q", settings=dict(QUEUE, slots=2))
    assert ret["result"] is False
    assert "other values" in ret["comment"]


def test_pe_created(fake):
    fake("sp_missing", "Ap", "sp", strict=False)
    ret = state.pe_present("smp", settings={"slots": 999, "allocation_rule": "$pe_slots"})
    assert ret["result"] is True
    assert ret["changes"]["parallel_environment"] == {"old": None, "new": "smp"}


def test_pe_denied(fake):
    fake("sp_missing", "Ap_denied", strict=False)
    ret = state.pe_present("smp", settings={"slots": 999})
    assert ret["result"] is False and "must be manager" in ret["comment"]


def test_hostgroup_as_configured(fake):
    fake("ghbn_q", "shgrp")
    ret = state.hostgroup_present("@allhosts", hosts=["jhtb-q"])
    assert ret["result"] is True and ret["changes"] == {}


def test_hostgroup_compares_names_as_sge_resolves_them(fake):
    """With an FQDN in /etc/hosts, SGE lists node01 as node01.<domain>: no change every run."""
    fake("ghbn_fqdn", "shgrp_fqdn")
    ret = state.hostgroup_present("@allhosts", hosts=["demo"])
    assert ret["result"] is True and ret["changes"] == {}, ret


def test_hostgroup_with_an_unresolvable_host_fails_clearly(fake):
    fake("ghbn_unresolvable", strict=False)
    ret = state.hostgroup_present("@allhosts", hosts=["nosuchhost"])
    assert ret["result"] is False and "nosuchhost does not resolve" in ret["comment"], ret


def test_hostgroup_change_predicted(fake, test_mode, as_root):
    fake("ghbn_q", "ghbn_ok", "shgrp", "sm")
    ret = state.hostgroup_present("@allhosts", hosts=["jhtb-q", "jhtb-h"])
    assert ret["result"] is None
    assert ret["changes"] == {"hostlist": {"old": ["jhtb-q"], "new": ["jhtb-q", "jhtb-h"]}}


def test_scheduler_as_configured(fake):
    fake("ssconf_after")
    ret = state.scheduler_configured(
        "scheduler", settings={"schedule_interval": "0:0:1", "flush_submit_sec": 1, "flush_finish_sec": 1}
    )
    assert ret["result"] is True and ret["changes"] == {}


def test_scheduler_change_predicted(fake, test_mode, as_root):
    fake("ssconf", "sm")
    ret = state.scheduler_configured("scheduler", settings={"schedule_interval": "0:0:1"})
    assert ret["result"] is None
    assert ret["changes"] == {"schedule_interval": {"old": "0:0:15", "new": "0:0:1"}}


def test_global_config_as_configured(fake):
    fake("sconf_global")
    ret = state.config_present(
        "global",
        settings={
            "reporting_params": "accounting=true reporting=false flush_time=00:00:15 joblog=false\n"
            "  sharelog=00:00:00 accounting_flush_time=00:00:00"
        },
    )
    assert ret["result"] is True and ret["changes"] == {}


def test_global_config_denied(fake, monkeypatch):
    fake("sconf_global", "sconf_global", "Msconf_denied", strict=False)
    ret = state.config_present("global", settings={"min_uid": 500})
    assert ret["result"] is False and "must be manager" in ret["comment"]


# ---- complexes -------------------------------------------------------------------------------
def test_complex_made_consumable(fake):
    rec = fake("sc_before", "sc_before", "Mc_h_vmem", "sc_after")
    ret = state.complex_present("h_vmem", settings={"consumable": "YES", "default": "0"})
    assert ret["result"] is True, ret
    assert ret["changes"] == {"consumable": {"old": "NO", "new": "YES"}}
    assert rec.done


def test_complex_as_configured(fake):
    fake("sc_after")
    ret = state.complex_present("h_vmem", settings={"consumable": "YES", "default": "0"})
    assert ret["result"] is True and ret["changes"] == {}, ret


def test_complex_change_predicted(fake, test_mode, as_root):
    fake("sc_before", "sm")
    ret = state.complex_present("h_vmem", settings={"consumable": "YES"})
    assert ret["result"] is None and ret["changes"] == {"consumable": {"old": "NO", "new": "YES"}}


def test_missing_complex_fails_clearly(fake):
    fake("sc_after")
    ret = state.complex_present("nosuch", settings={"consumable": "YES"})
    assert ret["result"] is False and "complex nosuch does not exist" in ret["comment"]
