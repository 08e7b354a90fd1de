"""
Manage a Grid Engine cell: submit, admin and execution hosts, host groups, cluster queues,
parallel environments, complex attributes, the scheduler and the global configuration.

A thin layer over the :py:mod:`sge execution module <_modules.sge>`: every state reads the
current value, does nothing when it already matches, predicts the change with ``test=True``
(``result: None``), and reports ``old``/``new``. SGE's refusals ("must be manager",
"can't resolve hostname", ...) fail the state with SGE's own message.

Apply these states on a Grid Engine admin host (e.g. the qmaster) as a manager (root is one).

.. code-block:: yaml

    hub01-is-a-submit-host:
      sge.submit_host_present:
        - name: hub01

    oldhub-is-no-submit-host:
      sge.submit_host_absent:
        - name: oldhub

    smp-pe-configured:
      sge.pe_present:
        - name: smp
        - settings:
            slots: 999
            allocation_rule: $pe_slots
"""

import getpass
import json
import os
import stat
import tempfile

from salt.exceptions import CommandExecutionError

# the columns of `qconf -sc` after the name
_COMPLEX_COLUMNS = ("shortcut", "type", "relop", "requestable", "consumable", "default", "urgency")

__virtualname__ = "sge"


def __virtual__():
    if "sge.list_submit_hosts" in __salt__:
        return __virtualname__
    return (False, "sge: the sge execution module is not available (Grid Engine client missing?)")


def _ret(name):
    return {"name": name, "result": True, "changes": {}, "comment": ""}


def _fail(ret, comment):
    ret["result"] = False
    ret["comment"] = comment
    return ret


def _manager_problem():
    """A comment if the user running Salt is not an SGE manager (predicted for test=True)."""
    user = getpass.getuser()
    try:
        managers = __salt__["sge.list_managers"]()
    except CommandExecutionError as exc:
        return str(exc)
    if user not in managers:
        return f"{user} is not a Grid Engine manager (managers: {', '.join(managers)})"
    return None


def _host_in_list(name, kind, present):
    """Shared body of the {submit,admin}_host_{present,absent} states."""
    list_fn, add_fn, remove_fn = {
        "submit": ("sge.list_submit_hosts", "sge.add_submit_host", "sge.remove_submit_host"),
        "admin": ("sge.list_admin_hosts", "sge.add_admin_host", "sge.remove_admin_host"),
    }[kind]
    label = f"{kind} host"
    ret = _ret(name)
    try:
        host = __salt__["sge.resolve_host"](name)
    except CommandExecutionError as exc:
        if present:
            return _fail(ret, f"{name} cannot become a {label}: {exc}")
        host = name
    try:
        old = __salt__[list_fn]()
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    if (host in old) == present:
        ret["comment"] = f"{host} is {'already' if present else 'not'} a {label}"
        return ret
    new = sorted(old + [host]) if present else [h for h in old if h != host]
    changes = {f"{kind}_hosts": {"old": old, "new": new}}
    verb = "added to" if present else "removed from"
    if __opts__["test"]:
        problem = _manager_problem()
        if problem:
            return _fail(ret, f"{host} would not be {verb} the {label}s: {problem}")
        ret.update(result=None, changes=changes, comment=f"{host} would be {verb} the {label}s")
        return ret
    try:
        __salt__[add_fn if present else remove_fn](host)
        now = __salt__[list_fn]()
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    if (host in now) != present:
        return _fail(ret, f"{host} was not {verb} the {label}s (list is now {now})")
    ret["changes"] = {f"{kind}_hosts": {"old": old, "new": now}}
    ret["comment"] = f"{host} {verb} the {label}s"
    return ret


def submit_host_present(name):
    """
    Make ``name`` a submit host of the cell (``qconf -as``).

    name
        the host; SGE stores it under the name its resolver gives (``gethostbyname -aname``).
    """
    return _host_in_list(name, "submit", True)


def submit_host_absent(name):
    """
    Make sure ``name`` is not a submit host (``qconf -ds``).
    """
    return _host_in_list(name, "submit", False)


