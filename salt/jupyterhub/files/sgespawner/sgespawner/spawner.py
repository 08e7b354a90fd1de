"""The JupyterHub spawner: ``SGESpawner``, a batchspawner ``GridengineSpawner`` whose servers are
Grid Engine jobs. Registered as the ``jupyterhub.spawners`` entry point ``sge``::

    c.JupyterHub.spawner_class = "sge"

batchspawner keeps the job's state, polling and stop; this class adds the form of pillar
``spawner:fields`` (``sgespawner.options``), the token in a file instead of ``qsub -v``
(``sgespawner.tokenfile``), the shared ``qstat`` poller (``sgespawner.gridengine``) and the
report handler the job posts its port to (``sgespawner.api``).
"""

import asyncio
import html
import os
import pwd
import re
import shlex
import time
import uuid

import jinja2
from batchspawner import GridengineSpawner, JobStatus
from jupyterhub import orm
from jupyterhub.spawner import SpawnException
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default, validate

from . import api, options
from .gridengine import UNKNOWN, Cluster, JobPoller, submitted_job
from .jobs import STARTED, classify
from .options import (
    UI_URLS,
    Refused,
    check_fields,
    form_fields,
    form_to_options,
    job_options,
    render_job_script,
    seconds,
)
from .options import validate as validate_request
from .tokenfile import remove_file, write_secret_env

# GridengineSpawner options this class does not use (see SGESpawner's docstring); also req_*, state_*
UNUSED_OPTIONS = ("batch_script", "batch_submit_cmd", "batch_query_cmd", "batch_cancel_cmd", "exec_prefix")

_shared = {}  # one JobPoller (and its Cluster) per hub process
LAST_END = {}  # (user, server name) -> why the last job ended, shown on the home page


async def _listening(host, port):
    """Does the server accept connections yet? (then the hub's first HTTP check succeeds)"""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def knock_interval(waited):
    """Seconds between looks at a starting server's port, ``waited`` seconds after the first:
    0.1 s while a server on a quiet node would come up (a few seconds), then longer, up to 1 s
    (at 20 s). 50 servers starting at once on a busy node take a minute or more: looking every
    0.1 s would cost the hub ~500 connection attempts a second, CPU those servers need."""
    return min(1.0, max(0.1, waited / 20))


