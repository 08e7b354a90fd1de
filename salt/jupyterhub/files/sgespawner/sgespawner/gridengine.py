"""Grid Engine: the commands the hub runs (qsub/qdel through sudo as the user, qstat and
qconf as the hub user), ``qstat`` parsing, and ONE ``qstat -xml -u '*'`` per interval shared by
every spawner (``JobPoller``); a failing qstat means "unknown", never "job gone"."""

import asyncio
import fnmatch
import logging
import os
import re
import time
import xml.etree.ElementTree as ET
from typing import NamedTuple

from . import jobs as sgejobs
from .jobs import by_id
from .options import QCONF_LISTS, seconds

UNKNOWN = "unknown"  # JobPoller.status() when Grid Engine did not answer
log = logging.getLogger("JupyterHub.sgespawner")  # the hub's log handler and format


def parse_qstat_xml(text):
    """``qstat -xml -u '*'`` -> {job id: Job}, read with the one job model shared with the Salt
    module ``sge`` (``jobs``: forbidden characters replaced, unreadable records skipped and
    logged); a job number that appears twice keeps its first record. One user's job cannot make
    every session "unknown". A document that is cut off raises ``ET.ParseError``."""
    return by_id(sgejobs.parse_qstat_xml(text, log))


def parse_qstat_j(text):
    """``qstat -j ID[,ID]`` -> {job id: reason}: the error reason, or else the scheduling info."""
    reasons, job_id, errors, info, key = {}, None, {}, {}, None
    for line in text.splitlines():
        if not line.strip() or line.startswith("==="):
            continue
        if line[0].isspace():  # continuation of the previous key
            if key == "scheduling info" and job_id:
                info.setdefault(job_id, []).append(line.strip())
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "job_number":
            job_id = value
        elif key.startswith("error reason") and job_id:
            errors.setdefault(job_id, []).append(value)
        elif key == "scheduling info" and job_id:
            info.setdefault(job_id, []).append(value)
    for job_id in set(errors) | set(info):
        lines = errors.get(job_id) or info.get(job_id)
        reasons[job_id] = "; ".join(line for line in lines if line)
    return reasons


# ---------------------------------------------------------------------------------------------
# What the cluster has free: one summary per poll interval, shown on the form
# ---------------------------------------------------------------------------------------------
# queue instance states in which Grid Engine starts nothing there: load alarm (a), suspend alarm
# (A), unknown/unreachable (u), disabled (d, D), suspended (s, S), calendar (C), error (E),
# ambiguous configuration (c), orphaned (o)
_QUEUE_CLOSED = set("aAudDsSCEco")


class Load(NamedTuple):
    free: int  # slots a new job could get now
    total: int  # slots of the queue instances (capped by the hosts' slot consumable)
    waiting: int  # pending jobs that asked for this queue / PE (or for no queue at all)

    def text(self):
        waiting = f", {self.waiting} job{'s' if self.waiting != 1 else ''} waiting" if self.waiting else ""
        return f"{self.free} of {self.total} slots free{waiting}"


def _int(element, tag):
    try:
        return int(float(element.findtext(tag) or 0))
    except ValueError:
        return 0


def parse_queue_instances(text):
    """``qstat -f -F slots -xml`` -> [(cluster queue, free, total)], one per queue instance.

    A closed instance (disabled, alarm, unreachable, ...) has nothing free. A host's ``slots``
    consumable (``complex_values slots=N``, reported as ``hc:slots``, what is left on the host)
    caps the queue's own slot count."""
    instances = []
    for item in ET.fromstring(sgejobs.clean_xml(text)).iter("Queue-List"):
        queue = (item.findtext("name") or "").partition("@")[0]
        used, resv, total = _int(item, "slots_used"), _int(item, "slots_resv"), _int(item, "slots_total")
        free = max(0, total - used - resv)
        for resource in item.findall("resource"):
            if resource.get("name") == "slots":
                left = int(float(resource.text or 0))
                free, total = min(free, left), min(total, used + resv + left)
        if _QUEUE_CLOSED & set(item.findtext("state") or ""):
            free = 0
        instances.append((queue, free, total))
    return instances


