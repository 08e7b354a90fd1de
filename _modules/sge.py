"""
Grid Engine (Son of Grid Engine as packaged by Debian) administration and queries.

Every function runs Grid Engine's own clients (``qconf``, ``qstat``, ``qsub``) and parses
their real output. Two traps of ``qconf`` are handled here once for everyone:

- it prints almost everything, success messages included, to stderr;
- it exits 0 for ``... already exists`` **and** for ``denied: "user" must be manager ...``,
  and 1 for an empty list (``no submit host defined``).

So results are decided from the message, never from the exit code alone: an empty list is
``[]``, "already exists" is reported as such, and "denied" always raises
:py:exc:`CommandExecutionError <salt.exceptions.CommandExecutionError>` with SGE's message.

:depends: the Grid Engine client (Debian package ``gridengine-client``)
:configuration: the cell and the binaries are looked up, in this order, in the minion config
    (``sge.root``, ``sge.cell``, ``sge.qconf``, ...), then in pillar under ``jupyterhub:sge``
    (``root``, ``cell``, ``qconf``, ``qstat``, ``qsub``, ``qdel``, ``utilbin``), then fall back
    to Debian's defaults:

    .. code-block:: yaml

        jupyterhub:
          sge:
            root: /var/lib/gridengine
            cell: default
            qconf: /usr/lib/gridengine/qconf
            qstat: /usr/lib/gridengine/qstat
            qsub: /usr/lib/gridengine/qsub
            qdel: /usr/lib/gridengine/qdel
            utilbin: /usr/lib/gridengine
"""

import logging
import os
import re
import shlex
import shutil
import tempfile
import xml.etree.ElementTree as ET

import salt.utils.data
from salt.exceptions import CommandExecutionError, SaltInvocationError

log = logging.getLogger(__name__)

__virtualname__ = "sge"

DEFAULTS = {
    "root": "/var/lib/gridengine",
    "cell": "default",
    "qconf": "/usr/lib/gridengine/qconf",
    "qstat": "/usr/lib/gridengine/qstat",
    "qsub": "/usr/lib/gridengine/qsub",
    "qdel": "/usr/lib/gridengine/qdel",
    "utilbin": "/usr/lib/gridengine",
}

# ``qconf -s*l`` on an empty list: rc 1 and one of these on stderr.
_EMPTY_LIST = re.compile(r"^no .* (defined|list defined)\s*$", re.IGNORECASE)
_DENIED_MANAGER = re.compile(r'denied: "[^"]*" must be manager for this operation')
_UNRESOLVABLE = re.compile(r"can't resolve hostname \"[^\"]*\"|error resolving host")
# the qmaster is down or unreachable: never a verdict on a request
_UNREACHABLE = re.compile(r"commlib error|unable to (send message to|contact) qmaster")
_ALREADY_EXISTS = re.compile(r"already exists\s*$", re.MULTILINE)
_DOES_NOT_EXIST = re.compile(
    r"does not exist|is not an execution host|is not a parallel environment|"
    r"is not known as a project|No cluster queue or queue instance matches"
)

# Attributes every object file of a kind must contain (``qconf -A*`` rejects files without
# them: ``error: required attribute "qsort_args" is missing``), with SGE's own defaults.
# Queue defaults are SGE's ``qconf -aq`` template, except ``pe_list`` (the template names PEs
# ``make`` and ``mpi`` that do not exist in a fresh Debian cell).
QUEUE_TEMPLATE = [
    ("qname", ""),
    ("hostlist", "NONE"),
    ("seq_no", "0"),
    ("load_thresholds", "np_load_avg=1.75"),
    ("suspend_thresholds", "NONE"),
    ("nsuspend", "1"),
    ("suspend_interval", "00:05:00"),
    ("priority", "0"),
    ("min_cpu_interval", "00:05:00"),
    ("processors", "UNDEFINED"),
    ("qtype", "BATCH INTERACTIVE"),
    ("ckpt_list", "NONE"),
    ("pe_list", "NONE"),
    ("rerun", "FALSE"),
    ("slots", "1"),
    ("tmpdir", "/tmp"),
    ("shell", "/bin/sh"),
    ("prolog", "NONE"),
    ("epilog", "NONE"),
    ("shell_start_mode", "posix_compliant"),
    ("starter_method", "NONE"),
    ("suspend_method", "NONE"),
    ("resume_method", "NONE"),
    ("terminate_method", "NONE"),
    ("notify", "00:00:60"),
    ("owner_list", "NONE"),
    ("user_lists", "NONE"),
    ("xuser_lists", "NONE"),
    ("subordinate_list", "NONE"),
    ("complex_values", "NONE"),
    ("projects", "NONE"),
    ("xprojects", "NONE"),
    ("calendar", "NONE"),
    ("initial_state", "default"),
] + [
    (f"{kind}_{res}", "INFINITY")
    for res in ("rt", "cpu", "fsize", "data", "stack", "core", "rss", "vmem")
    for kind in ("s", "h")
]

