"""The one Grid Engine job model (_utils/sgejobs.py), tested once against qstat output recorded on
a real Debian 12 cell; the sge module and the spawner both read qstat through it (checked at the
end: they agree on every recorded job)."""

import re
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.conftest import REPO
from tests.unit.test_sge_support import SGEJOBS_UTILS, recording, sgejobs
from tests.unit.test_sge_support import sge_module as sge

sys.path.insert(0, str(REPO / "salt/jupyterhub/files/sgespawner"))
from sgespawner import gridengine  # noqa: E402
from sgespawner import jobs as spawner_jobs  # noqa: E402


def _submitted(name):
    """The job id a recorded qsub printed (``Your job 4 ("errjob") ...``, ``job-array 6.1-3:1``)."""
    return re.search(r"Your job(?:-array)? (\d+)", recording(name)["stdout"]).group(1)


def test_the_spawner_package_carries_this_very_file():
    assert (REPO / "salt/jupyterhub/files/sgespawner/sgespawner/jobs.py").resolve() == \
        (REPO / "_utils/sgejobs.py").resolve()
    assert spawner_jobs.STATUS_TABLE == sgejobs.STATUS_TABLE


@pytest.mark.parametrize("state, status", [
    # every state seen on the cell (qstat_xml_all and the spawner's tests on it), and the
    # combinations qstat(1) documents
    ("r", "running"), ("t", "running"), ("Rr", "running"), ("hr", "running"),
    ("qw", "pending"), ("Rq", "pending"), ("hqw", "held"), ("hRwq", "held"),
    ("Eqw", "error"), ("Ehqw", "error"),
    ("s", "suspended"), ("S", "suspended"), ("T", "suspended"), ("rs", "suspended"),
    ("dr", "deleting"), ("dt", "deleting"), ("dRr", "deleting"), ("dEqw", "deleting"),
    ("", "unknown"), ("z", "unknown"),
])
def test_one_classification_for_every_state(state, status):
    assert sgejobs.classify(state) == status
    job = sgejobs.Job("1", state, "alice")
    assert job.status == status
    assert job.started == (status in ("running", "suspended"))
    assert job.gone == (status == "deleting") and job.failed == (status == "error")


def test_the_recorded_jobs_have_the_state_their_submission_asked_for():
    """qstat_xml_all was recorded after the qsubs qsub_run1 (a sleeper), qsub_pend (2 slots: no
    room), qsub_err (-wd /nonexistent), qsub_held (-h), qsub_array (-t 1-3, one slot free)."""
    jobs = sgejobs.parse_qstat_xml(recording("qstat_xml_all")["stdout"])
    first = sgejobs.by_id(jobs)
    assert first[_submitted("qsub_run1")].status == "running"
    assert first[_submitted("qsub_run1")].host == "jhtb-q" and first[_submitted("qsub_run1")].queue == "all.q"
    assert first[_submitted("qsub_pend")].status == "pending" and first[_submitted("qsub_pend")].slots == 2
    assert first[_submitted("qsub_err")].status == "error" and first[_submitted("qsub_err")].state == "Eqw"
    assert first[_submitted("qsub_held")].status == "held"
    array = [job for job in jobs if job.id == _submitted("qsub_array")]
    assert [(job.status, job.tasks) for job in array] == [("running", "1"), ("pending", "2,3")]
    assert first[_submitted("qsub_array")] is array[0]  # its first (running) record counts
    assert [job.id for job in jobs][:2] == ["1", "6"]  # started jobs first, as qstat lists them


def test_empty_listings():
    for name in ("qstat_xml_all_empty", "qstat_xml_empty", "qstat_xml_user_missing"):
        assert sgejobs.parse_qstat_xml(recording(name)["stdout"]) == [], name


def test_qstat_xml_without_u_lists_only_the_callers_jobs():
    rec = recording("qstat_xml_alice")
    assert rec["cmd"] == ["qstat", "-xml"] and rec["user"] == "alice"
    jobs = sgejobs.parse_qstat_xml(rec["stdout"])
    assert jobs and {job.owner for job in jobs} == {"alice"}


def test_not_xml_and_cut_off_documents_raise():
    with pytest.raises(ET.ParseError):
        sgejobs.parse_qstat_xml("not xml")
    with pytest.raises(ET.ParseError):
        sgejobs.parse_qstat_xml(recording("qstat_xml_all")["stdout"][:-40])


def test_the_salt_module_and_the_spawner_agree_on_every_recorded_job(monkeypatch):
    text = recording("qstat_xml_all")["stdout"]
    monkeypatch.setattr(sge, "__utils__", dict(SGEJOBS_UTILS), raising=False)
    salt_view = {job["job_id"]: job for job in reversed(sge._parse_jobs(text))}  # first record wins
    spawner_view = gridengine.parse_qstat_xml(text)
    assert sorted(salt_view) == sorted(spawner_view) == ["1", "3", "4", "5", "6"]
    for job_id, job in spawner_view.items():
        assert salt_view[job_id]["status"] == job.status
        assert salt_view[job_id]["state"] == job.state and salt_view[job_id]["host"] == job.host


def test_the_salt_module_says_when_the_model_is_not_synced(monkeypatch):
    monkeypatch.setattr(sge, "__utils__", {}, raising=False)
    with pytest.raises(sge.CommandExecutionError, match="sgejobs is not loaded.*sync_utils"):
        sge._parse_jobs(recording("qstat_xml_all")["stdout"])