def parse_pending(text):
    """The pending jobs of ``qstat -xml -u '*' -r``: [(requested queues, requested PE)]."""
    pending = []
    for item in sgejobs.job_records(text, log):
        if item.get("state") != "pending":
            continue
        queues = [q.text.partition("@")[0] for q in item.findall("hard_req_queue") if q.text]
        pe = item.find("requested_pe")
        pending.append((queues, pe.get("name", "") if pe is not None else ""))
    return pending


def summarize_load(instances, pending, pe_instances):
    """{"queue": {name: Load}, "pe": {name: Load}} from parse_queue_instances/parse_pending output
    (``pe_instances``: PE name -> the instances of the queues that have it)."""
    def load(rows, waiting):
        return Load(sum(r[1] for r in rows), sum(r[2] for r in rows), waiting)

    summary = {"queue": {}, "pe": {}}
    for queue in sorted({row[0] for row in instances}):
        waiting = sum(1 for queues, _ in pending if not queues or any(fnmatch.fnmatchcase(queue, q) for q in queues))
        summary["queue"][queue] = load([r for r in instances if r[0] == queue], waiting)
    for pe, rows in pe_instances.items():
        waiting = sum(1 for _, wanted in pending if wanted and fnmatch.fnmatchcase(pe, wanted))
        summary["pe"][pe] = load(rows, waiting)
    return summary


# What qsub says on stderr once it queued a job (without -terse, or with -now yes / -sync y):
# "Your job 12 ("name") has been submitted", "Your job-array 12.1-3:1 ...", "Your immediate job 12
# has been successfully scheduled."
QSUB_SAID_JOB = re.compile(r"\bYour (?:immediate )?job(?:-array)? ([0-9]+)")


def submitted_job(out, err):
    """The id of the job a ``qsub -terse`` queued: stdout's first line, else what qsub said on
    stderr (a qsub ended by sudo's command_timeout may die before it writes stdout); None if
    neither shows one."""
    terse = re.match(r"[0-9]+", out)
    if terse:
        return terse.group()
    said = QSUB_SAID_JOB.search(err)
    return said.group(1) if said else None


