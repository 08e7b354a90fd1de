"""The Salt test harness reruns a CLI call only on CPython's import-lock race, nothing else.

tests/unit/files/salt/import-lock-race.stderr is the end of salt-run's stderr from a suite run in
which the orchestration's first step failed this way (stdout held the same traceback inside JSON)."""

import json
import subprocess

import pytest

from tests.conftest import REPO
from tests.support.saltdaemons import IMPORT_LOCK_RACE, SaltMaster

RACE = (REPO / "tests/unit/files/salt/import-lock-race.stderr").read_text()
PILLAR_ERROR = ("Rendering SLS 'base:jupyterhub.validate' failed: jupyterhub:jh_whitelist_user: unknown key;"
                " known: jh_whitelist_users\nKeyError: 'jh_whitelist_user'\n")


class FakeHost:
    """Answers each run with the next (returncode, stdout, stderr)."""

    def __init__(self, *answers):
        self.answers, self.calls = list(answers), 0

    def run(self, cmd, check=False, timeout=None):
        self.calls += 1
        rc, out, err = self.answers.pop(0)
        return subprocess.CompletedProcess(cmd, rc, out, err)


def test_the_recorded_race_matches_in_stderr_and_inside_json_stdout():
    assert IMPORT_LOCK_RACE.search(RACE)
    assert IMPORT_LOCK_RACE.search(json.dumps({"comment": RACE}))


@pytest.mark.parametrize("text", [PILLAR_ERROR, "File \"x.py\", line 3, in acquire\nValueError: 5\n",
                                  "KeyError: 140452322263744\n"])
def test_other_failures_do_not_match(text):
    assert not IMPORT_LOCK_RACE.search(text)


def test_a_run_failed_on_the_race_runs_once_more():
    ok = json.dumps({"data": {"salt_master": {}}})
    host = FakeHost((1, "", RACE), (0, ok, ""))
    run = SaltMaster(host).cli("salt-run", "state.orchestrate", "orch.jupyterhub")
    assert (host.calls, run.returncode) == (2, 0)


@pytest.mark.parametrize("answers", [[(1, "", PILLAR_ERROR)], [(1, "", RACE), (1, "", RACE)]])
def test_other_failures_and_a_second_race_are_returned_as_they_are(answers):
    host = FakeHost(*answers)
    run = SaltMaster(host).cli("salt-run", "state.orchestrate", "orch.jupyterhub")
    assert (host.calls, run.returncode) == (len(answers), 1)