def last_end_message(user):
    """template_vars callable: why the user's last server ended (e.g. its run time was up)."""
    if user is None:
        return ""
    return LAST_END.get((user.name, ""), "")


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
    the shared poller, and Grid Engine's own reasons in progress messages and errors.

    Of GridengineSpawner's own options, the ones that shape the job or its commands
    (``batch_script``, ``batch_*_cmd``, ``req_*``, ``exec_prefix``, ``state_*``) are not used:
    the job script comes from ``job_template`` and the validated form (``fields``), qsub and qdel
    run through the fixed sudo rule of the role (never a command line built from a template),
    and job states come from the shared ``qstat -xml`` poller. Setting one of them is refused
    (``ValueError`` naming it) rather than silently ignored.
    """

    # --- what a site sets (settings.json -> jupyterhub_config.py) ---------------------------
    fields = Dict(help="the form fields: pillar spawner:fields (see defaults.yaml)").tag(config=True)
    immediate = Bool(True, help="submit with `qsub -now yes`").tag(config=True)
    extra_options = List(Unicode(), help="qsub options added to every job").tag(config=True)
    job_name = Unicode("jupyterhub", help="job name prefix (qsub -N)").tag(config=True)
    job_output = Unicode("$HOME/.jupyterhub.sge.log", help="the job's output file (qsub -o)").tag(config=True)
    job_prologue = Unicode("", help="shell lines run in the job before the server").tag(config=True)
    job_template = Unicode(help="path of the job script template (Jinja)").tag(config=True)
    form_template = Unicode(help="path of the form template (Jinja, autoescaped)").tag(config=True)
    worker_env = Unicode(help="prefix of the env that runs the server on the nodes").tag(config=True)
    secrets_dir = Unicode(help="hub-owned directory of the token files (mode 0711)").tag(config=True)
    sge_root = Unicode("/var/lib/gridengine").tag(config=True)
    sge_cell = Unicode("default").tag(config=True)
    qsub = Unicode("/usr/lib/gridengine/qsub", help="run as the user through sudo").tag(config=True)
    qdel = Unicode("/usr/lib/gridengine/qdel", help="run as the user through sudo").tag(config=True)
    qstat = Unicode("/usr/lib/gridengine/qstat").tag(config=True)
    qconf = Unicode("/usr/lib/gridengine/qconf").tag(config=True)
    sge_command_timeout = Integer(30, help="sudoers command_timeout of qsub/qdel (s)").tag(config=True)
    allowed_group = Unicode(help="Unix group of the users who may get servers").tag(config=True)
    min_uid = Integer(1000, help="lowest uid of an ordinary user").tag(config=True)
    privileged_groups = List(Unicode(), help="members of these never get servers").tag(config=True)
    bind_ip = Unicode("0.0.0.0", help="address the server listens on, on the execution host").tag(config=True)
    verify = Bool(True, help="ask Grid Engine (qsub -w p|v) before submitting").tag(config=True)
    show_load = Bool(True, help="show the queues' and PEs' free slots on the form").tag(config=True)
    time_left_warning = Integer(900, help="seconds before h_rt when the home page warns").tag(config=True)

    # --- per server ----------------------------------------------------------------------
    env_file = Unicode(help="file that carries the session's environment (API token) to the job")
    job_report = Dict(help="what a failing job posted about itself: exit_status, output")
    job_runtime = Unicode(help="requested run time (h_rt) of the current job")
    job_started = Float(0, help="time the server came up (epoch seconds)")
    job_token_id = Integer(0, help="database id of the server's API token: its reports after a hub restart")
    _messages = ()  # progress events of the current start
    _watched = None  # job id registered in poller.watch
    _wake = None  # set when the job reports (its port, or its failure) during start
    _running_since = 0  # when the poller first saw the job running

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        unused = sorted(
            name for section in ("BatchSpawnerBase", "GridengineSpawner", "SGESpawner")
            if section in self.config for name in self.config[section]
            if name in UNUSED_OPTIONS or name.startswith(("req_", "state_"))
        )
        if unused:
            raise ValueError(f"SGESpawner does not use {', '.join(unused)} (see its docstring): "
                             "set fields, job_template and extra_options instead")

    @validate("fields")
    def _fields_valid(self, proposal):
        check_fields(proposal.value)  # the defaults must pass their own checks
        return proposal.value

    @property
    def spec(self):
        """The request rules of options.validate/job_options."""
        return {"fields": self.fields, "immediate": self.immediate, "extra_options": self.extra_options}

    @property
    def sge(self):
        return {"root": self.sge_root, "cell": self.sge_cell, "qsub": self.qsub, "qdel": self.qdel,
                "qstat": self.qstat, "qconf": self.qconf, "command_timeout": self.sge_command_timeout}

    @property
    def poller(self):
        if "poller" not in _shared:
            _shared["poller"] = JobPoller(Cluster(self.sge), self.poll_interval, self.startup_poll_interval)
        return _shared["poller"]

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
        if self.verify:
            await self.verify_request(request)
        return options

    async def verify_request(self, request):
        """Ask Grid Engine before submitting whether the request can start now (``-w p``,
        with ``immediate``) or can ever run (``-w v``); its reason re-renders the form. Nothing
        is submitted. A verification that itself fails (timeout) is logged and skipped."""
        await self._check_account()
        reasons = await self._why_not(request)
        if reasons:
            mode = "now" if self.immediate else "on this cluster"
            message = f"Grid Engine cannot start this request {mode}: {reasons}"
            self.log.warning("%s: %s", self._log_name, message)
            raise spawn_error(message, "options", 400)

    async def _why_not(self, request):
        """Grid Engine's reasons why ``request`` cannot start (``qsub -w p|v``), or ''."""
        mode = "p" if self.immediate else "v"
        script = self.job_script(request, self.job_name, env_file="/dev/null", verify=mode)
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
        access = {"group": self.allowed_group, "min_uid": self.min_uid, "privileged_groups": self.privileged_groups}
        refusal = options.account_refusal(self.user.name, access, await self.poller.cluster.sge_privileged())
        if refusal:
            self.log.warning("%s: not submitting: %s", self._log_name, refusal)
            raise spawn_error(f"No server for this account: {refusal}", "account", 403)

    @default("apply_user_options")
    def _apply_user_options_default(self):
        return _apply_user_options

    async def check_options(self, options):
        """The validated request, or HTTP 400 naming every refused field (no job is submitted)."""
        live = await self.poller.cluster.live_lists(self.fields)
        try:
            return validate_request(options, self.spec, live)
        except Refused as refused:  # one problem per line (spawn.html shows the lines)
            raise spawn_error(str(refused), "options", 400) from None

    # --- state -----------------------------------------------------------------------
    def load_state(self, state):
        super().load_state(state)
        self.env_file = state.get("env_file", "")
        self.job_runtime = state.get("job_runtime", "")
        self.job_started = state.get("job_started", 0)
        self.job_token_id = state.get("job_token_id", 0)

    def get_state(self):
        state = super().get_state()
        state.update(env_file=self.env_file, job_runtime=self.job_runtime, job_started=self.job_started,
                     job_token_id=self.job_token_id)
        return state

    def clear_state(self):
        remove_file(self.env_file)
        super().clear_state()
        self.env_file = self.job_runtime = ""
        self.job_started = self.job_token_id = 0
        self.job_report = {}

    # --- job status from the shared poller (used by batchspawner's poll()) ------------
    async def query_job_status(self):
        if not self.job_id:
            return JobStatus.NOTFOUND
        if "exit_status" in self.job_report:
            job = None  # no need to ask Grid Engine
        else:
            await self.poller.ready()
            job = self.poller.status(self.job_id, self.user.name)
        if job is UNKNOWN:
            return JobStatus.UNKNOWN
        if job is None:  # gone, or the job said it ends
            self._remember_end()
            return JobStatus.NOTFOUND
        self.job_status = f"{job.state} {job.host}".strip()
        # a job in error state still sits in the queue: stop() deletes it
        return JobStatus.RUNNING if job.started else JobStatus.PENDING

    def state_ispending(self):
        return bool(self.job_status) and not self.state_isrunning()

    def state_isrunning(self):
        state, _, host = self.job_status.partition(" ")
        return classify(state) in STARTED

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
        if self.job_runtime and time.time() - self.job_started >= seconds(self.job_runtime) - 5:
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
        """The job script of ``request``; ``verify`` (p or v): a check only (``job_options``)."""
        qsub_options = job_options(request, self.spec, verify)
        with open(self.job_template, encoding="utf-8") as handle:
            template = handle.read()
        return render_job_script(
            template, username=self.user.name, job_name=job_name, output=self.job_output,
            options=qsub_options, env_file=env_file or self.env_file, request=request,
            path=f"{self.worker_env}/bin:/usr/local/bin:/usr/bin:/bin", prologue=self.job_prologue,
            cmd=shlex.join([*self.cmd, *self.get_args()]),
        )

    async def start(self):
        self._messages, self._wake, self._running_since = [], asyncio.Event(), 0
        self.ip, self.port, self.job_report = self.bind_ip, 0, {}
        token = orm.APIToken.find(self.db, self.api_token) if self.api_token else None
        self.job_token_id = token.id if token else 0  # the hub keeps only the token's hash
        if self.server:
            self.server.port = self.port
        request = await self.check_options(self.user_options)
        self.default_url = UI_URLS[request["ui"]]  # the interface the user chose
        LAST_END.pop((self.user.name, self.name), None)
        cluster = self.poller.cluster
        await self._check_account()
        uid = pwd.getpwnam(self.user.name).pw_uid
        self.env_file = os.path.join(self.secrets_dir, uuid.uuid4().hex + ".env")
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
        job_name = f"{self.job_name}-{uuid.uuid4().hex[:10]}"
        submitted = time.monotonic()
        rc, out, err = await cluster.qsub(self.user.name, self.job_script(request, job_name))
        terse = re.match(r"[0-9]+", out)  # -terse: the job's id, and only that
        if rc != 0 or not terse:
            remove_file(self.env_file)
            # a qsub that failed half-way (e.g. ended by sudo's command_timeout) may still have
            # queued the job: the poller deletes a job of this name if one shows up
            self.poller.find_and_delete(self.user.name, job_name)
            lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Waiting for")]
            message = " ".join(lines) or f"qsub exit status {rc}"
            if rc == 124 or time.monotonic() - submitted >= self.sge_command_timeout:
                if submitted_job(out, err):  # it submitted, then waited for the job to end
                    raise spawn_error("qsub did not return after submitting the job: is there "
                                      "`-sync y` in your ~/.sge_request? Remove it and try again",
                                      "qsub", 503)
                raise spawn_error(f"Grid Engine did not answer in time ({message}); if the job was "
                                  "queued anyway the hub deletes it. Try again later", "qsub", 503)
            if "sudo:" in message or "is not allowed to execute" in message:
                self.log.error("%s: sudo refused the submit: %s", self._log_name, message)
                raise spawn_error(f"The hub may not start jobs as {self.user.name} (a privileged account, or "
                                  "not in the group of users who may get servers)", "account", 403)
            if self.immediate and "could not be scheduled" in message:
                why = await self._why_not(request)  # what Grid Engine says about it
                message += f" ({why})" if why else ""
            raise spawn_error(f"Grid Engine refused the job: {message}", "qsub", 503)
        self.job_id = terse.group()
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
        poller, job_id, said, knocking_since = self.poller, self.job_id, None, None
        poller.starting.add(job_id)
        try:
            await poller.next_update(kick=True)
            while True:
                job = poller.status(job_id, self.user.name)
                if "exit_status" in self.job_report:
                    raise spawn_error(self._ended_message(), "job_ended")  # the job said so itself
                if job is UNKNOWN:
                    message, progress = "Grid Engine does not answer (qstat failed); retrying", 30
                elif job is None:
                    raise spawn_error(self._ended_message(), "job_ended")
                elif job.failed:
                    reason = poller.reasons.get(job_id) or f"see qstat -j {job_id}"
                    raise spawn_error(f"Job {job_id} is in error state ({job.state}): {reason}", "job_error")
                elif not job.started:
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
                if self.port:  # knock on its port until it listens
                    knocking_since = knocking_since or time.monotonic()
                    await self._next_event(knock_interval(time.monotonic() - knocking_since))
                else:
                    await self._next_event(None)
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
        return f"{message}; its output is in {self.job_output} on the execution host"

    def job_reported(self, data):
        """What the job POSTs to /hub/api/batchspawner: its port, or why it failed."""
        if not isinstance(data, dict) or not data or set(data) - {"port", "exit_status", "output"}:
            raise ValueError("expected {port} or {exit_status, output}")
        if "port" in data:
            port = data["port"]
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise ValueError("port: expected an integer 1-65535")
            # once, while the server starts (the same port again: a report whose answer was lost)
            if self.pending != "spawn" or self.port not in (0, port):
                raise ValueError("the port is only accepted once, while the server starts")
            self.port = port
            job = self.poller.status(self.job_id, self.user.name)
            if job is None or job is UNKNOWN or not job.started:
                self.poller.kick()  # it runs (it reported): a fresh look, not the next poll's
        if "exit_status" in data:
            status, output = data["exit_status"], data.get("output", "")
            if isinstance(status, bool) or not isinstance(status, int) or not isinstance(output, str):
                raise ValueError("exit_status: expected an integer; output: expected text")
            self.job_report = {"exit_status": status, "output": output[-4000:]}
            self.log.warning("%s: job %s reported exit status %s", self._log_name, self.job_id,
                             self.job_report["exit_status"])
            if self.pending is None and self._poll_callback:
                # a running server ends (qdel, h_rt: the job got SIGUSR2; or it exited): the hub
                # notices now, not at the next qstat, and deletes what may be left of the job
                self.poller.delete_later(self.job_id, self.user.name)
                asyncio.ensure_future(self.poll_and_notify())
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
    form_template."""
    loader = jinja2.FileSystemLoader(os.path.dirname(spawner.form_template))
    env = jinja2.Environment(loader=loader, autoescape=True)
    previous = spawner.orm_spawner.user_options if spawner.orm_spawner else None
    fields, load = spawner.fields, None
    if spawner.show_load and (fields["queue"]["enabled"] or fields["pe"]["enabled"]):
        pes = fields["pe"].get("choices") or {} if fields["pe"]["enabled"] else {}
        load = await spawner.poller.cluster_load(pes)
    return env.get_template(os.path.basename(spawner.form_template)).render(
        fields=form_fields(spawner.spec, previous, load), spawner=spawner, immediate=spawner.immediate)


api.install(SGESpawner)
