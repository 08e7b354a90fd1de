"""
The one model of a Grid Engine job: what each ``qstat`` state means, and ``qstat -xml`` read into
job records. Standard library only, used by both sides:

- the Salt execution module ``sge`` (``sge.jobs``, ``sge.job_status``), as the Salt utility
  module ``sgejobs`` (``__utils__["sgejobs.parse_qstat_xml"]``; synced with
  ``saltutil.sync_utils``, shipped by salt-ssh);
- the spawner (``sgespawner.jobs`` is this file: a link in the state tree, installed as a copy).

The classification is :py:data:`STATUS_TABLE`: the first row whose letters the state has decides
its status. Tested against ``qstat -xml`` recorded on a real cell (``tests/unit/test_sgejobs.py``).
"""

import logging
import re
import xml.etree.ElementTree as ET
from typing import NamedTuple

log = logging.getLogger(__name__)

# Grid Engine's job state letters (qstat(1)), as they appear in ``<state>``: r running, t being
# transferred to its host (starting), R restarted, s suspended (qmod -sj), S suspended with its
# queue, T suspended by a threshold, q queued, w waiting, h hold, E error (cannot start; qstat -j
# says why), d deletion requested (qdel: leaving the queue). A state combines them: qw, hqw, Eqw,
# Rq, Rr, hr (a hold on a running job: it keeps running), dr, dt, ...
#
# status       the state has any of   and any of   what it means for its owner
STATUS_TABLE = (
    ("deleting", "d", None),  # as good as gone: nothing will run any more
    ("error", "E", None),  # it will not start; stays in the queue until deleted
    ("held", "qw", "h"),  # waiting, and not scheduled until released
    ("pending", "qw", None),  # waiting for the scheduler
    ("suspended", "sST", None),  # started, processes stopped; resumes where it was
    ("running", "rt", None),  # started (t: being started on its host)
)
STATUSES = tuple(row[0] for row in STATUS_TABLE) + ("unknown",)
STARTED = frozenset({"running", "suspended"})  # it has a host and its processes exist there
WAITING = frozenset({"pending", "held"})  # queued: no host yet


def classify(state):
    """Grid Engine's state letters (``r``, ``qw``, ``hqw``, ``Eqw``, ``dr``, ``s``, ...) -> one of
    :py:data:`STATUSES` (``unknown`` for an empty or unheard-of state)."""
    for status, any_of, and_any_of in STATUS_TABLE:
        if any(c in state for c in any_of) and (and_any_of is None or any(c in state for c in and_any_of)):
            return status
    return "unknown"


class Job(NamedTuple):
    """One ``job_list`` record of ``qstat -xml`` (an array job has one per group of tasks)."""

    id: str
    state: str  # Grid Engine's letters
    owner: str
    host: str = ""  # execution host ('' while waiting)
    name: str = ""  # job name (qsub -N): chosen by its owner, never trusted
    queue: str = ""  # cluster queue ('' while waiting)
    slots: int = 0
    priority: str = ""
    start_time: str = ""  # started jobs
    submission_time: str = ""  # waiting jobs
    tasks: str = ""  # array jobs: SGE's task range, e.g. 2,3

    @property
    def status(self):
        return classify(self.state)

    @property
    def gone(self):
        return self.status == "deleting"

    @property
    def failed(self):
        return self.status == "error"

    @property
    def started(self):
        """Its processes exist on ``host``: running, or suspended (a session to keep)."""
        return self.status in STARTED

    @property
    def waiting(self):
        return self.status in WAITING

    def as_dict(self):
        """The record as ``sge.jobs`` returns it: ``job_id``, ``name``, ``owner``, ``state``,
        ``status``, ``queue``, ``queue_instance``, ``host``, ``slots``, ``priority``, the booleans
        ``running``, ``pending`` (waiting, held or not), ``held`` (a hold, also on a running job),
        ``error``, ``suspended``, ``deleting``, and where Grid Engine gives them ``start_time``,
        ``submission_time``, ``tasks``."""
        status = self.status
        entry = {
            "job_id": self.id, "name": self.name, "owner": self.owner, "state": self.state,
            "status": status, "queue": self.queue,
            "queue_instance": f"{self.queue}@{self.host}" if self.queue else "",
            "host": self.host, "slots": self.slots, "priority": self.priority,
            "running": status == "running", "pending": status in WAITING, "held": "h" in self.state,
            "error": status == "error", "suspended": status == "suspended",
            "deleting": status == "deleting",
        }
        for key in ("start_time", "submission_time", "tasks"):
            if getattr(self, key):
                entry[key] = getattr(self, key)
        return entry


# characters XML 1.0 forbids (SGE writes job names as they are: a control character in another
# user's job name would make the whole document unreadable)
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_JOB_RECORD = re.compile(r"<job_list\b.*?</job_list>", re.S)


def clean_xml(text):
    """``text`` with the characters XML 1.0 forbids replaced by ``?``."""
    return _XML_FORBIDDEN.sub("?", text)


def job_records(text, logger=None):
    """The ``job_list`` elements of a ``qstat -xml`` document, read defensively (see
    :py:func:`parse_qstat_xml`)."""
    logger = logger or log
    text = clean_xml(text)
    try:
        return list(ET.fromstring(text).iter("job_list"))
    except ET.ParseError:
        if not text.rstrip().endswith("</job_info>"):
            raise  # not a complete document (e.g. cut off): nothing in it can be trusted
    records = []
    for chunk in _JOB_RECORD.findall(text):
        try:
            records.append(ET.fromstring(chunk))
        except ET.ParseError as exc:
            logger.warning("qstat: skipped a job record that cannot be read (%s): %.200r", exc, chunk)
    return records


def _text(item, tag):
    return (item.findtext(tag) or "").strip()


def parse_qstat_xml(text, logger=None):
    """``qstat -xml [-u ...]`` -> a list of :py:class:`Job`, in Grid Engine's order (started jobs
    first; an array job once per group of tasks).

    What other users control (job names, paths, projects) is never trusted to be well-formed:
    characters XML forbids are replaced, a record that still cannot be read is skipped and logged,
    and so is one without a job number; one user's job cannot hide everyone else's. A document that
    is not complete (cut off, not XML) raises ``xml.etree.ElementTree.ParseError``.
    """
    logger = logger or log
    jobs = []
    for item in job_records(text, logger):
        job_id = _text(item, "JB_job_number")
        if not job_id.isdigit():
            logger.warning("qstat: skipped a job record without a job number")
            continue
        queue, _, host = _text(item, "queue_name").partition("@")
        slots = _text(item, "slots")
        jobs.append(Job(
            job_id, _text(item, "state"), _text(item, "JB_owner"), host.strip(),
            item.findtext("JB_name") or "", queue.strip(), int(slots) if slots.isdigit() else 0,
            _text(item, "JAT_prio"), _text(item, "JAT_start_time"), _text(item, "JB_submission_time"),
            _text(item, "tasks"),
        ))
    return jobs


def by_id(jobs):
    """{job id: Job}; a job number listed twice keeps its first record (an array job's first
    group of tasks; a forged later record cannot replace a real one)."""
    found = {}
    for job in jobs:
        found.setdefault(job.id, job)
    return found
