"""Spawner glue: JupyterHub servers as Grid Engine jobs, built on batchspawner's GridengineSpawner.

Managed by Salt (jupyterhub.config). jupyterhub_config.py calls ``configure(c, settings)`` with
settings.json (the merged ``jupyterhub`` pillar plus hub_ip, env_prefix, fqdn).

The first half is plain Python (no JupyterHub needed; unit-tested in the Salt venv):

- ``validate``: the form fields (project, queue, pe, slots, ram, gpus, runtime, email) checked
  against the pillar ``spawner:fields`` table; a refusal names the field and the allowed values.
- ``job_options`` / ``render_job_script``: what each field becomes (``#$`` lines) is pillar
  data too; only validated values reach the job script, never raw user input.
- ``write_secret_env``: the API token reaches the job through a file that only the hub user and
  the job's owner can read (POSIX ACL), never through ``qsub -v``, the script or the spool.
- ``Cluster`` / ``JobPoller``: the Grid Engine commands, and ONE ``qstat -xml -u '*'`` per
  interval shared by every spawner; a failing qstat means "unknown", never "job gone".

The second half is the thin JupyterHub layer: ``SGESpawner`` (a GridengineSpawner; batchspawner
keeps the job's state, polling and stop) and the ``/hub/api/batchspawner`` handler the job reports
its port (or its failure) to.
"""

import asyncio
import fnmatch
import grp
import html
import json
import logging
import os
import pwd
import re
import shlex
import struct
import time
import uuid
import xml.etree.ElementTree as ET
from typing import NamedTuple

import jinja2

FIELDS = ("project", "queue", "pe", "slots", "ram", "gpus", "runtime", "email", "ui")
# choice fields and the `qconf` option that lists what the cluster defines
QCONF_LISTS = {"project": "-sprjl", "queue": "-sql", "pe": "-spl"}
CHOICE_FIELDS = (*QCONF_LISTS, "ui")
# the user interfaces a server can open (field `ui`): name -> its URL path (default_url)
UI_URLS = {"lab": "/lab", "notebook": "/tree"}
RUNTIME_RE = re.compile(r"([0-9]{1,3}):([0-5][0-9]):([0-5][0-9])")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
UNKNOWN = "unknown"  # JobPoller.status() when Grid Engine did not answer
log = logging.getLogger("JupyterHub.sgespawner")  # the hub's log handler and format


# ---------------------------------------------------------------------------------------------
# Form values: validation against the pillar table
# ---------------------------------------------------------------------------------------------
class Refused(ValueError):
    """User options that must not become a job; one message per problem, naming the field."""

    def __init__(self, errors):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


def _show(value, limit=40):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _seconds(runtime):
    hours, minutes, seconds = (int(x) for x in runtime.split(":"))
    return hours * 3600 + minutes * 60 + seconds


def _text(name, raw, limit=100):
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise Refused([f"{name}: expected one value, got {_show(raw)}"])
    value = str(raw).strip(" ")
    if not value.isprintable():
        raise Refused([f"{name}: line breaks and control characters are not allowed"])
    if len(value) > limit:
        raise Refused([f"{name}: longer than {limit} characters"])
    return value


def _choice(name, raw, field):
    value = _text(name, raw)
    choices = field.get("choices") or {}
    if value == "" and field.get("optional"):
        return ""
    if value not in choices:
        allowed = ", ".join(choices) or "none"
        if field.get("optional"):
            allowed += " (or empty)"
        what = "a value is required" if value == "" else f"{_show(value)} is not allowed"
        raise Refused([f"{name}: {what}; allowed: {allowed}"])
    return value


def _number(name, raw, field):
    value = _text(name, raw)
    low, high = field["min"], field["max"]
    if not re.fullmatch(r"[0-9]{1,6}", value):
        raise Refused([f"{name}: {_show(value)} is not a whole number; allowed {low}-{high}"])
    if not low <= int(value) <= high:
        raise Refused([f"{name}: {int(value)} is out of range; allowed {low}-{high}"])
    return int(value)


def _runtime(name, raw, field):
    value = _text(name, raw)
    match = RUNTIME_RE.fullmatch(value)
    if not match:
        raise Refused([f"{name}: {_show(value)} is not a run time hh:mm:ss; at most {field['max']}"])
    seconds = _seconds(value)
    if seconds == 0:
        raise Refused([f"{name}: 00:00:00 is too short; allowed up to {field['max']}"])
    if seconds > _seconds(field["max"]):
        raise Refused([f"{name}: {value} is longer than the maximum {field['max']}"])
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _email(name, raw, field):
    value = _text(name, raw, limit=254)
    if value and not EMAIL_RE.fullmatch(value):
        raise Refused([f"{name}: {_show(value)} is not an e-mail address"])
    return value


