"""sge.submit_hosts_managed: exactly the given hosts are the submit hosts it manages (its record says
which it added); hosts registered any other way stay. A fake cell stands in for qconf (the real one:
tests/integration/test_master.py)."""

import json

import pytest
from salt.exceptions import CommandExecutionError

from tests.unit.test_sge_support import sge_state as state


class Cell:
    def __init__(self, *hosts):
        self.hosts = set(hosts)
        self.calls = []

    def resolve(self, host):
        if host == "nosuchhost":
            raise CommandExecutionError('can\'t resolve hostname "nosuchhost"')
        return host if "." in host else f"{host}.example.org"

    def add(self, host):
        self.calls.append(("add", host))
        self.hosts.add(host)

    def remove(self, host):
        self.calls.append(("remove", host))
        self.hosts.discard(host)


@pytest.fixture
def cell():
    return Cell("login.example.org")


@pytest.fixture
def configure_loader_modules(cell):
    return {state: {"__opts__": {"test": False}, "__salt__": {
        "sge.resolve_host": cell.resolve,
        "sge.list_submit_hosts": lambda: sorted(cell.hosts),
        "sge.add_submit_host": cell.add,
        "sge.remove_submit_host": cell.remove,
        "sge.list_managers": lambda: ["root"],
    }}}


def test_adds_the_hubs_records_them_and_a_second_run_changes_nothing(cell, tmp_path):
    record = tmp_path / "lib" / "submit-hosts.json"
    ret = state.submit_hosts_managed(str(record), ["hub1", "hub2"])
    assert ret["result"] is True, ret
    assert ret["changes"]["submit_hosts"]["new"] == ["hub1.example.org", "hub2.example.org", "login.example.org"]
    assert json.loads(record.read_text()) == ["hub1.example.org", "hub2.example.org"]
    assert oct(record.parent.stat().st_mode & 0o777) == "0o700"
    cell.calls.clear()
    ret = state.submit_hosts_managed(str(record), ["hub2", "hub1"])
    assert ret["result"] is True and ret["changes"] == {} and cell.calls == []


def test_a_hub_left_out_is_removed_and_other_submit_hosts_stay(cell, tmp_path):
    record = tmp_path / "submit-hosts.json"
    state.submit_hosts_managed(str(record), ["hub1", "hub2"])
    ret = state.submit_hosts_managed(str(record), ["hub1"])
    assert ret["result"] is True, ret
    assert cell.hosts == {"hub1.example.org", "login.example.org"}
    assert json.loads(record.read_text()) == ["hub1.example.org"]
    ret = state.submit_hosts_managed(str(record), [])
    assert cell.hosts == {"login.example.org"}  # never registered by the state: left alone


def test_test_mode_predicts_and_changes_nothing(cell, tmp_path):
    record = tmp_path / "submit-hosts.json"
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(state.__opts__, "test", True)
        ret = state.submit_hosts_managed(str(record), ["hub1"])
    assert ret["result"] is None and ret["changes"]["submit_hosts"]["new"] == ["hub1.example.org", "login.example.org"]
    assert cell.calls == [] and not record.exists()


def test_an_unresolvable_hub_fails_with_sges_message_and_changes_nothing(cell, tmp_path):
    ret = state.submit_hosts_managed(str(tmp_path / "r.json"), ["hub1", "nosuchhost"])
    assert ret["result"] is False and "can't resolve hostname" in ret["comment"]
    assert cell.calls == []