PE_TEMPLATE = [
    ("pe_name", ""),
    ("slots", "999"),
    ("user_lists", "NONE"),
    ("xuser_lists", "NONE"),
    ("start_proc_args", "NONE"),
    ("stop_proc_args", "NONE"),
    ("allocation_rule", "$pe_slots"),
    ("control_slaves", "FALSE"),
    ("job_is_first_task", "TRUE"),
    ("urgency_slots", "min"),
    ("accounting_summary", "FALSE"),
    ("qsort_args", "NONE"),
]

EXEC_HOST_TEMPLATE = [
    ("hostname", ""),
    ("load_scaling", "NONE"),
    ("complex_values", "NONE"),
    ("user_lists", "NONE"),
    ("xuser_lists", "NONE"),
    ("projects", "NONE"),
    ("xprojects", "NONE"),
    ("usage_scaling", "NONE"),
    ("report_variables", "NONE"),
]
# shown by ``qconf -se`` but computed by SGE, not accepted back
_EXEC_HOST_READONLY = ("load_values", "processors")

PROJECT_TEMPLATE = [
    ("name", ""),
    ("oticket", "0"),
    ("fshare", "0"),
    ("acl", "NONE"),
    ("xacl", "NONE"),
]

_COMPLEX_COLUMNS = (
    "name",
    "shortcut",
    "type",
    "relop",
    "requestable",
    "consumable",
    "default",
    "urgency",
)


def __virtual__():
    qconf = _config("qconf")
    if not os.access(qconf, os.X_OK):
        return (
            False,
            (
                f"sge: the Grid Engine client is not installed ({qconf} not found; "
                "install gridengine-client or set jupyterhub:sge:qconf)"
            ),
        )
    return __virtualname__


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _config(key):
    """
    Look up ``key`` in the minion config (``sge.<key>``), then in pillar
    (``jupyterhub:sge:<key>``), else return Debian's default.
    """
    opts = globals().get("__opts__") or {}
    value = opts.get(f"sge.{key}")
    if value in (None, ""):
        pillar = globals().get("__pillar__") or {}
        value = salt.utils.data.traverse_dict_and_list(pillar, f"jupyterhub:sge:{key}", None)
    if value in (None, ""):
        value = DEFAULTS[key]
    return value


def _env():
    return {"SGE_ROOT": _config("root"), "SGE_CELL": _config("cell")}


def _run(tool, args, runas=None):
    """
    Run a Grid Engine binary (``tool`` is a key of :py:data:`DEFAULTS` or an absolute path)
    with list arguments. Returns cmd.run_all's dict, never raises on a non-zero exit code.
    """
    binary = tool if os.path.isabs(tool) else _config(tool)
    cmd = [binary] + [str(a) for a in args]
    kwargs = {
        "python_shell": False,
        "env": _env(),
        "ignore_retcode": True,
        "output_loglevel": "debug",
        "cwd": "/",
    }
    if runas:
        kwargs["runas"] = runas
    ret = __salt__["cmd.run_all"](cmd, **kwargs)  # noqa: F821
    log.debug("sge: %s -> rc=%s", cmd, ret.get("retcode"))
    return ret