CHECKS = {
    "project": _choice,
    "queue": _choice,
    "pe": _choice,
    "slots": _number,
    "ram": _number,
    "gpus": _number,
    "runtime": _runtime,
    "email": _email,
    "ui": _choice,
}


def _combination_errors(request, fields):
    errors = []
    if request["slots"] > 1 and not request["pe"]:
        offered = ", ".join(fields["pe"].get("choices") or {}) or "none offered"
        errors.append(f"pe: {request['slots']} slots need a parallel environment; allowed: {offered}")
    gpus = fields["gpus"]
    if request["gpus"]:
        for name in ("queue", "project"):
            with_gpus = gpus.get(name + "s") or []
            if request[name] and with_gpus and request[name] not in with_gpus:
                errors.append(
                    f"gpus: {name} {request[name]} has no GPUs; request 0 GPUs or choose "
                    f"{name} {', '.join(with_gpus)}"
                )
        if gpus.get("per") == "slot" and request["gpus"] % request["slots"]:
            errors.append(
                f"gpus: {request['gpus']} GPUs cannot be split evenly over {request['slots']} slots"
            )
    return errors


def validate(options, spec, live=None):
    """Check user options (form or REST API) against the pillar ``spawner`` map ``spec``.

    Returns the clean request with a value for every field (fields that are not enabled get
    their pillar default). ``live`` maps a choice field to the names ``qconf`` lists (only for
    fields with ``check_qconf``). Raises ``Refused`` listing every problem.
    """
    if not isinstance(options, dict):
        raise Refused([f"options: expected a mapping of field names, got {_show(options)}"])
    fields = spec["fields"]
    enabled = [name for name in FIELDS if fields[name]["enabled"]]
    errors = []
    for name in options:
        if name not in enabled:
            what = "not offered here" if name in FIELDS else "unknown field"
            shown = name if re.fullmatch(r"[A-Za-z0-9_.-]{1,30}", str(name)) else _show(name)
            errors.append(f"{shown}: {what}; fields: {', '.join(enabled)}")
    request = {}
    for name in FIELDS:
        field = fields[name]
        raw = options.get(name, field.get("default", "")) if field["enabled"] else field.get("default", "")
        try:
            request[name] = CHECKS[name](name, raw, field)
        except Refused as refused:
            errors += refused.errors
    if not errors:
        errors = _combination_errors(request, fields)
    for name, names in (live or {}).items():
        if names is not None and request.get(name) and request[name] not in names:
            errors.append(
                f"{name}: {request[name]} is not defined in Grid Engine "
                f"(qconf {QCONF_LISTS[name]}: {', '.join(names) or 'none'})"
            )
    if errors:
        raise Refused(errors)
    return request


def form_to_options(form_data):
    """JupyterHub form data (a dict of lists) -> user options (one value per field)."""
    return {
        key: values[0] if len(values) == 1 else values
        for key, values in form_data.items()
        if key != "_xsrf"
    }


def form_fields(spec, previous=None, load=None):
    """What the form template shows: the enabled fields with their current values.

    ``previous`` (the user's last options) preselects the values when they are still valid.
    ``load`` (``JobPoller.cluster_load``) adds to the queue and PE choices what is free now:
    ``field["load"]`` maps a choice to its ``Load``.
    """
    fields = spec["fields"]
    try:
        values = validate(previous or {}, spec)
    except Refused:
        values = validate({}, spec)
    shown = []
    for name in FIELDS:
        field = fields[name]
        if not field["enabled"]:
            continue
        item = {"name": name, "label": field.get("label") or name, "value": values[name]}
        if name in CHOICE_FIELDS:
            item.update(kind="choice", optional=field.get("optional", False),
                        choices=list((field.get("choices") or {}).items()),
                        load=((load or {}).get(name) or {}))
        elif name == "runtime":
            item.update(kind="runtime", help=f"hh:mm:ss, at most {field['max']}. "
                        "The server is stopped when this time is up.")
        elif name == "email":
            item.update(kind="email", help="Optional: Grid Engine mails you when the job ends.")
        else:
            item.update(kind="number", min=field["min"], max=field["max"],
                        help=f"{field['min']}-{field['max']}")
        shown.append(item)
    return shown