async def run(argv, input=None, env=None, timeout=60):
    """Run a command without a shell -> (returncode, stdout, stderr); rc 127 if it cannot run,
    124 if it did not finish in ``timeout`` seconds.

    A command run through sudo belongs to root and cannot be signalled from the hub: sudo ends it
    itself (sudoers ``command_timeout``, shorter than ``timeout``); here it is only abandoned."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env, cwd="/",
        )
    except OSError as exc:
        return 127, "", str(exc)
    try:
        out, err = await asyncio.wait_for(proc.communicate(input.encode() if input else None), timeout)
    except TimeoutError:
        try:
            proc.kill()
            await proc.wait()
        except (PermissionError, ProcessLookupError):
            pass  # a root-owned sudo: its command_timeout ends it
        return 124, "", f"{os.path.basename(argv[0])} did not answer within {timeout} s"
    return proc.returncode, out.decode(errors="replace").strip(), err.decode(errors="replace").strip()


class Cluster:
    """The Grid Engine commands, from settings ``sge``: qsub/qdel as the user through sudo
    (sudoers allows exactly these, as members of the allow-list group), qstat and qconf -s* as
    the hub user."""

    SUDO = ("sudo", "-n", "-u")  # -n: fail instead of asking for a password

    def __init__(self, sge, runner=run):
        self.sge = sge
        self.run = runner
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
                    "SGE_ROOT": sge["root"], "SGE_CELL": sge["cell"]}
        # sudo ends qsub/qdel after command_timeout; the hub waits a little longer for sudo
        self.timeout = sge.get("command_timeout", 30) + 10
        self._lists = {}  # qconf option -> (time, names)
        self._asking = {}  # qconf option -> the qconf for it that runs now

    def _as(self, user, *argv):
        return [*self.SUDO, user, *argv]

    async def qsub(self, user, script):
        return await self.run(self._as(user, self.sge["qsub"], "-terse"), input=script, env=self.env,
                              timeout=self.timeout)

    async def qdel(self, user, job_id):
        return await self.run(self._as(user, self.sge["qdel"], job_id), env=self.env, timeout=self.timeout)

    async def qstat(self):
        return await self.run([self.sge["qstat"], "-xml", "-u", "*"], env=self.env, timeout=self.timeout)

    async def qstat_j(self, job_ids):
        return await self.run([self.sge["qstat"], "-j", ",".join(job_ids)], env=self.env, timeout=self.timeout)

    async def queue_load(self, pe=None):
        """``qstat -f -F slots -xml``: every queue instance with its free slots, and (without
        ``pe``) everyone's jobs with their requests; with ``pe``: only the instances of the queues
        that have that parallel environment."""
        scope = ["-pe", pe] if pe else ["-u", "*", "-r"]
        return await self.run([self.sge["qstat"], "-f", "-F", "slots", "-xml", *scope], env=self.env,
                              timeout=self.timeout)


    async def qconf_list(self, option, max_age=60):
        """Names ``qconf -sql``/``-spl``/``-sprjl`` lists; None if qconf fails (check skipped).

        Kept ``max_age`` seconds; callers that ask while a qconf for the same list runs wait for
        that one (a class pressing Start at once runs one qconf per list, not one per user)."""
        cached = self._lists.get(option)
        if cached and time.monotonic() - cached[0] < max_age:
            return cached[1]
        running = self._asking.get(option)
        if running is None:
            running = self._asking[option] = asyncio.ensure_future(self._ask_qconf(option))
            running.add_done_callback(lambda _: self._asking.pop(option, None))
        return await asyncio.shield(running)  # a caller that is cancelled leaves it to the others

    async def _ask_qconf(self, option):
        rc, out, err = await self.run([self.sge["qconf"], option], env=self.env, timeout=self.timeout)
        if rc != 0 and not err.startswith("no "):  # "no project list defined" = empty list
            log.warning("qconf %s failed (rc %s): %s; not checking against it", option, rc, err)
            return None
        names = out.split() if rc == 0 else []
        self._lists[option] = (time.monotonic(), names)
        return names

    async def sge_privileged(self):
        """Grid Engine managers and operators (``qconf -sm``, ``-so``); None when qconf fails
        (logged by qconf_list: Grid Engine lets only admin hosts list them)."""
        names = set()
        for option in ("-sm", "-so"):
            listed = await self.qconf_list(option)
            if listed is None:
                return None
            names.update(listed)
        return names

    async def live_lists(self, fields):
        return {
            name: await self.qconf_list(option)
            for name, option in QCONF_LISTS.items()
            if fields[name].get("check_qconf")
        }


class JobPoller:
    """One ``qstat -xml -u '*'`` per interval for all spawners.

    ``status(job_id)`` answers from the last snapshot: a Job, None (not in the queue) or UNKNOWN
    (qstat failed: keep the session, retry). While a server is starting or stopping (``busy``)
    the interval is ``fast_interval``; ``kick()`` asks for a poll now. Jobs that are starting get
    their reason (error reason or scheduling info) from one extra ``qstat -j`` per round.
    Callbacks in ``watch`` fire when their job leaves the queue (a server stopped behind the hub's
    back is noticed within one interval).
    """

    def __init__(self, cluster, interval=10, fast_interval=1, min_gap=0.2):
        self.cluster = cluster
        self.interval, self.fast_interval, self.min_gap = interval, fast_interval, min_gap
        self.jobs, self.ok, self.reasons = {}, False, {}
        self.starting, self.busy, self.watch = set(), 0, {}
        # jobs the hub must still delete: job id -> owner (a qdel failed), and submits that timed
        # out: (owner, job name) -> monotonic deadline (a job that shows up by then is deleted)
        self.to_delete, self.lost_submits = {}, {}
        self.generation, self.qstat_calls, self._detail_at = 0, 0, {}
        # polls begun, and which of them the current snapshot comes from: next_update() waits for
        # a qstat begun after its call (one already running may predate a job just submitted)
        self.polls_begun, self.snapshot_of = 0, 0
        self._task, self._kick, self._updated = None, None, None
        self._load, self._load_lock, self.load_calls = {}, asyncio.Lock(), 0  # cluster_load()

    def _ensure_started(self):
        if self._task is None or self._task.done():
            self._kick, self._updated = asyncio.Event(), asyncio.Condition()
            self._task = asyncio.ensure_future(self._loop())

    def kick(self):
        self._ensure_started()
        self._kick.set()

    async def _loop(self):
        while True:
            started = time.monotonic()
            try:
                await self.poll_once()
            except Exception:  # never let the poller die
                log.exception("Grid Engine poll failed")
            interval = self.fast_interval if (self.busy or self.starting) else self.interval
            try:
                await asyncio.wait_for(self._kick.wait(), interval)
            except TimeoutError:
                pass
            self._kick.clear()
            await asyncio.sleep(max(0.0, started + self.min_gap - time.monotonic()))

    async def poll_once(self):
        self.polls_begun += 1
        begun = self.polls_begun
        self.qstat_calls += 1
        rc, out, err = await self.cluster.qstat()
        try:
            jobs = parse_qstat_xml(out) if rc == 0 else None
        except ET.ParseError as exc:
            jobs, err = None, f"unreadable output: {exc}"
        if jobs is None:
            if self.ok or not self.generation:
                log.warning("qstat failed (rc %s): %s; sessions are kept, retrying", rc, err)
            self.ok = False
        else:
            if not self.ok and self.generation:
                log.warning("qstat answers again")
            self.jobs, self.ok = jobs, True
            await self._fetch_reasons()
            await self._delete_leftovers()
        self.generation += 1
        self.snapshot_of = begun
        if self._updated:
            async with self._updated:
                self._updated.notify_all()
        if self.ok:
            for job_id, callback in list(self.watch.items()):
                if self.status(job_id) is None:
                    callback()

    def delete_later(self, job_id, owner):
        """Keep deleting ``job_id`` at every poll until it has left the queue."""
        self.to_delete[job_id] = owner
        self.kick()

    def find_and_delete(self, owner, job_name, within=300):
        """A submit of ``job_name`` timed out: delete the job if it shows up within ``within`` s."""
        self.lost_submits[(owner, job_name)] = time.monotonic() + within
        self.kick()

    async def _delete_leftovers(self):
        now = time.monotonic()
        for key, deadline in list(self.lost_submits.items()):
            found = [job for job in self.jobs.values() if (job.owner, job.name) == key]
            for job in found:
                log.warning("deleting job %s of %s: its submit timed out", job.id, job.owner)
                self.to_delete[job.id] = job.owner
            if found or now > deadline:
                del self.lost_submits[key]
        for job_id, owner in list(self.to_delete.items()):
            job = self.jobs.get(job_id)
            if job is None or job.gone or job.owner != owner:
                del self.to_delete[job_id]
                continue
            rc, _, err = await self.cluster.qdel(owner, job_id)
            if rc != 0:
                log.error("qdel %s (of %s) failed (rc %s): %s; trying again", job_id, owner, rc, err)

    async def _fetch_reasons(self):
        now = time.monotonic()
        wanted = [
            job_id for job_id in sorted(self.starting)
            if job_id in self.jobs and (self.jobs[job_id].failed or (
                not self.jobs[job_id].started and now - self._detail_at.get(job_id, 0) >= self.interval))
        ]
        if wanted:
            self.qstat_calls += 1
            rc, out, _ = await self.cluster.qstat_j(wanted)
            self.reasons.update(parse_qstat_j(out))
            self._detail_at.update(dict.fromkeys(wanted, now))

    async def cluster_load(self, pes=()):
        """What the cluster has free (``summarize_load``), for the form: at most one refresh per
        interval however many people open the form (they share it); None when Grid Engine does
        not answer (the form is shown without it)."""
        key = tuple(sorted(pes))
        cached = self._load.get(key)
        if cached and time.monotonic() - cached[0] < self.interval:
            return cached[1]
        async with self._load_lock:
            cached = self._load.get(key)
            if cached and time.monotonic() - cached[0] < self.interval:
                return cached[1]
            summary = None
            try:
                self.load_calls += 1
                rc, out, err = await self.cluster.queue_load()
                if rc != 0:
                    raise RuntimeError(err or f"exit status {rc}")
                instances, pending, by_pe = parse_queue_instances(out), parse_pending(out), {}
                for pe in key:
                    self.load_calls += 1
                    rc, out, err = await self.cluster.queue_load(pe)
                    by_pe[pe] = parse_queue_instances(out) if rc == 0 else []
                summary = summarize_load(instances, pending, by_pe)
            except (RuntimeError, ET.ParseError) as exc:
                log.warning("the cluster's load is not shown on the form: qstat: %s", exc)
            self._load[key] = (time.monotonic(), summary)
            return summary

    def status(self, job_id, owner=None):
        """The job from the last snapshot; None when it left the queue (or, with ``owner``, when
        the job of that number belongs to someone else); UNKNOWN when qstat failed."""
        if not self.ok:
            return UNKNOWN
        job = self.jobs.get(job_id)
        if job is not None and owner is not None and job.owner != owner:
            log.warning("job %s belongs to %r, not %r: not following it", job_id, job.owner, owner)
            return None
        return None if job is None or job.gone else job

    async def next_update(self, kick=False):
        """Wait for the next snapshot taken after this call: from a qstat begun after it (under
        load a qstat can run for seconds; one begun before a submit returned may not list the job)."""
        self._ensure_started()
        begun = self.polls_begun
        if kick:
            self._kick.set()
        async with self._updated:
            await self._updated.wait_for(lambda: self.snapshot_of > begun)

    async def ready(self):
        """Wait until the first poll has been made (answered or failed)."""
        if not self.generation:
            await self.next_update()


# ---------------------------------------------------------------------------------------------
# Run time: what h_rt leaves of a running server
# ---------------------------------------------------------------------------------------------
def _duration(left):
    left = max(0, int(left))
    hours, minutes = left // 3600, left // 60 % 60
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def time_left(user, now=None):
    """template_vars callable: the user's running servers with the time Grid Engine still gives
    them (their h_rt from when the job started): [{name, job_id, host, ends, left, duration, text,
    warn}]; the home page shows "<duration> left: <text>"."""
    if user is None:
        return []
    now = time.time() if now is None else now
    servers = []
    for name, spawner in sorted(getattr(user, "spawners", {}).items()):
        started, runtime = getattr(spawner, "job_started", 0), getattr(spawner, "job_runtime", "")
        if not (started and runtime and spawner.active and spawner.ready):
            continue
        ends = started + seconds(runtime)
        warn = ends - now <= spawner.time_left_warning
        servers.append({
            "name": name, "job_id": spawner.job_id, "host": spawner.ip, "ends": int(ends),
            "left": max(0, int(ends - now)), "warn": warn, "duration": _duration(ends - now),
            "text": "Grid Engine stops "
                    f"{'your server' if not name else 'server ' + repr(name)} (job {spawner.job_id}) at "
                    f"{time.strftime('%H:%M %Z', time.localtime(ends))}"
                    + (". Save your work." if warn else ""),
        })
    return servers