def _message(ret):
    """SGE's message: stderr and stdout (qconf prints to either), stripped."""
    parts = [ret.get("stderr") or "", ret.get("stdout") or ""]
    return "\n".join(p.strip() for p in parts if p and p.strip())


def _check(ret, what):
    """
    Raise CommandExecutionError unless ``ret`` is a success. "denied: ... must be manager"
    is a failure whatever the exit code (qconf -as exits 0 with it).
    """
    msg = _message(ret)
    if _DENIED_MANAGER.search(msg):
        raise CommandExecutionError(f"{what}: {msg}", info={"retcode": ret["retcode"]})
    if ret["retcode"] != 0 or msg.startswith("error:"):
        raise CommandExecutionError(
            f"{what} failed: {msg or 'exit code ' + str(ret['retcode'])}",
            info={"retcode": ret["retcode"]},
        )
    return msg


def _lines(text):
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _list(flag, what):
    """``qconf <flag>`` -> list of names; an empty list (rc 1, ``no ... defined``) is []."""
    ret = _run("qconf", [flag])
    msg = _message(ret)
    if ret["retcode"] == 1 and not (ret.get("stdout") or "").strip() and _EMPTY_LIST.match(msg):
        return []
    _check(ret, f"listing {what}")
    return _lines(ret["stdout"])


def _parse_attrs(text):
    """
    Parse SGE's ``name value`` object format (``qconf -sq``, ``-sp``, ``-se``, ``-sconf``,
    ``-ssconf``, ...) into an ordered dict of strings. Lines ending in a backslash continue
    on the next one; comment lines (``#global:``) are skipped. Whitespace inside a value is
    collapsed to one space, and a continuation after a comma is joined without a space, so a
    value reads exactly as it would be written back.
    """
    result = {}
    key = None
    continued = False
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line and not continued:
            continue
        if continued and key is not None:
            piece = line
        else:
            if line.startswith("#"):
                continue
            parts = line.split(None, 1)
            key = parts[0]
            piece = parts[1] if len(parts) > 1 else ""
            result[key] = ""
        continued = piece.endswith("\\")
        if continued:
            piece = piece[:-1].rstrip()
        piece = " ".join(piece.split())
        current = result[key]
        if current and piece:
            sep = "" if current.endswith(",") else " "
            result[key] = current + sep + piece
        else:
            result[key] = current + piece
    return result


def _format_attrs(attrs):
    return "".join(f"{key} {_value(val)}\n" for key, val in attrs.items())


def _value(val):
    """Pillar value -> SGE file value: lists are space separated, booleans TRUE/FALSE."""
    if isinstance(val, bool):
        return "TRUE" if val else "FALSE"
    if isinstance(val, (list, tuple)):
        return " ".join(str(v) for v in val) if val else "NONE"
    if val is None or val == "":
        return "NONE"
    return " ".join(str(val).split())


def format_value(value):
    """
    Write a value the way SGE's object files (and ``qconf -s*``) spell it: lists space
    separated (empty: ``NONE``), booleans ``TRUE``/``FALSE``, runs of whitespace collapsed.
    States compare pillar values with SGE's through this.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.format_value '[smp, mpi]'
    """
    return _value(value)