# ---------------------------------------------------------------------------------------------
# Who may get a server
# ---------------------------------------------------------------------------------------------
def account_refusal(name, access, sge_privileged):
    """Why account ``name`` may not get a server, or "" (checked before every submit).

    The rules of the role's sudo allow-list (pillar ``access``): a Unix account with uid >=
    ``min_uid``, in ``group``, in none of ``privileged_groups``, and not a Grid Engine manager or
    operator (``sge_privileged``: names from ``qconf -sm``/``-so``; None when qconf cannot answer,
    e.g. on a hub that is a submit host only: that check is skipped, the others hold). Accounts
    that sudoers lets run anything are refused by sudo itself (the role removes them from the sudo
    rule when it is applied).
    """
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return f"{name} has no Unix account on the hub host"
    if entry.pw_uid < access["min_uid"] or entry.pw_uid == 65534:
        return f"{name} is a system account (uid {entry.pw_uid}); servers are for ordinary users"
    groups = set()
    for gid in os.getgrouplist(name, entry.pw_gid):
        try:
            groups.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    privileged = sorted(groups & set(access["privileged_groups"]))
    if privileged:
        return (f"{name} is a privileged account (group {', '.join(privileged)}); "
                "servers are for ordinary users")
    if access["group"] not in groups:
        return (f"{name} is not in the group {access['group']} of users who may get servers; "
                "ask the administrators")
    if sge_privileged and name in sge_privileged:
        return f"{name} is a Grid Engine manager or operator; servers are for ordinary users"
    return ""


# ---------------------------------------------------------------------------------------------
# The job: qsub options and script
# ---------------------------------------------------------------------------------------------
def _amount(name, request, field):
    """RAM and GPUs as Grid Engine counts the complex: per slot (consumable YES) or per job."""
    slots = request["slots"]
    if name == "ram":  # the form asks for GB per core
        return request["ram"] if field.get("per", "slot") == "slot" else request["ram"] * slots
    if name == "gpus":  # the form asks for GPUs per job: one GPU is one GPU
        return request["gpus"] // slots if field.get("per", "job") == "slot" else request["gpus"]
    return request[name]


def job_options(request, spec):
    """The qsub options of a validated request, one per ``#$`` line.

    Each enabled-or-defaulted field with a value becomes its pillar ``directive`` (a format string
    over ``value``, ``amount``, ``complex`` and the other fields); 0 and '' add nothing.
    """
    options = ["-now yes"] if spec["immediate"] else []
    for name in FIELDS:
        field = spec["fields"][name]
        value = request[name]
        if field.get("directive") and value not in ("", 0):
            options.append(
                field["directive"].format(
                    **request, value=value, amount=_amount(name, request, field),
                    complex=field.get("complex", ""),
                )
            )
    return options + list(spec.get("extra_options") or [])


def render_job_script(template_text, **context):
    """Render the job script template (Jinja; ``| q`` shell-quotes a value)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["q"] = lambda value: shlex.quote(str(value))
    return env.from_string(template_text).render(**context)


# ---------------------------------------------------------------------------------------------
# The token file
# ---------------------------------------------------------------------------------------------
def _acl_user_read(uid):
    """A POSIX access ACL (system.posix_acl_access) = user::rw- user:<uid>:r-- group::--- mask::r-- other::---"""
    undefined = 0xFFFFFFFF
    entries = [(0x01, 6, undefined), (0x02, 4, uid), (0x04, 0, undefined), (0x10, 4, undefined),
               (0x20, 0, undefined)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


def write_secret_env(path, env, uid):
    """Write ``env`` as shell ``export`` lines to a NEW file only its owner and ``uid`` can read.

    The job sources it; the hub deletes it as soon as the server is up or the job is gone.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.setxattr(fd, "system.posix_acl_access", _acl_user_read(uid))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for key, value in sorted(env.items()):
                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                    handle.write(f"export {key}={shlex.quote(str(value))}\n")
    except BaseException:
        os.unlink(path)
        raise


def remove_file(path):
    if path:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------------------------------------
# Grid Engine: commands and the shared poller
# ---------------------------------------------------------------------------------------------
class Job(NamedTuple):
    id: str
    state: str  # qw, hqw, Eqw, r, t, Rr, s, dr, ...
    owner: str
    host: str  # execution host ('' while pending)
    name: str = ""  # job name (qsub -N)

    @property
    def gone(self):
        return "d" in self.state  # being deleted: as good as gone

    @property
    def failed(self):
        return "E" in self.state

    @property
    def running(self):  # r, t, Rr, s, S, T ...; every waiting state has a q (qw, hqw, Rq, Eqw)
        return bool(self.state) and not (self.gone or self.failed or "q" in self.state)


# characters XML 1.0 forbids (SGE writes job names as they are: a control character in another
# user's job name would make the whole document unreadable)
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_JOB_RECORD = re.compile(r"<job_list\b.*?</job_list>", re.S)


def _job_records(text):
    """The job_list elements of a ``qstat -xml`` document, read defensively (see parse_qstat_xml)."""
    text = _XML_FORBIDDEN.sub("?", text)
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
            log.warning("qstat: skipped a job record that cannot be read (%s): %.200r", exc, chunk)
    return records


