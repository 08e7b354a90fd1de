"""The spawner form: the fields of pillar ``spawner:fields``, their checks, who may get a server,
and what a validated request becomes (qsub options, the job script).

Plain Python (no JupyterHub needed):

- ``validate``: the form fields (project, queue, pe, slots, ram, gpus, runtime, email) checked
  against the ``fields`` table; a refusal names the field and the allowed values.
- ``job_options`` / ``render_job_script``: what each field becomes (``#$`` lines) is pillar
  data too; only validated values reach the job script, never raw user input.
- ``account_refusal``: the rules of the role's sudo allow-list, checked before every submit.
"""

import grp
import os
import pwd
import re
import shlex

import jinja2

FIELDS = ("project", "queue", "pe", "slots", "ram", "gpus", "runtime", "email", "ui")
# choice fields and the `qconf` option that lists what the cluster defines
QCONF_LISTS = {"project": "-sprjl", "queue": "-sql", "pe": "-spl"}
CHOICE_FIELDS = (*QCONF_LISTS, "ui")
# the user interfaces a server can open (field `ui`): name -> its URL path (default_url)
UI_URLS = {"lab": "/lab", "notebook": "/tree"}
RUNTIME_RE = re.compile(r"([0-9]{1,3}):([0-5][0-9]):([0-5][0-9])")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")

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


def seconds(runtime):
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
    total = seconds(value)
    if total == 0:
        raise Refused([f"{name}: 00:00:00 is too short; allowed up to {field['max']}"])
    if total > seconds(field["max"]):
        raise Refused([f"{name}: {value} is longer than the maximum {field['max']}"])
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


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


def check_fields(fields):
    """The pillar ``fields`` table, checked when the hub starts: its defaults must pass their own
    checks and the ``ui`` choices must be interfaces the spawner knows. Raises ValueError."""
    validate({}, {"fields": fields})
    unknown = sorted(set(fields["ui"].get("choices") or {}) - set(UI_URLS))
    if unknown:
        raise ValueError(f"spawner:fields:ui:choices: {', '.join(unknown)} unknown; "
                         f"allowed: {', '.join(UI_URLS)}")


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


def job_options(request, spec, verify=None):
    """The qsub options of a validated request, one per ``#$`` line.

    Each enabled-or-defaulted field with a value becomes its pillar ``directive`` (a format string
    over ``value``, ``amount``, ``complex`` and the other fields); 0 and '' add nothing.

    ``verify`` (p or v) makes them the options of a check only (``-w``), made with ``-now no``:
    qmaster answers ``-w p|v`` at once, but a ``-now yes`` qsub first registers as an event client
    and waits for the scheduler's next beat (measured: ~1.1 s on every second or third call,
    70-180 ms without it), and the answer (queues found, or the reason) is the same either way.
    """
    options = ["-now yes"] if spec["immediate"] and not verify else []
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
    check = ["-now no", f"-w {verify}"] if verify else []
    return options + list(spec.get("extra_options") or []) + check


def render_job_script(template_text, **context):
    """Render the job script template (Jinja; ``| q`` shell-quotes a value)."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["q"] = lambda value: shlex.quote(str(value))
    return env.from_string(template_text).render(**context)