def _with_file(flag, content, what, filename="object", extra=()):
    """Write ``content`` to a private temp file and run ``qconf <flag> FILE [extra]``."""
    tmpdir = tempfile.mkdtemp(prefix="salt-sge-")
    try:
        path = os.path.join(tmpdir, filename)
        # a fresh private directory (mkdtemp): created without following links, modes set on the
        # descriptors, never by path (qconf may run as sgeadmin, so others may read)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(content)
            os.fchmod(fh.fileno(), 0o644)
        dir_fd = os.open(tmpdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchmod(dir_fd, 0o755)
        finally:
            os.close(dir_fd)
        ret = _run("qconf", [flag, path] + list(extra))
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return ret


def _show(flag, name, what):
    ret = _run("qconf", [flag, name])
    msg = _message(ret)
    if ret["retcode"] != 0 and _DOES_NOT_EXIST.search(msg) and not _DENIED_MANAGER.search(msg):
        return {}
    _check(ret, f"showing {what} {name}")
    return _parse_attrs(ret["stdout"])


def _add_or_modify(add_flag, mod_flag, template, key, name, attrs, current, what):
    """Shared body of add_queue/modify_queue, add_pe/modify_pe, ..."""
    obj = dict(template)
    if current:
        obj.update(current)
    obj.update({k: _value(v) for k, v in (attrs or {}).items() if not k.startswith("__")})
    obj[key] = name
    flag = mod_flag if current else add_flag
    ret = _with_file(flag, _format_attrs(obj), what)
    msg = _check(ret, f"{'modifying' if current else 'adding'} {what} {name}")
    if not current and _ALREADY_EXISTS.search(msg):
        raise CommandExecutionError(f"adding {what} {name}: {msg}")
    return msg


def _host_op(flag, host, what):
    """
    ``qconf -as|-ds|-ah|-dh|-de HOST``: returns ``True`` when SGE changed the list,
    ``False`` when the host already was / was not in it; raises on denied or unresolvable.
    """
    ret = _run("qconf", [flag, host])
    msg = _message(ret)
    if _DENIED_MANAGER.search(msg):
        raise CommandExecutionError(f"{what} {host}: {msg}")
    if _UNRESOLVABLE.search(msg):
        raise CommandExecutionError(f"{what} {host}: {msg}")
    if ret["retcode"] == 0 and _ALREADY_EXISTS.search(msg):
        return False
    if ret["retcode"] == 1 and re.search(r'^denied: .* "[^"]*" does not exist', msg, re.MULTILINE):
        return False
    _check(ret, f"{what} {host}")
    return True


# ---------------------------------------------------------------------------------------------
# hosts
# ---------------------------------------------------------------------------------------------
def resolve_host(host):
    """
    Resolve a host name the way Grid Engine does (``gethostbyname -aname``, which applies the
    cell's ``host_aliases``). Returns the name SGE will list the host under.

    Raises CommandExecutionError with SGE's message when the name does not resolve.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.resolve_host hub01
    """
    ret = _run(os.path.join(_config("utilbin"), "gethostbyname"), ["-aname", host])
    msg = _message(ret)
    if ret["retcode"] != 0:
        raise CommandExecutionError(f"host {host} does not resolve: {msg}")
    names = _lines(ret["stdout"])
    if not names:
        raise CommandExecutionError(f"host {host} does not resolve: no output")
    return names[0]


def list_submit_hosts():
    """
    List the cell's submit hosts (``qconf -ss``); an empty list is ``[]``.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.list_submit_hosts
    """
    return _list("-ss", "submit hosts")


def add_submit_host(host):
    """
    Add a submit host (``qconf -as``). Returns ``True`` if it was added, ``False`` if it
    already was a submit host. Raises CommandExecutionError if the caller is not a manager,
    the host does not resolve, or the qmaster cannot be reached.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.add_submit_host hub01
    """
    return _host_op("-as", host, "adding submit host")


def remove_submit_host(host):
    """
    Remove a submit host (``qconf -ds``). Returns ``True`` if it was removed, ``False`` if it
    was not a submit host. Raises CommandExecutionError if the caller is not a manager or the
    host does not resolve.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.remove_submit_host oldhub
    """
    return _host_op("-ds", host, "removing submit host")


def list_admin_hosts():
    """
    List the cell's administrative hosts (``qconf -sh``).

    CLI Example:

    .. code-block:: bash

        salt '*' sge.list_admin_hosts
    """
    return _list("-sh", "admin hosts")


def add_admin_host(host):
    """
    Add an administrative host (``qconf -ah``). Returns ``True`` if added, ``False`` if it
    already was one; raises like :py:func:`add_submit_host`.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.add_admin_host node01
    """
    return _host_op("-ah", host, "adding admin host")


def remove_admin_host(host):
    """
    Remove an administrative host (``qconf -dh``). Returns ``True`` if removed, ``False`` if
    it was not one.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.remove_admin_host node01
    """
    return _host_op("-dh", host, "removing admin host")


def list_managers():
    """
    List the cell's managers (``qconf -sm``); only they may change the configuration.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.list_managers
    """
    return _list("-sm", "managers")


def list_exec_hosts():
    """
    List the cell's execution hosts (``qconf -sel``).

    CLI Example:

    .. code-block:: bash

        salt '*' sge.list_exec_hosts
    """
    return _list("-sel", "execution hosts")


def show_exec_host(host):
    """
    Show one execution host (``qconf -se``) as a dict of SGE's strings; ``{}`` if the host is
    not an execution host.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.show_exec_host node01
    """
    return _show("-se", host, "execution host")


def add_exec_host(host, **attrs):
    """
    Add an execution host (``qconf -Ae``) with SGE's defaults, overridden by ``attrs``
    (e.g. ``complex_values="gpu=2"``). Returns SGE's message.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.add_exec_host node01 complex_values=gpu=2
    """
    return _add_or_modify("-Ae", "-Me", EXEC_HOST_TEMPLATE, "hostname", host, attrs, {}, "execution host")


def modify_exec_host(host, **attrs):
    """
    Change attributes of an execution host (``qconf -Me``), keeping the others.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.modify_exec_host node01 complex_values=gpu=2
    """
    current = show_exec_host(host)
    if not current:
        raise CommandExecutionError(f"{host} is not an execution host")
    for key in _EXEC_HOST_READONLY:
        current.pop(key, None)
    return _add_or_modify(
        "-Ae", "-Me", EXEC_HOST_TEMPLATE, "hostname", host, attrs, current, "execution host"
    )


def remove_exec_host(host):
    """
    Remove an execution host (``qconf -de``). Returns ``True`` if removed, ``False`` if it
    was not one.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.remove_exec_host node01
    """
    return _host_op("-de", host, "removing execution host")


# ---------------------------------------------------------------------------------------------
# queues, parallel environments, projects, host groups, complexes
# ---------------------------------------------------------------------------------------------
def list_queues():
    """
    List the cluster queues (``qconf -sql``).

    CLI Example:

    .. code-block:: bash

        salt '*' sge.list_queues
    """
    return _list("-sql", "cluster queues")


def show_queue(name):
    """
    Show a cluster queue (``qconf -sq``) as a dict of SGE's strings; ``{}`` if it does not
    exist.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.show_queue all.q
    """
    return _show("-sq", name, "queue")


def add_queue(name, **attrs):
    """
    Add a cluster queue (``qconf -Aq``) from SGE's queue template overridden by ``attrs``
    (e.g. ``hostlist=@allhosts pe_list=smp slots=4``).

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.add_queue all.q hostlist=@allhosts pe_list=smp slots=4
    """
    return _add_or_modify("-Aq", "-Mq", QUEUE_TEMPLATE, "qname", name, attrs, {}, "queue")


def modify_queue(name, **attrs):
    """
    Change attributes of a cluster queue (``qconf -Mq``), keeping the others.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.modify_queue all.q slots=8
    """
    current = show_queue(name)
    if not current:
        raise CommandExecutionError(f"queue {name} does not exist")
    return _add_or_modify("-Aq", "-Mq", QUEUE_TEMPLATE, "qname", name, attrs, current, "queue")


def list_pes():
    """
    List the parallel environments (``qconf -spl``).

    CLI Example:

    .. code-block:: bash

        salt '*' sge.list_pes
    """
    return _list("-spl", "parallel environments")


def show_pe(name):
    """
    Show a parallel environment (``qconf -sp``) as a dict; ``{}`` if it does not exist.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.show_pe smp
    """
    return _show("-sp", name, "parallel environment")


def add_pe(name, **attrs):
    """
    Add a parallel environment (``qconf -Ap``); attributes not given take SGE's usual
    defaults (``slots 999``, ``allocation_rule $pe_slots``, ...).

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.add_pe smp allocation_rule='$pe_slots'
    """
    return _add_or_modify("-Ap", "-Mp", PE_TEMPLATE, "pe_name", name, attrs, {}, "parallel environment")


def modify_pe(name, **attrs):
    """
    Change attributes of a parallel environment (``qconf -Mp``), keeping the others.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.modify_pe smp slots=64
    """
    current = show_pe(name)
    if not current:
        raise CommandExecutionError(f"parallel environment {name} does not exist")
    return _add_or_modify("-Ap", "-Mp", PE_TEMPLATE, "pe_name", name, attrs, current, "parallel environment")


def list_projects():
    """
    List the projects (``qconf -sprjl``).

    CLI Example:

    .. code-block:: bash

        salt '*' sge.list_projects
    """
    return _list("-sprjl", "projects")


def show_project(name):
    """
    Show a project (``qconf -sprj``) as a dict; ``{}`` if it does not exist.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.show_project physics
    """
    return _show("-sprj", name, "project")


def add_project(name, **attrs):
    """
    Add a project (``qconf -Aprj``).

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.add_project physics acl=physicists
    """
    return _add_or_modify("-Aprj", "-Mprj", PROJECT_TEMPLATE, "name", name, attrs, {}, "project")


def modify_project(name, **attrs):
    """
    Change attributes of a project (``qconf -Mprj``), keeping the others.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.modify_project physics acl=physicists
    """
    current = show_project(name)
    if not current:
        raise CommandExecutionError(f"project {name} does not exist")
    return _add_or_modify("-Aprj", "-Mprj", PROJECT_TEMPLATE, "name", name, attrs, current, "project")


def list_hostgroups():
    """
    List the host groups (``qconf -shgrpl``).

    CLI Example:

    .. code-block:: bash

        salt '*' sge.list_hostgroups
    """
    return _list("-shgrpl", "host groups")


def show_hostgroup(name):
    """
    Show a host group (``qconf -shgrp``) as ``{"group_name": ..., "hostlist": [...]}``
    (``NONE`` is ``[]``); ``{}`` if it does not exist.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.show_hostgroup @allhosts
    """
    attrs = _show("-shgrp", name, "host group")
    if attrs:
        hosts = attrs.get("hostlist", "NONE").split()
        attrs["hostlist"] = [] if hosts == ["NONE"] else hosts
    return attrs


def set_hostgroup(name, hosts):
    """
    Create a host group or replace its host list (``qconf -Ahgrp`` / ``-Mhgrp``).
    ``hosts`` is a list (or comma separated string) of hosts and ``@groups``.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.set_hostgroup @allhosts node01,node02
    """
    if isinstance(hosts, str):
        hosts = [h for h in re.split(r"[,\s]+", hosts) if h]
    if not name.startswith("@"):
        raise SaltInvocationError(f"host group names start with @: {name}")
    current = show_hostgroup(name)
    content = f"group_name {name}\nhostlist {_value(list(hosts))}\n"
    flag = "-Mhgrp" if current else "-Ahgrp"
    ret = _with_file(flag, content, "host group")
    msg = _check(ret, f"setting host group {name}")
    return msg


def list_complexes():
    """
    List the names of the complex attributes (``qconf -sc``).

    CLI Example:

    .. code-block:: bash

        salt '*' sge.list_complexes
    """
    return list(_complexes())


def show_complex(name):
    """
    Show one complex attribute from ``qconf -sc`` as a dict (``name``, ``shortcut``,
    ``type``, ``relop``, ``requestable``, ``consumable``, ``default``, ``urgency``);
    ``name`` may also be the shortcut. ``{}`` if there is no such complex.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.show_complex h_vmem
    """
    complexes = _complexes()
    if name in complexes:
        return complexes[name]
    for entry in complexes.values():
        if entry["shortcut"] == name:
            return entry
    return {}


def _complexes():
    ret = _run("qconf", ["-sc"])
    _check(ret, "listing complexes")
    return _parse_complexes(ret["stdout"])


def modify_complex(name, **attrs):
    """
    Change columns of one complex attribute (``qconf -Mc`` with the whole table, every other
    row as SGE listed it), e.g. make ``h_vmem`` a consumable. ``attrs``: ``shortcut``,
    ``type``, ``relop``, ``requestable``, ``consumable``, ``default``, ``urgency``. A complex
    that does not exist yet is added when every column is given.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.modify_complex h_vmem consumable=YES default=1G
        salt '*' sge.modify_complex gpu shortcut=gpu type=INT relop='<=' requestable=YES consumable=JOB default=0 urgency=0
    """
    attrs = {k: v for k, v in attrs.items() if not k.startswith("__")}
    unknown = sorted(set(attrs) - set(_COMPLEX_COLUMNS[1:]))
    if unknown:
        raise SaltInvocationError(
            f"complex {name}: unknown column(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(_COMPLEX_COLUMNS[1:])}"
        )
    complexes = _complexes()
    if name not in complexes:
        missing = [c for c in _COMPLEX_COLUMNS[1:] if c not in attrs]
        if missing:
            raise CommandExecutionError(
                f"complex {name} does not exist (qconf -sc); to add it give every column "
                f"(missing: {', '.join(missing)})"
            )
        complexes[name] = {"name": name}
    complexes[name].update({k: _value(v) for k, v in attrs.items()})
    table = "".join(" ".join(row[c] for c in _COMPLEX_COLUMNS) + "\n" for row in complexes.values())
    return _check(_with_file("-Mc", table, "complexes"), f"modifying complex {name}")


def _parse_complexes(text):
    """
    Parse ``qconf -sc`` output into ``{name: {column: value}}``.
    """
    result = {}
    for line in _lines(text):
        if line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < len(_COMPLEX_COLUMNS):
            continue
        entry = dict(zip(_COMPLEX_COLUMNS, fields))
        result[entry["name"]] = entry
    return result


# ---------------------------------------------------------------------------------------------
# cluster and scheduler configuration
# ---------------------------------------------------------------------------------------------
def show_config(name="global"):
    """
    Show a cluster configuration (``qconf -sconf``; ``global`` or a host's local one) as a
    dict of SGE's strings.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.show_config
        salt '*' sge.show_config node01
    """
    ret = _run("qconf", ["-sconf", name])
    _check(ret, f"showing configuration {name}")
    return _parse_attrs(ret["stdout"])


def modify_config(name="global", **attrs):
    """
    Change attributes of a cluster configuration (``qconf -Mconf``), keeping the others.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.modify_config reporting_params="accounting=true reporting=false flush_time=00:00:15 joblog=false sharelog=00:00:00 accounting_flush_time=00:00:00"
    """
    current = show_config(name)
    current.update({k: _value(v) for k, v in attrs.items() if not k.startswith("__")})
    # qconf -Mconf takes the configuration's name from the file name
    ret = _with_file("-Mconf", _format_attrs(current), "configuration", filename=name)
    return _check(ret, f"modifying configuration {name}")


def show_scheduler_config():
    """
    Show the scheduler configuration (``qconf -ssconf``) as a dict of SGE's strings.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.show_scheduler_config
    """
    ret = _run("qconf", ["-ssconf"])
    _check(ret, "showing scheduler configuration")
    return _parse_attrs(ret["stdout"])


def modify_scheduler_config(**attrs):
    """
    Change scheduler settings (``qconf -Msconf``), keeping the others.

    CLI Example:

    .. code-block:: bash

        salt qmaster sge.modify_scheduler_config schedule_interval=0:0:1 flush_submit_sec=1
    """
    current = show_scheduler_config()
    current.update({k: _value(v) for k, v in attrs.items() if not k.startswith("__")})
    ret = _with_file("-Msconf", _format_attrs(current), "scheduler configuration")
    return _check(ret, "modifying scheduler configuration")


# ---------------------------------------------------------------------------------------------
# jobs
# ---------------------------------------------------------------------------------------------
def _parse_jobs(text):
    """``qstat -xml`` -> job dicts, through the one job model shared with the spawner (the Salt
    utility module ``sgejobs``, ``_utils/sgejobs.py``)."""
    parse = (globals().get("__utils__") or {}).get("sgejobs.parse_qstat_xml")
    if parse is None:
        raise CommandExecutionError(
            "sge: the utility module sgejobs is not loaded (run saltutil.sync_utils, or list the "
            "formula's _utils in utils_dirs)"
        )
    try:
        return [job.as_dict() for job in parse(text, log)]
    except ET.ParseError as exc:
        raise CommandExecutionError(f"cannot parse qstat -xml output: {exc}") from exc


def jobs(user="*"):
    """
    All jobs of ``user`` (default: every user, ``qstat -xml -u '*'``; note that plain
    ``qstat`` only shows the caller's jobs), running jobs first. Each job is a dict with
    ``job_id``, ``name``, ``owner``, ``state`` (SGE's letters: ``r``, ``qw``, ``hqw``,
    ``Eqw``, ...), ``status`` (one word: ``running``, ``pending``, ``held``, ``error``,
    ``suspended``, ``deleting`` or ``unknown``, from the table the spawner uses too,
    ``sgejobs.STATUS_TABLE``), the booleans ``running``, ``pending`` (waiting, held or not),
    ``held`` (a hold, also on a running job: ``hr``), ``error``, ``suspended``, ``deleting``,
    ``queue`` (cluster queue), ``queue_instance``, ``host``,
    ``slots`` (int), ``priority``, ``start_time`` (running) or ``submission_time`` (pending)
    and, for array jobs, ``tasks`` (SGE's task range, e.g. ``2,3``).

    CLI Example:

    .. code-block:: bash

        salt '*' sge.jobs
        salt '*' sge.jobs user=alice
    """
    ret = _run("qstat", ["-xml", "-u", user])
    _check(ret, "qstat")
    return _parse_jobs(ret["stdout"])


def user_jobs(user):
    """
    The jobs of one user: same as ``sge.jobs user=<user>``.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.user_jobs alice
    """
    return jobs(user=user)


def job_status(job_id):
    """
    Status of one job from ``qstat -xml -u '*'``: the job's dict (see
    :py:func:`jobs`), or ``{"job_id": ..., "status": "absent"}`` when SGE no
    longer lists it (finished, deleted, or never existed). An array job with tasks in
    several states returns its first entry plus ``entries``, one dict per group of tasks.

    CLI Example:

    .. code-block:: bash

        salt '*' sge.job_status 42
    """
    job_id = str(job_id)
    matches = [job for job in jobs("*") if job["job_id"] == job_id]
    if not matches:
        return {"job_id": job_id, "status": "absent", "state": ""}
    result = dict(matches[0])
    if len(matches) > 1:
        result["entries"] = matches
    return result


def verify(options=None, command="/bin/true", runas=None, mode="v"):
    """
    Ask SGE whether it would accept a job request, without submitting it
    (``qsub -w v``: against an empty cluster; ``mode=p``: against the current load).

    options
        qsub options as a list or a shell-quoted string, e.g. ``"-pe smp 2 -l h_rt=1:0:0"``.
    command
        the binary the job would run (submitted with ``-b y``).
    runas
        the user to ask as (SGE rejects root: ``min_uid`` is 1000).

    Returns ``{"accepted": bool, "reason": SGE's message, "retcode": int}``. Raises
    CommandExecutionError only when SGE could not be asked (qmaster down, ...).

    CLI Example:

    .. code-block:: bash

        salt hub sge.verify "-pe smp 2 -l h_rt=01:00:00 -q all.q" runas=alice
    """
    if mode not in ("v", "p"):
        raise SaltInvocationError("mode must be v (verify) or p (poke)")
    if options is None:
        options = []
    elif isinstance(options, str):
        options = shlex.split(options)
    ret = _run("qsub", ["-w", mode] + list(options) + ["-b", "y", command], runas=runas)
    msg = _message(ret)
    lines = [line for line in msg.splitlines() if line.strip() and line.strip() != "Exiting."]
    if _UNREACHABLE.search(msg):
        raise CommandExecutionError(f"qsub -w {mode}: cannot reach the qmaster: {msg}")
    if ret["retcode"] == 0 and "found suitable queue" in msg:
        return {"accepted": True, "reason": "\n".join(lines), "retcode": 0}
    if "Unable to run job:" in msg:
        reason = "\n".join(line.replace("Unable to run job: ", "", 1) for line in lines)
        return {"accepted": False, "reason": reason, "retcode": ret["retcode"]}
    raise CommandExecutionError(f"qsub -w {mode} failed: {msg}", info={"retcode": ret["retcode"]})