def parse_qstat_xml(text):
    """``qstat -xml -u '*'`` -> {job id: Job}.

    What other users control (job names, paths, projects) is never trusted to be well-formed:
    characters XML forbids are replaced, a record that still cannot be read is skipped and logged,
    and a job number that appears twice keeps its first record. One user's job cannot make every
    session "unknown". A document that is cut off raises ``ET.ParseError``.
    """
    jobs = {}
    for item in _job_records(text):
        job_id = (item.findtext("JB_job_number") or "").strip()
        if not job_id.isdigit():
            log.warning("qstat: skipped a job record without a job number")
            continue
        queue = item.findtext("queue_name") or ""
        jobs.setdefault(job_id, Job(job_id, (item.findtext("state") or "").strip(),
                                    (item.findtext("JB_owner") or "").strip(),
                                    queue.partition("@")[2].strip(), item.findtext("JB_name") or ""))
    return jobs


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
    for item in ET.fromstring(_XML_FORBIDDEN.sub("?", text)).iter("Queue-List"):
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
    for item in _job_records(text):
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
        """Names ``qconf -sql``/``-spl``/``-sprjl`` lists; None if qconf fails (check skipped)."""
        cached = self._lists.get(option)
        if cached and time.monotonic() - cached[0] < max_age:
            return cached[1]
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
                not self.jobs[job_id].running and now - self._detail_at.get(job_id, 0) >= self.interval))
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
        """Wait for the next snapshot (taken after this call)."""
        self._ensure_started()
        generation = self.generation
        if kick:
            self._kick.set()
        async with self._updated:
            await self._updated.wait_for(lambda: self.generation > generation)

    async def ready(self):
        """Wait until the first poll has been made (answered or failed)."""
        if not self.generation:
            await self.next_update()


# ---------------------------------------------------------------------------------------------
# JupyterHub layer
# ---------------------------------------------------------------------------------------------
try:  # the hub's env; the unit tests of the part above run without JupyterHub
    from batchspawner import GridengineSpawner, JobStatus
    from jupyterhub.apihandlers import APIHandler, default_handlers
    from jupyterhub.spawner import SpawnException
    from tornado import web
    from traitlets import Dict, Float, Unicode, default
except ImportError:
    GridengineSpawner = None

_shared = {}  # one Cluster and JobPoller per hub process
LAST_END = {}  # (user, server name) -> why the last job ended, shown on the home page


async def _listening(host, port):
    """Does the server accept connections yet? (then the hub's first HTTP check succeeds)"""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def _poller(settings):
    if "poller" not in _shared:
        spec = settings["spawner"]
        _shared["cluster"] = Cluster(settings["sge"])
        _shared["poller"] = JobPoller(_shared["cluster"], spec["poll_interval"],
                                      spec["startup_poll_interval"])
    return _shared["poller"]


def _duration(seconds):
    seconds = max(0, int(seconds))
    hours, minutes = seconds // 3600, seconds // 60 % 60
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
        ends = started + _seconds(runtime)
        warn = ends - now <= spawner.sge_settings["spawner"]["time_left_warning"]
        servers.append({
            "name": name, "job_id": spawner.job_id, "host": spawner.ip, "ends": int(ends),
            "left": max(0, int(ends - now)), "warn": warn, "duration": _duration(ends - now),
            "text": "Grid Engine stops "
                    f"{'your server' if not name else 'server ' + repr(name)} (job {spawner.job_id}) at "
                    f"{time.strftime('%H:%M %Z', time.localtime(ends))}"
                    + (". Save your work." if warn else ""),
        })
    return servers


def last_end_message(user):
    """template_vars callable: why the user's last server ended (e.g. its run time was up)."""
    if user is None:
        return ""
    return LAST_END.get((user.name, ""), "")