def _read_record(path):
    """The host list kept in the record file ``path`` ([] when there is none yet)."""
    try:
        with open(path, encoding="utf-8") as handle:
            hosts = json.load(handle)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise CommandExecutionError(f"record {path} cannot be read: {exc}") from exc
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise CommandExecutionError(f"record {path} is not a list of host names")
    return hosts


def _write_record(path, hosts):
    """Replace the record file atomically (root-only folder, created 0700 when missing)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise CommandExecutionError(
            f"record folder {folder} is not a directory only this account can write: refusing to write there"
        )
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".submit-hosts.")
    try:
        os.fchmod(fd, 0o644)  # through the descriptor, never the path
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(sorted(hosts), handle)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def submit_hosts_managed(name, hosts):
    """
    Make exactly ``hosts`` the submit hosts that this state manages: each of ``hosts`` is
    added (``qconf -as``), and every host an earlier run of this state added but that is no
    longer in ``hosts`` is removed (``qconf -ds``). Submit hosts registered any other way are
    left alone. What this state added is recorded in the file ``name`` (JSON list, in a folder
    only root can write), so removing a host from ``hosts`` deregisters it.

    name
        path of the record, e.g. ``/var/lib/salt-jupyterhub/submit-hosts.json``
    hosts
        host names; compared as Grid Engine resolves them

    .. code-block:: yaml

        jupyterhub-hubs-are-the-managed-submit-hosts:
          sge.submit_hosts_managed:
            - name: /var/lib/salt-jupyterhub/submit-hosts.json
            - hosts: [hub01, hub02]
    """
    ret = _ret(name)
    try:
        if "trusted_path.check" in __salt__:  # root reads and writes it: only root may change it
            __salt__["trusted_path.check"](name, missing_ok=True, what="submit host record")
        wanted = sorted({__salt__["sge.resolve_host"](host) for host in hosts or []})
        recorded = _read_record(name)
        old = __salt__["sge.list_submit_hosts"]()
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    add = [host for host in wanted if host not in old]
    remove = [host for host in recorded if host not in wanted and host in old]
    if not add and not remove:
        if sorted(recorded) != wanted and not __opts__["test"]:
            try:
                _write_record(name, wanted)
            except (OSError, CommandExecutionError) as exc:
                return _fail(ret, f"record {name}: {exc}")
        ret["comment"] = f"the managed submit hosts are {', '.join(wanted) or 'none'}"
        return ret
    new = sorted(h for h in old + add if h not in remove)
    changes = {"submit_hosts": {"old": old, "new": new}}
    if __opts__["test"]:
        problem = _manager_problem()
        if problem:
            return _fail(ret, f"the submit hosts would not be changed: {problem}")
        ret.update(result=None, changes=changes,
                   comment=f"would add {add or 'none'}, remove {remove or 'none'}")
        return ret
    done = [h for h in recorded if h in old]
    try:
        for host in add:
            __salt__["sge.add_submit_host"](host)
            done.append(host)
        for host in remove:
            __salt__["sge.remove_submit_host"](host)
            done.remove(host)
        now = __salt__["sge.list_submit_hosts"]()
    except CommandExecutionError as exc:
        ret["changes"] = {"submit_hosts": {"old": old, "new": sorted(set(done))}}
        _write_record(name, sorted(set(done)))
        return _fail(ret, str(exc))
    missing = [h for h in wanted if h not in now]
    left = [h for h in remove if h in now]
    _write_record(name, wanted)
    if missing or left:
        return _fail(ret, f"submit hosts are now {now}: missing {missing}, not removed {left}")
    ret["changes"] = {"submit_hosts": {"old": old, "new": now}}
    ret["comment"] = f"added {add or 'none'}, removed {remove or 'none'}"
    return ret


def admin_host_present(name):
    """
    Make ``name`` an administrative host (``qconf -ah``). An execution daemon registers its
    host as an execution host by itself when the host is an admin host.
    """
    return _host_in_list(name, "admin", True)


def admin_host_absent(name):
    """
    Make sure ``name`` is not an administrative host (``qconf -dh``).
    """
    return _host_in_list(name, "admin", False)


def _norm(value):
    return __salt__["sge.format_value"](value)


def _diff(current, settings):
    """{key: {old, new}} for every key of ``settings`` whose SGE value differs."""
    diff = {}
    for key, want in (settings or {}).items():
        want = _norm(want)
        have = current.get(key)
        if have is None or " ".join(have.split()) != want:
            diff[key] = {"old": have, "new": want}
    return diff


def _object_present(name, settings, what, show_fn, add_fn, modify_fn):
    ret = _ret(name)
    settings = dict(settings or {})
    try:
        current = __salt__[show_fn](name)
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    if current:
        diff = _diff(current, settings)
        if not diff:
            ret["comment"] = f"{what} {name} is as configured"
            return ret
        changes = diff
        action, fn = "changed", modify_fn
    else:
        changes = {what.replace(" ", "_"): {"old": None, "new": name}}
        changes.update({k: {"old": None, "new": _norm(v)} for k, v in settings.items()})
        action, fn = "added", add_fn
    if __opts__["test"]:
        problem = _manager_problem()
        if problem:
            return _fail(ret, f"{what} {name} would not be {action}: {problem}")
        ret.update(result=None, changes=changes, comment=f"{what} {name} would be {action}")
        return ret
    try:
        __salt__[fn](name, **settings)
        after = __salt__[show_fn](name)
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    left = _diff(after, settings)
    if left:
        ret["changes"] = changes
        return _fail(ret, f"{what} {name} {action}, but SGE reports other values: {left}")
    ret["changes"] = changes
    ret["comment"] = f"{what} {name} {action}"
    return ret


def queue_present(name, settings=None):
    """
    Make sure a cluster queue exists with the given attributes (others keep their value, or
    SGE's template default for a new queue).

    .. code-block:: yaml

        all-q-configured:
          sge.queue_present:
            - name: all.q
            - settings:
                hostlist: "@allhosts"
                pe_list: smp
                slots: 4
    """
    return _object_present(name, settings, "queue", "sge.show_queue", "sge.add_queue", "sge.modify_queue")


def pe_present(name, settings=None):
    """
    Make sure a parallel environment exists with the given attributes.
    """
    return _object_present(
        name, settings, "parallel environment", "sge.show_pe", "sge.add_pe", "sge.modify_pe"
    )


def project_present(name, settings=None):
    """
    Make sure a project exists with the given attributes (e.g. ``acl``, the user lists whose
    members may submit with ``-P name``).

    .. code-block:: yaml

        physics-project-present:
          sge.project_present:
            - name: physics
    """
    return _object_present(
        name, settings, "project", "sge.show_project", "sge.add_project", "sge.modify_project"
    )


def exec_host_present(name, settings=None):
    """
    Make sure ``name`` is an execution host with the given attributes (e.g.
    ``complex_values``).
    """
    ret = _ret(name)
    try:
        name = __salt__["sge.resolve_host"](name)
    except CommandExecutionError as exc:
        return _fail(ret, f"{name} cannot become an execution host: {exc}")
    return _object_present(
        name, settings, "execution host", "sge.show_exec_host", "sge.add_exec_host", "sge.modify_exec_host"
    )


def exec_host_absent(name):
    """
    Make sure ``name`` is not an execution host (``qconf -de``).
    """
    ret = _ret(name)
    try:
        old = __salt__["sge.list_exec_hosts"]()
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    if name not in old:
        ret["comment"] = f"{name} is not an execution host"
        return ret
    changes = {"exec_hosts": {"old": old, "new": [h for h in old if h != name]}}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"{name} would be removed")
        return ret
    try:
        __salt__["sge.remove_exec_host"](name)
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    ret.update(changes=changes, comment=f"{name} removed from the execution hosts")
    return ret


def hostgroup_present(name, hosts):
    """
    Make sure host group ``name`` (``@...``) contains exactly ``hosts`` (order does not
    matter). Host names are compared as Grid Engine resolves them (``node01`` is
    ``node01.example.org`` where the resolver gives the FQDN).

    .. code-block:: yaml

        allhosts-hostgroup:
          sge.hostgroup_present:
            - name: "@allhosts"
            - hosts: [node01, node02]
    """
    ret = _ret(name)
    try:
        hosts = [__salt__["sge.resolve_host"](host) for host in hosts or []]
        current = __salt__["sge.show_hostgroup"](name)
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    old = current.get("hostlist") if current else None
    if old is not None and sorted(old) == sorted(hosts):
        ret["comment"] = f"host group {name} is as configured"
        return ret
    changes = {"hostlist": {"old": old, "new": hosts}}
    if __opts__["test"]:
        problem = _manager_problem()
        if problem:
            return _fail(ret, f"host group {name} would not be set: {problem}")
        ret.update(result=None, changes=changes, comment=f"host group {name} would be set")
        return ret
    try:
        __salt__["sge.set_hostgroup"](name, hosts)
        now = __salt__["sge.show_hostgroup"](name).get("hostlist")
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    changes["hostlist"]["new"] = now
    ret.update(changes=changes, comment=f"host group {name} set")
    return ret


def _config_present(name, settings, what, show, modify):
    ret = _ret(name)
    try:
        current = show()
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    diff = _diff(current, settings)
    if not diff:
        ret["comment"] = f"{what} is as configured"
        return ret
    if __opts__["test"]:
        problem = _manager_problem()
        if problem:
            return _fail(ret, f"{what} would not be changed: {problem}")
        ret.update(result=None, changes=diff, comment=f"{what} would be changed")
        return ret
    try:
        modify()
        left = _diff(show(), settings)
    except CommandExecutionError as exc:
        return _fail(ret, str(exc))
    ret["changes"] = diff
    if left:
        return _fail(ret, f"{what} changed, but SGE reports other values: {left}")
    ret["comment"] = f"{what} changed"
    return ret


def scheduler_configured(name, settings):
    """
    Make sure the scheduler configuration (``qconf -ssconf``) has the given values; the
    others are kept. ``name`` is only the state's label.

    .. code-block:: yaml

        scheduler-runs-every-second:
          sge.scheduler_configured:
            - settings:
                schedule_interval: "0:0:1"
                flush_submit_sec: 1
                flush_finish_sec: 1
    """
    settings = dict(settings or {})
    return _config_present(
        name,
        settings,
        "scheduler configuration",
        lambda: __salt__["sge.show_scheduler_config"](),
        lambda: __salt__["sge.modify_scheduler_config"](**settings),
    )


def config_present(name, settings):
    """
    Make sure a cluster configuration (``name``: ``global`` or a host's local configuration)
    has the given values; the others are kept.

    .. code-block:: yaml

        global:
          sge.config_present:
            - settings:
                reporting_params: >-
                  accounting=true reporting=false flush_time=00:00:15 joblog=false
                  sharelog=00:00:00 accounting_flush_time=00:00:00
    """
    settings = dict(settings or {})
    return _config_present(
        name,
        settings,
        f"configuration {name}",
        lambda: __salt__["sge.show_config"](name),
        lambda: __salt__["sge.modify_config"](name, **settings),
    )


def complex_present(name, settings):
    """
    Make sure complex attribute ``name`` has the given columns of ``qconf -sc``
    (``shortcut``, ``type``, ``relop``, ``requestable``, ``consumable``, ``default``,
    ``urgency``); the other columns and complexes are kept. A complex that does not exist is
    added when ``settings`` has every column (e.g. a ``gpu`` consumable).

    .. code-block:: yaml

        h_vmem-is-consumable:
          sge.complex_present:
            - name: h_vmem
            - settings:
                consumable: "YES"
    """
    settings = dict(settings or {})

    def show():
        current = __salt__["sge.show_complex"](name)
        missing = [c for c in _COMPLEX_COLUMNS if c not in settings]
        if not current and missing:
            raise CommandExecutionError(
                f"complex {name} does not exist (qconf -sc); to add it give every column "
                f"(missing: {', '.join(missing)})"
            )
        return current

    return _config_present(
        name,
        settings,
        f"complex {name}",
        show,
        lambda: __salt__["sge.modify_complex"](name, **settings),
    )