if GridengineSpawner is not None:

    def spawn_error(message, reason, status=500):
        """A failed spawn that is not a bug (no traceback in the log): the user reads `message`
        on the form or the spawn page; multi-line output is shown as it is."""
        error = SpawnException(message, reason=reason, status_code=status)
        error.jupyterhub_message = message
        if "\n" in message and reason != "options":
            error.jupyterhub_html_message = f"<pre>{html.escape(message)}</pre>"
        return error

    class SGESpawner(GridengineSpawner):
        """GridengineSpawner with the pillar form, the token in a file instead of ``qsub -v``,
        the shared poller, and Grid Engine's own reasons in progress messages and errors."""

        sge_settings = Dict(help="the merged `jupyterhub` pillar map (settings.json)").tag(config=True)
        env_file = Unicode(help="file that carries the session's environment (API token) to the job")
        job_report = Dict(help="what a failing job posted about itself: exit_status, output")
        job_runtime = Unicode(help="requested run time (h_rt) of the current job")
        job_started = Float(0, help="time the server came up (epoch seconds)")
        bind_ip = Unicode("0.0.0.0", help="address the server listens on, on the execution host").tag(config=True)
        _messages = ()  # progress events of the current start
        _watched = None  # job id registered in poller.watch
        _wake = None  # set when the job reports (its port, or its failure) during start
        _running_since = 0  # when the poller first saw the job running

        @property
        def spec(self):
            return self.sge_settings["spawner"]

        @property
        def poller(self):
            return _poller(self.sge_settings)

        # --- the form --------------------------------------------------------------------
        @default("options_form")
        def _options_form_default(self):
            return render_options_form

        @default("options_from_form")
        def _options_from_form_default(self):
            return self._options_from_form

        async def _options_from_form(self, form_data):
            options = form_to_options(form_data)
            request = await self.check_options(options)  # a refusal re-renders the form with the message
            if self.spec["verify"]:
                await self.verify(request)
            return options

        async def verify(self, request):
            """Ask Grid Engine before submitting whether the request can start now (``-w p``,
            with ``immediate``) or can ever run (``-w v``); its reason re-renders the form. Nothing
            is submitted. A verification that itself fails (timeout) is logged and skipped."""
            await self._check_account()
            reasons = await self._why_not(request)
            if reasons:
                mode = "now" if self.spec["immediate"] else "on this cluster"
                message = f"Grid Engine cannot start this request {mode}: {reasons}"
                self.log.warning("%s: %s", self._log_name, message)
                raise spawn_error(message, "options", 400)

        async def _why_not(self, request):
            """Grid Engine's reasons why ``request`` cannot start (``qsub -w p|v``), or ''."""
            mode = "p" if self.spec["immediate"] else "v"
            script = self.job_script(request, self.spec["job_name"], env_file="/dev/null", verify=mode)
            rc, out, err = await self.poller.cluster.qsub(self.user.name, script)
            if rc == 0:
                return ""
            lines = [line.strip() for line in err.splitlines() + out.splitlines() if line.strip()]
            reasons = [re.sub(r"^(Unable to run job: )?(Job [0-9]+ )?", "", line) for line in lines
                       if not line.startswith(("verification:", "Exiting"))]
            if rc == 124 or "sudo:" in err or not reasons:
                self.log.warning("%s: qsub -w %s did not verify (rc %s): %s", self._log_name, mode, rc,
                                 " ".join(lines))
                return ""
            return "; ".join(reasons)

        async def _check_account(self):
            refusal = account_refusal(self.user.name, self.sge_settings["access"],
                                      await self.poller.cluster.sge_privileged())
            if refusal:
                self.log.warning("%s: not submitting: %s", self._log_name, refusal)
                raise spawn_error(f"No server for this account: {refusal}", "account", 403)

        @default("apply_user_options")
        def _apply_user_options_default(self):
            return _apply_user_options

        async def check_options(self, options):
            """The validated request, or HTTP 400 naming every refused field (no job is submitted)."""
            live = await self.poller.cluster.live_lists(self.spec["fields"])
            try:
                return validate(options, self.spec, live)
            except Refused as refused:  # one problem per line (spawn.html shows the lines)
                raise spawn_error(str(refused), "options", 400) from None

        # --- state -----------------------------------------------------------------------
        def load_state(self, state):
            super().load_state(state)
            self.env_file = state.get("env_file", "")
            self.job_runtime = state.get("job_runtime", "")
            self.job_started = state.get("job_started", 0)

        def get_state(self):
            state = super().get_state()
            state.update(env_file=self.env_file, job_runtime=self.job_runtime, job_started=self.job_started)
            return state

        def clear_state(self):
            remove_file(self.env_file)
            super().clear_state()
            self.env_file = self.job_runtime = ""
            self.job_started = 0
            self.job_report = {}

        # --- job status from the shared poller (used by batchspawner's poll()) ------------
        async def query_job_status(self):
            if not self.job_id:
                return JobStatus.NOTFOUND
            await self.poller.ready()
            job = self.poller.status(self.job_id, self.user.name)
            if job is UNKNOWN:
                return JobStatus.UNKNOWN
            if job is None:
                self._remember_end()
                return JobStatus.NOTFOUND
            self.job_status = f"{job.state} {job.host}".strip()
            # a job in error state still sits in the queue: stop() deletes it
            return JobStatus.RUNNING if job.running else JobStatus.PENDING

        def state_ispending(self):
            return bool(self.job_status) and not self.state_isrunning()

        def state_isrunning(self):
            state, _, host = self.job_status.partition(" ")
            return Job(self.job_id, state, "", host).running

        def state_gethost(self):
            return self.job_status.partition(" ")[2]

        def start_polling(self):
            super().start_polling()
            if self.job_id:  # notice a job that leaves the queue at the next shared poll
                self._watched = self.job_id
                self.poller.watch[self._watched] = lambda: asyncio.ensure_future(self.poll_and_notify())

        def stop_polling(self):
            super().stop_polling()
            self.poller.watch.pop(self._watched, None)

        def _remember_end(self):
            if not self.job_started:
                return
            key = (self.user.name, self.name)
            if self.job_runtime and time.time() - self.job_started >= _seconds(self.job_runtime) - 5:
                LAST_END[key] = (f"Your last server (job {self.job_id}) was stopped by Grid Engine when "
                                 f"its requested run time {self.job_runtime} was up.")
            else:
                LAST_END[key] = (f"Your last server (job {self.job_id}) ended outside JupyterHub "
                                 "(deleted with qdel, or it exited).")
            self.log.warning("%s: %s", self._log_name, LAST_END[key])

        # --- start -----------------------------------------------------------------------
        def _say(self, message, progress):
            self.log.info("%s: %s", self._log_name, message)
            self._messages.append({"message": message, "progress": progress})

        async def progress(self):
            """What start() said so far, then each new message as it comes (until the spawn ends)."""
            shown = 0
            while True:
                for event in self._messages[shown:]:
                    yield event
                shown = len(self._messages)
                await asyncio.sleep(0.1)

        def job_script(self, request, job_name, env_file=None, verify=None):
            """The job script of ``request``; ``verify`` (p or v) adds ``-w`` (qsub only checks it)."""
            spec = self.sge_settings["spawner"]
            options = job_options(request, spec) + ([f"-w {verify}"] if verify else [])
            path = spec["job_template"] or os.path.join(
                self.sge_settings["config_dir"], "templates", "sgespawner-job.sh.j2")
            with open(path, encoding="utf-8") as handle:
                template = handle.read()
            worker_env = spec["worker_env"] or self.sge_settings["env_prefix"]
            return render_job_script(
                template, username=self.user.name, job_name=job_name, output=spec["output"],
                options=options, env_file=env_file or self.env_file, request=request,
                path=f"{worker_env}/bin:/usr/local/bin:/usr/bin:/bin", prologue=spec["prologue"],
                cmd=shlex.join([*self.cmd, *self.get_args()]),
            )

        async def start(self):
            self._messages, self._wake, self._running_since = [], asyncio.Event(), 0
            self.ip, self.port, self.job_report = self.bind_ip, 0, {}
            if self.server:
                self.server.port = self.port
            request = await self.check_options(self.user_options)
            self.default_url = UI_URLS[request["ui"]]  # the interface the user chose
            LAST_END.pop((self.user.name, self.name), None)
            cluster = self.poller.cluster
            await self._check_account()
            uid = pwd.getpwnam(self.user.name).pw_uid
            self.env_file = os.path.join(self.sge_settings["secrets_dir"], uuid.uuid4().hex + ".env")
            # the job's PATH and SGE_* come from the template and the execution host, not the hub
            env = {k: v for k, v in self.get_env().items() if k != "PATH" and not k.startswith("SGE_")}
            try:
                write_secret_env(self.env_file, env, uid)
            except OSError as exc:  # e.g. no POSIX ACLs on that file system, or not writable
                self.log.error("%s: token file %s: %s", self._log_name, self.env_file, exc)
                raise spawn_error(f"The hub cannot hand the job its token ({exc.strerror}): "
                                  "see spawner:secrets_dir", "token_file") from None
            summary = ", ".join(f"{k}={v}" for k, v in request.items() if v not in ("", 0))
            self._say(f"Submitting the job ({summary})", 10)
            # a name of its own: a submit that times out can still be found (and deleted)
            job_name = f"{self.spec['job_name']}-{uuid.uuid4().hex[:10]}"
            submitted = time.monotonic()
            rc, out, err = await cluster.qsub(self.user.name, self.job_script(request, job_name))
            if rc != 0 or not re.match(r"[0-9]+", out):
                remove_file(self.env_file)
                # a qsub that failed half-way (e.g. ended by sudo's command_timeout) may still have
                # queued the job: the poller deletes a job of this name if one shows up
                self.poller.find_and_delete(self.user.name, job_name)
                lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Waiting for")]
                message = " ".join(lines) or f"qsub exit status {rc}"
                if rc == 124 or time.monotonic() - submitted >= self.sge_settings["sge"]["command_timeout"]:
                    if re.match(r"[0-9]+", out):  # it submitted, then waited for the job to end
                        raise spawn_error("qsub did not return after submitting the job: is there "
                                          "`-sync y` in your ~/.sge_request? Remove it and try again",
                                          "qsub", 503)
                    raise spawn_error(f"Grid Engine did not answer in time ({message}); if the job was "
                                      "queued anyway the hub deletes it. Try again later", "qsub", 503)
                if "sudo:" in message or "is not allowed to execute" in message:
                    self.log.error("%s: sudo refused the submit: %s", self._log_name, message)
                    raise spawn_error(f"The hub may not start jobs as {self.user.name} (a privileged account, or "
                                      "not in the group of users who may get servers)", "account", 403)
                if self.spec["immediate"] and "could not be scheduled" in message:
                    why = await self._why_not(request)  # what Grid Engine says about it
                    message += f" ({why})" if why else ""
                raise spawn_error(f"Grid Engine refused the job: {message}", "qsub", 503)
            self.job_id = re.match(r"[0-9]+", out).group()
            self.job_runtime = request["runtime"]
            self._say(f"Job {self.job_id} submitted", 20)
            await self._wait_until_up()
            remove_file(self.env_file)  # the server has read it: the token lives on only in its process
            self.job_started = self._running_since  # h_rt counts from here
            self._say(f"Jupyter is up on {self.ip}; Grid Engine stops it after {self.job_runtime}", 90)
            return self.ip, self.port

        async def _wait_until_up(self):
            """Follow the job through the shared poller until its server listens; the job's own
            failure (refused, error state, gone) ends the spawn at that poll with Grid Engine's reason."""
            poller, job_id, said = self.poller, self.job_id, None
            poller.starting.add(job_id)
            try:
                await poller.next_update(kick=True)
                while True:
                    job = poller.status(job_id, self.user.name)
                    if job is UNKNOWN:
                        message, progress = "Grid Engine does not answer (qstat failed); retrying", 30
                    elif job is None:
                        raise spawn_error(self._ended_message(), "job_ended")
                    elif job.failed:
                        reason = poller.reasons.get(job_id) or f"see qstat -j {job_id}"
                        raise spawn_error(f"Job {job_id} is in error state ({job.state}): {reason}", "job_error")
                    elif not job.running:
                        reason = poller.reasons.get(job_id, "")
                        message = f"Job {job_id} is queued ({job.state})" + (f": {reason}" if reason else "")
                        progress = 30
                    else:
                        self.ip = job.host
                        self._running_since = self._running_since or time.time()
                        if self.port and await _listening(self.ip, self.port):
                            return
                        message, progress = f"Job {job_id} is running on {job.host}; starting Jupyter", 50
                    if message != said:
                        self._say(message, progress)
                        said = message
                    await self._next_event(0.1 if self.port else None)
            finally:
                poller.starting.discard(job_id)

        async def _next_event(self, timeout):
            """Wait for the next poll, a report from the job, or `timeout` seconds."""
            waits = [asyncio.ensure_future(self.poller.next_update()), asyncio.ensure_future(self._wake.wait())]
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for wait in waits:
                wait.cancel()
            self._wake.clear()

        def _ended_message(self):
            message = f"Job {self.job_id} ended before Jupyter started"
            report = self.job_report
            if report:
                return f"{message} (exit status {report['exit_status']}). Its output ends with:\n{report['output']}"
            return f"{message}; its output is in {self.spec['output']} on the execution host"

        def job_reported(self, data):
            """What the job POSTs to /hub/api/batchspawner: its port, or why it failed."""
            if not isinstance(data, dict) or not data or set(data) - {"port", "exit_status", "output"}:
                raise ValueError("expected {port} or {exit_status, output}")
            if "port" in data:
                if self.pending != "spawn" or self.port:
                    raise ValueError("the port is only accepted once, while the server starts")
                port = data["port"]
                if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                    raise ValueError("port: expected an integer 1-65535")
                self.port = port
            if "exit_status" in data:
                status, output = data["exit_status"], data.get("output", "")
                if isinstance(status, bool) or not isinstance(status, int) or not isinstance(output, str):
                    raise ValueError("exit_status: expected an integer; output: expected text")
                self.job_report = {"exit_status": status, "output": output[-4000:]}
                self.log.warning("%s: job %s reported exit status %s", self._log_name, self.job_id,
                                 self.job_report["exit_status"])
                self.poller.kick()  # it is ending: look at once
            if self._wake:
                self._wake.set()

        # --- stop ------------------------------------------------------------------------
        async def stop(self, now=False):
            if not self.job_id:
                return
            rc, out, err = await self.poller.cluster.qdel(self.user.name, self.job_id)
            if rc != 0 and "does not exist" not in err:
                # qdel failed or did not answer: the poller keeps deleting the job until it is gone
                self.log.error("%s: qdel %s failed (rc %s): %s; the hub keeps deleting it",
                               self._log_name, self.job_id, rc, err)
                self.poller.delete_later(self.job_id, self.user.name)
            LAST_END.pop((self.user.name, self.name), None)
            if now:
                return
            self.poller.busy += 1
            try:
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline:
                    await self.poller.next_update(kick=True)
                    if self.poller.status(self.job_id, self.user.name) is None:
                        return
                self.log.warning("%s: job %s is still in the queue after qdel", self._log_name, self.job_id)
            finally:
                self.poller.busy -= 1

    async def _apply_user_options(spawner, user_options):
        """Spawner.apply_user_options: every spawn (form or REST API) is validated before start."""
        await spawner.check_options(user_options)

    async def render_options_form(spawner):
        """Spawner.options_form: the fields with what the cluster has free now, rendered from
        <config_dir>/templates/sgespawner-form.html."""
        settings = spawner.sge_settings
        spec = settings["spawner"]
        loader = jinja2.FileSystemLoader(os.path.join(settings["config_dir"], "templates"))
        env = jinja2.Environment(loader=loader, autoescape=True)
        previous = spawner.orm_spawner.user_options if spawner.orm_spawner else None
        load = None
        if spec["show_load"] and (spec["fields"]["queue"]["enabled"] or spec["fields"]["pe"]["enabled"]):
            pes = spec["fields"]["pe"].get("choices") or {} if spec["fields"]["pe"]["enabled"] else {}
            load = await spawner.poller.cluster_load(pes)
        return env.get_template("sgespawner-form.html").render(
            fields=form_fields(spec, previous, load), spawner=spawner, immediate=spec["immediate"])

    class JobReportHandler(APIHandler):
        """POST /hub/api/batchspawner, where the job script reports its server's port ({"port": N},
        as batchspawner-singleuser does) and why the server failed ({"exit_status": N, "output": ...}).

        Replaces batchspawner's handler, which sets ANY attribute the token holder names on the
        spawner (for instance the submit command, which the hub would then run)."""

        @web.authenticated
        def post(self):
            token = self.get_auth_token()
            spawners = getattr(self.current_user, "spawners", {})
            spawner = next((s for s in spawners.values() if s.api_token == token), None)
            if not isinstance(spawner, SGESpawner):
                raise web.HTTPError(404, "no server of this token")
            try:
                spawner.job_reported(self.get_json_body())
            except ValueError as exc:
                raise web.HTTPError(400, str(exc)) from None
            self.set_status(201)
            self.finish(json.dumps({"message": "noted"}))

    def _install_api_handler():
        import batchspawner.api  # noqa: F401 - registers its handler, replaced here

        default_handlers[:] = [h for h in default_handlers if h[0] != r"/api/batchspawner"]
        default_handlers.append((r"/api/batchspawner", JobReportHandler))


def configure(c, settings):
    """Everything spawner-related on the JupyterHub config ``c``, from settings.json."""
    if GridengineSpawner is None:
        raise RuntimeError("sgespawner.configure needs jupyterhub and batchspawner")
    spec = settings["spawner"]
    validate({}, spec)  # the pillar defaults must pass their own checks: fail now, not at a spawn
    unknown = sorted(set(spec["fields"]["ui"].get("choices") or {}) - set(UI_URLS))
    if unknown:
        raise ValueError(f"spawner:fields:ui:choices: {', '.join(unknown)} unknown; "
                         f"allowed: {', '.join(UI_URLS)}")
    _install_api_handler()
    c.JupyterHub.spawner_class = SGESpawner
    c.SGESpawner.sge_settings = settings
    c.SGESpawner.start_timeout = spec["start_timeout"]
    c.SGESpawner.http_timeout = spec["http_timeout"]
    c.SGESpawner.poll_interval = spec["poll_interval"]
    c.SGESpawner.startup_poll_interval = spec["startup_poll_interval"]
    c.JupyterHub.template_paths.insert(0, os.path.join(settings["config_dir"], "templates"))
    c.JupyterHub.template_vars.update({"sge_last_end": last_end_message, "sge_time_left": time_left,
                                       "sge_time_left_warning": spec["time_left_warning"]})

    culler = settings["idle_culler"]
    if culler["enabled"]:
        import sys

        c.JupyterHub.services.append({
            "name": "idle-culler",
            "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={culler['timeout']}",
                        f"--cull-every={culler['cull_every']}", f"--max-age={culler['max_age']}"],
        })
        c.JupyterHub.load_roles.append({
            "name": "idle-culler",
            "description": "stop idle servers (jupyterhub-idle-culler)",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["idle-culler"],
        })
