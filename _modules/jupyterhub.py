"""
Helpers for the ``jupyterhub`` formula: pillar validation, values computed on the host, and
secrets generated on the host.

:depends: nothing outside Salt and the standard library

The SLS files call these through ``map.jinja`` so that every template sees the same, validated
settings. A pillar error is raised while rendering, before any state runs: nothing is changed.
"""

import copy
import grp
import ipaddress
import logging
import os
import pwd
import re
import secrets
import shutil
import socket
import stat
import sys
import tempfile

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "jupyterhub"

_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
}


def __virtual__():
    return __virtualname__


def _kind(value):
    """The settings type of a value: bool, int, float, str, list or dict (subclasses included)."""
    for typ in (bool, int, float, str, dict):
        if isinstance(value, typ):
            return typ
    if isinstance(value, (list, tuple)):
        return list
    return type(value)


def _type_name(value):
    return _TYPE_NAMES.get(_kind(value), type(value).__name__)


def _same_type(value, default):
    # bool is a subclass of int: compare kinds, but accept an int where a float is expected
    if _kind(default) is float and _kind(value) is int:
        return True
    return _kind(value) is _kind(default)


def _path_matches(pattern, path):
    parts = pattern.split(":")
    return len(parts) == len(path) and all(p in ("*", q) for p, q in zip(parts, path))


def _open_map_template(open_maps, path):
    for pattern, template in open_maps.items():
        if _path_matches(pattern, path):
            return True, template
    return False, None


def _check(value, default, path, schema, errors):
    key = ":".join(["jupyterhub"] + path)
    if value is None and ":".join(path) in schema.get("nullable", []):
        return
    if not _same_type(value, default):
        errors.append(
            f"{key}: expected {_type_name(default)} like {default!r}, got {value!r} ({_type_name(value)})"
        )
        return
    if _kind(value) is list:
        items = (schema.get("list_items") or {}).get(":".join(path))
        if default:
            items = default[0]
        if items is not None:
            for index, item in enumerate(value):
                _check(item, items, path + [str(index)], schema, errors)
        return
    if not isinstance(value, dict):
        return
    is_open, template = _open_map_template(schema.get("open_maps") or {}, path)
    for name, item in value.items():
        if not isinstance(name, str):
            errors.append(f"{key}: key {name!r} must be a string")
            continue
        if is_open:
            if template is not None:
                _check(item, template, path + [name], schema, errors)
        elif name not in default:
            allowed = ", ".join(sorted(default)) or "none"
            errors.append(f"{key}:{name}: unknown key; allowed keys here: {allowed}")
        else:
            _check(item, default[name], path + [name], schema, errors)


def check_pillar(config, defaults, schema=None):
    """
    Check the ``jupyterhub`` pillar against the formula's defaults and schema.

    Every key must exist in ``defaults`` (unless its map is listed in ``schema['open_maps']``) and
    every value must have the type of its default. All problems are reported at once.

    config
        The pillar data under the ``jupyterhub`` key.

    defaults
        The ``jupyterhub`` map of ``defaults.yaml``.

    schema
        The contents of ``schema.yaml`` (``open_maps``, ``nullable``).

    Returns ``True``; raises ``CommandExecutionError`` listing every invalid key.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.check_pillar "$(salt-call --out=json pillar.get jupyterhub)" ...
    """
    errors = []
    if config is None:
        config = {}
    _check(config, defaults, [], schema or {}, errors)
    if errors:
        raise CommandExecutionError(
            "Invalid pillar (nothing was changed):\n  " + "\n  ".join(errors)
        )
    return True


def _merge(default, value, path, replaced):
    if not isinstance(default, dict) or not isinstance(value, dict):
        return copy.deepcopy(value)
    merged = copy.deepcopy(default)
    for name, item in value.items():
        here = path + [str(name)]
        if any(_path_matches(pattern, here) for pattern in replaced) or name not in merged:
            merged[name] = copy.deepcopy(item)
        else:
            merged[name] = _merge(merged[name], item, here, replaced)
    return merged


def merge(defaults, config, schema=None):
    """
    The settings: the ``jupyterhub`` pillar ``config`` merged over ``defaults``. Maps merge key by
    key and lists are replaced, except that a map listed in ``schema['replaced']`` (e.g. the
    form's ``choices``) is taken from pillar as it is: pillar lists exactly what is offered.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.merge '{"hub": {"port": 8081}}' '{"hub": {"port": 9000}}'
    """
    return _merge(defaults, config or {}, [], (schema or {}).get("replaced") or [])


def cluster_address(cidr):
    """
    Return this host's IPv4 address inside ``cidr`` (the hub API binds there).

    The address of the host's FQDN wins when it is inside the network, otherwise the first
    non-loopback address inside it. Raises ``CommandExecutionError`` when there is none.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.cluster_address 10.0.0.0/8
    """
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        raise CommandExecutionError(
            f"jupyterhub:cluster_net_cidr: {cidr!r} is not a network ({exc})"
        ) from exc
    addresses = [
        a for a in __salt__["network.ip_addrs"]() if not ipaddress.ip_address(a).is_loopback
    ]
    preferred = [a for a in __grains__.get("fqdn_ip4", []) if a in addresses]
    for address in preferred + addresses:
        if ipaddress.ip_address(address) in net:
            return address
    raise CommandExecutionError(
        f"jupyterhub:cluster_net_cidr: this host has no address in {net} "
        f"(its addresses: {', '.join(addresses) or 'none'}); set cluster_net_cidr to the "
        "network the worker nodes reach this host on"
    )


def sge_qmaster(qmaster):
    """
    How Grid Engine names the qmaster host ``qmaster`` when it resolves it on this host
    (``gethostbyname``: the canonical name and the first IPv4 address), for the files the
    states write before the qmaster first starts:

    ``name``
        for ``act_qmaster``: the canonical name, the one ``sge_qmaster`` writes there itself
        at start (Debian's cell has ``ignore_fqdn false``: the FQDN when /etc/hosts or DNS
        gives one), so the file stays as written.

    ``host_aliases``
        the line for ``<root>/<cell>/common/host_aliases`` on the qmaster host, or ``""``. Where
        the host's own name resolves to a loopback address (``127.0.1.1 <fqdn> <host>``: the
        Debian installer with DHCP, Debian's cloud images), every local client (``qconf``, the
        execd) reaches the qmaster from 127.0.0.1, which Grid Engine resolves to ``localhost``,
        and is refused (``local host name error``); ``<name> localhost`` makes both one host.

    Raises ``CommandExecutionError`` naming ``jupyterhub:sge:qmaster`` when the name does not
    resolve (nothing could reach the qmaster).

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.sge_qmaster demo
    """
    try:
        canonical, _, addresses = socket.gethostbyname_ex(qmaster)
    except OSError as exc:
        raise CommandExecutionError(
            f"jupyterhub:sge:qmaster: the qmaster host name {qmaster!r} does not resolve on this "
            f"host ({exc}); add it to /etc/hosts or DNS, or set jupyterhub:sge:qmaster to a name "
            "that resolves (empty: this host's name)"
        ) from exc
    loopback = ipaddress.ip_address(addresses[0]).is_loopback
    return {"name": canonical, "host_aliases": f"{canonical} localhost" if loopback else ""}


def _conda_paths(config):
    """The conda layout: root, package cache, the locks, the cluster env's prefix and cache."""
    conda = config["conda"]
    root = os.path.normpath(config["conda_root"])
    cluster_prefix = conda["cluster_env"]["prefix"].rstrip("/")
    if conda["env_lock"]:
        env_lock = conda["env_lock"]
    elif cluster_prefix:
        env_lock = cluster_prefix + ".lock.yml"
    else:
        env_lock = os.path.join(root, "locks", config["conda_env"] + ".lock.yml")
    return {
        "root": root,
        "pkgs_dir": os.path.join(root, "pkgs"),
        "env_lock": env_lock,
        "base_lock": conda["base_lock"] or os.path.join(root, "locks", "base.lock.yml"),
        "cluster_prefix": cluster_prefix,
        "cluster_pkgs_dir": conda["cluster_env"]["pkgs_dir"]
        or (os.path.join(os.path.dirname(cluster_prefix), "pkgs") if cluster_prefix else ""),
    }


def computed(config):
    """
    Values derived from the settings and this host, computed here only (settings.json carries
    them to the hub and the spawner): ``fqdn``, ``hub_ip``, ``env_prefix``, ``server_name``,
    ``common_name`` and ``subject_alt_names`` (the TLS names), the hub's directories
    (``state_dir``, ``secrets_dir``), the root-only secrets (``cookie_secret_file``,
    ``database_password_file``, ``metrics_token_file``), the files the hub and the spawner read
    (``settings_file``, ``templates_dir``, ``job_template``, ``form_template``, ``spawner_src``:
    the spawner package's source, installed into the env from there), the env the jobs run
    (``worker_env``), the conda layout (``conda_paths``: root, pkgs_dir, env_lock, base_lock,
    cluster_prefix, cluster_pkgs_dir) and ``server_users``, the accounts the
    role puts into ``access:group`` (``access:members``, on dev hosts ``jh_whitelist_users``, and
    ``demo_account``).

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.computed "$(salt-call --out=json pillar.get jupyterhub)"
    """
    fqdn = __grains__.get("fqdn") or __grains__["id"]
    host = __grains__.get("host") or fqdn.split(".")[0]
    if config["env_provider"] == "conda":
        env_prefix = os.path.join(os.path.normpath(config["conda_root"]), "envs", config["conda_env"])
    else:
        env_prefix = config["venv_prefix"]
    server_name = config["nginx"]["server_name"] or fqdn
    sans = [f"DNS:{server_name}"]
    for name in [fqdn, host]:
        if f"DNS:{name}" not in sans:
            sans.append(f"DNS:{name}")
    public = ipaddress.ip_network(config["public_net_cidr"], strict=False)
    for address in __salt__["network.ip_addrs"]():
        ip = ipaddress.ip_address(address)
        if not ip.is_loopback and (ip in public or public.prefixlen == 0):
            sans.append(f"IP:{address}")
    for extra in config["tls"]["subject_alt_names"]:
        if extra not in sans:
            sans.append(extra)
    hub_ip = config["hub"]["ip"]
    if hub_ip:
        try:
            ipaddress.ip_address(hub_ip)
        except ValueError as exc:
            raise CommandExecutionError(
                f"jupyterhub:hub:ip: {hub_ip!r} is not an IP address; leave it empty (the address "
                "in cluster_net_cidr) or set 127.0.0.1 for a single-host install"
            ) from exc
    else:
        hub_ip = cluster_address(config["cluster_net_cidr"])
    database = config["database"]
    if database["backend"] not in ("sqlite", "postgresql"):
        raise CommandExecutionError(
            f"jupyterhub:database:backend: {database['backend']!r} is not allowed; allowed: sqlite, postgresql"
        )
    _pg_name(database["name"], "name")
    _pg_name(database["user"], "user")
    server_users = list(config["access"]["members"])
    if config["is_devel_env"]:
        server_users += config["jh_whitelist_users"]
    if config["demo_account"]:
        server_users.append(config["demo_account"])
    if config["access"]["manage_members"]:
        _check_existing_server_users(sorted(set(server_users)), config["access"])
    templates_dir = os.path.join(config["config_dir"], "templates")
    return {
        "conda_paths": _conda_paths(config),
        "fqdn": fqdn,
        "hub_ip": hub_ip,
        "settings_file": os.path.join(config["config_dir"], "settings.json"),
        "templates_dir": templates_dir,
        "job_template": config["spawner"]["job_template"]
        or os.path.join(templates_dir, "sgespawner-job.sh.j2"),
        "form_template": os.path.join(templates_dir, "sgespawner-form.html"),
        "worker_env": config["spawner"]["worker_env"] or env_prefix,
        "spawner_src": os.path.join(config["lib_dir"], "sgespawner"),
        "state_dir": os.path.join(config["runtime_dir"], "state"),
        "secrets_dir": config["spawner"]["secrets_dir"]
        or os.path.join(config["runtime_dir"], "secrets"),
        "cookie_secret_file": os.path.join(config["config_dir"], "jupyterhub_cookie_secret"),
        "database_password_file": os.path.join(config["config_dir"], "database-password"),
        "metrics_token_file": os.path.join(config["config_dir"], "metrics-token"),
        "server_users": sorted(set(server_users)),
        "env_prefix": env_prefix,
        "server_name": server_name,
        "common_name": config["tls"]["common_name"] or server_name,
        "subject_alt_names": sans,
    }


def _group_names(name, gid):
    """Names of the groups of account ``name`` (primary ``gid`` and supplementary)."""
    names = set()
    for number in os.getgrouplist(name, gid):
        try:
            names.add(grp.getgrgid(number).gr_name)
        except KeyError:
            names.add(str(number))
    return names


def _sudo_allows_anything(name):
    """True when sudoers lets ``name`` run a shell as root (``sudo -l -U NAME /bin/sh``, as root).
    Without sudo installed nobody can."""
    if not shutil.which("sudo"):
        return False
    result = __salt__["cmd.run_all"](
        ["sudo", "-n", "-l", "-U", name, "-u", "root", "/bin/sh"],
        python_shell=False, ignore_retcode=True, output_loglevel="quiet",
    )
    return result["retcode"] == 0


def _sge_privileged():
    """Grid Engine managers and operators (``qconf -sm``, ``-so``); none when qconf cannot answer
    (not installed yet, no qmaster): the spawner checks them again before every submit."""
    names = set()
    if not shutil.which("qconf"):
        return names
    for option in ("-sm", "-so"):
        result = __salt__["cmd.run_all"](
            ["qconf", option], python_shell=False, ignore_retcode=True, output_loglevel="quiet"
        )
        if result["retcode"] == 0:
            names.update(result["stdout"].split())
    return names


def privileged_reason(name, privileged_groups=("sudo", "wheel", "admin"), min_uid=1000,
                      sge_privileged=None):
    """
    Why account ``name`` must never get a Jupyter server, or ``""`` when it may.

    Refused: unknown accounts, uid below ``min_uid`` (root and system accounts) or 65534, members
    of ``privileged_groups``, accounts that sudoers lets run a shell as root, and Grid Engine
    managers and operators.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.privileged_reason debian
    """
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return "no such account"
    if entry.pw_uid < min_uid or entry.pw_uid == 65534:
        return f"uid {entry.pw_uid} is a system account (below {min_uid})"
    groups = _group_names(name, entry.pw_gid) & set(privileged_groups)
    if groups:
        return f"member of the privileged group {', '.join(sorted(groups))}"
    if _sudo_allows_anything(name):
        return "sudoers lets it run anything as root"
    if sge_privileged is None:
        sge_privileged = _sge_privileged()
    if name in sge_privileged:
        return "Grid Engine manager or operator"
    return ""


def check_server_users(names, privileged_groups=("sudo", "wheel", "admin"), min_uid=1000):
    """
    Raise ``CommandExecutionError`` naming every account in ``names`` that must not get servers
    (see ``privileged_reason``); return ``True`` when all may.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.check_server_users '[alice, bob]'
    """
    sge = _sge_privileged()
    problems = []
    for name in names:
        reason = privileged_reason(name, privileged_groups, min_uid, sge)
        if reason:
            problems.append(f"{name} ({reason})")
    if problems:
        raise CommandExecutionError(
            "jupyterhub:access:members: these accounts may not get Jupyter servers: "
            + "; ".join(problems)
            + ". Allowed: existing accounts with uid >= "
            + f"{min_uid}, not in {', '.join(privileged_groups)}, without sudo rights to run "
            "anything, not Grid Engine managers or operators"
        )
    return True


def _check_existing_server_users(names, access):
    """Refuse privileged accounts in pillar while rendering, before anything is applied (once per
    run). Accounts that do not exist yet (created later in the run) are checked by the group
    state."""
    existing = []
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        existing.append(name)
    key = ("jupyterhub.server_users_checked", tuple(existing))
    if existing and key not in __context__:
        check_server_users(existing, access["privileged_groups"], access["min_uid"])
        __context__[key] = True


def sudo_runas(group, privileged_groups=("sudo", "wheel", "admin"), min_uid=1000):
    """
    The sudoers ``Runas_List`` the hub may submit jobs as: an allow-list, the members of
    ``group``, minus every privileged account (evaluated left to right, the last match wins):
    the ``privileged_groups``, root and uid 0, and - computed now - members of ``group`` below
    ``min_uid``, and - of those and every account the host lists - the ones sudoers lets run
    anything and the Grid Engine managers/operators.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.sudo_runas jupyterhub-users
    """
    try:
        members = set(grp.getgrnam(group).gr_mem)
        gid = grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise CommandExecutionError(
            f"jupyterhub:access:group: group {group!r} does not exist"
        ) from exc
    # the group's members, and every account this host lists: one added to the group by hand
    # later (e.g. a cloud image's sudo-ALL account) stays excluded until the next apply
    accounts = {entry.pw_name for entry in pwd.getpwall() if entry.pw_uid >= min_uid}
    accounts |= members | {entry.pw_name for entry in pwd.getpwall() if entry.pw_gid == gid}
    sge = _sge_privileged()
    denied = {
        pwd.getpwnam(name).pw_uid
        for name in accounts
        if privileged_reason(name, privileged_groups, min_uid, sge) not in ("", "no such account")
    }
    items = [f"%{group}"]
    items += [f"!%{name}" for name in privileged_groups]
    items += ["!root"] + [f"!#{uid}" for uid in sorted(denied | {0})]
    return ", ".join(items)


def _file_kind(info):
    if stat.S_ISLNK(info.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(info.st_mode):
        return "a directory"
    if stat.S_ISREG(info.st_mode):
        return f"a regular file with {info.st_nlink} links"
    return "a special file"


def _open_private(path):
    """Open ``path`` read-only WITHOUT following a symlink, as an ``(fd, stat)`` pair.

    Returns ``(None, None)`` when nothing is there. Anything but a regular file with exactly one
    link (a symlink, a directory, a FIFO, a hard link to some other file) raises
    ``CommandExecutionError``: root never acts on what a less-privileged account planted.
    """
    try:
        before = os.lstat(path)
    except FileNotFoundError:
        return None, None
    if not stat.S_ISREG(before.st_mode) or before.st_nlink != 1:
        raise CommandExecutionError(
            f"{path} is {_file_kind(before)}, not a regular file with one link: refusing to "
            "touch it; remove it and apply again"
        )
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    current = os.fstat(fd)
    if (current.st_dev, current.st_ino) != (before.st_dev, before.st_ino) or current.st_nlink != 1:
        os.close(fd)
        raise CommandExecutionError(f"{path} changed while it was checked: refusing to touch it")
    return fd, current


def _user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def secret_status(path):
    """
    Owner, group, mode and size of the secret file ``path`` (``None`` when it does not exist),
    read without following symlinks; a symlink, hard link or non-regular file is an error.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.secret_status /etc/jupyterhub/proxy.env
    """
    fd, info = _open_private(path)
    if fd is None:
        return None
    os.close(fd)
    return {
        "user": _user_name(info.st_uid),
        "group": _group_name(info.st_gid),
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "size": info.st_size,
    }


def secret_fix(path, user="root", group="root", mode="0600"):
    """
    Set owner, group and mode of the existing secret file ``path`` through a descriptor opened
    without following symlinks (``fchown``/``fchmod``): never the target of a planted link.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.secret_fix /etc/jupyterhub/jupyterhub_cookie_secret root jupyter 0640
    """
    fd, _ = _open_private(path)
    if fd is None:
        raise CommandExecutionError(f"{path} does not exist")
    try:
        os.fchown(fd, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
        os.fchmod(fd, int(str(mode), 8))
    finally:
        os.close(fd)
    return True


def write_secret(path, nbytes=32, template="{secret}\n", user="root", group="root", mode="0600"):
    """
    Write a new random secret (``nbytes`` random bytes, hex) to ``path`` atomically, created
    with ``mode`` and owned by ``user``:``group``. The secret is never returned or logged.

    The directory of ``path`` must be owned by root and writable by root only: root does not
    create files where another account could swap them.

    template
        Text of the file; ``{secret}`` is replaced by the secret.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.write_secret /etc/jupyterhub/jupyterhub_cookie_secret user=root group=jupyter mode=0640
    """
    uid = pwd.getpwnam(user).pw_uid
    gid = grp.getgrnam(group).gr_gid
    directory = os.path.dirname(path)
    parent = os.lstat(directory)
    if not stat.S_ISDIR(parent.st_mode) or parent.st_uid != 0 or parent.st_mode & 0o022:
        raise CommandExecutionError(
            f"Could not write secret {path}: {directory} must be a directory owned by root and "
            "writable by root only"
        )
    fd, _ = _open_private(path)  # refuses a planted symlink or hard link
    if fd is not None:
        os.close(fd)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-secret-")
    try:
        os.fchmod(fd, int(str(mode), 8))
        os.fchown(fd, uid, gid)
        with os.fdopen(fd, "w") as handle:
            handle.write(template.format(secret=secrets.token_hex(nbytes)))
        os.replace(tmp, path)
    except OSError as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise CommandExecutionError(f"Could not write secret {path}: {exc}") from exc
    return True


# ---------------------------------------------------------------------------------------------
# PostgreSQL as the hub's database (database:backend postgresql)
# ---------------------------------------------------------------------------------------------
_PG_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _pg_name(name, what):
    if not _PG_NAME.fullmatch(name or ""):
        raise CommandExecutionError(
            f"jupyterhub:database:{what}: {name!r} is not a PostgreSQL name (a-z, 0-9, _; "
            "starting with a letter or _)"
        )
    return name


def _psql(sql, database="postgres"):
    """Run ``sql`` as PostgreSQL's superuser, from stdin (never on a command line): the rows."""
    ret = __salt__["cmd.run_all"](
        ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", database, "-f", "-"],
        stdin=sql, runas="postgres", cwd="/", python_shell=False, output_loglevel="quiet",
        ignore_retcode=True,
    )
    if ret["retcode"] != 0:
        raise CommandExecutionError(f"psql (as postgres): {ret['stderr'].strip()}")
    return [line.split("|") for line in ret["stdout"].splitlines() if line]


def _read_password(password_file):
    fd, _ = _open_private(password_file)
    if fd is None:
        raise CommandExecutionError(f"{password_file} does not exist")
    with os.fdopen(fd, encoding="utf-8") as handle:
        password = handle.read().strip()
    if not re.fullmatch(r"[0-9a-f]{16,}", password):
        raise CommandExecutionError(f"{password_file}: not a password this formula generated (hex)")
    return password


def _password_works(user, database, password, port):
    """Can ``user`` log in to ``database`` over TCP on 127.0.0.1 with ``password``? The password
    goes to psql through a root-only passfile, not the command line or the environment."""
    with tempfile.TemporaryDirectory() as tmp:
        passfile = os.path.join(tmp, "pgpass")
        with open(os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(f"127.0.0.1:{port}:{database}:{user}:{password}\n")
        ret = __salt__["cmd.run_all"](
            ["psql", "-X", "-At", "-w", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", database,
             "-c", "SELECT 1"],
            env={"PGPASSFILE": passfile, "PGCONNECT_TIMEOUT": "10"}, python_shell=False,
            output_loglevel="quiet", ignore_retcode=True,
        )
    return ret["retcode"] == 0


def postgres_status(name, owner, password_file, port=5432):
    """
    How far the hub's PostgreSQL database is from what the role wants: ``{"role": bool,
    "database": bool, "password": bool}`` (the role exists, the database exists and belongs to
    it, the role logs in over TCP with the password in ``password_file``).

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.postgres_status jupyterhub jupyterhub /etc/jupyterhub/database-password
    """
    name, owner = _pg_name(name, "name"), _pg_name(owner, "user")
    role = bool(_psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'"))
    database = bool(_psql(
        "SELECT 1 FROM pg_database d JOIN pg_roles r ON d.datdba = r.oid "
        f"WHERE d.datname = '{name}' AND r.rolname = '{owner}'"
    ))
    password = role and database and _password_works(owner, name, _read_password(password_file), port)
    return {"role": role, "database": database, "password": password}


def postgres_apply(name, owner, password_file):
    """
    Create the login role ``owner`` (or set its password) with the password in ``password_file``
    and the database ``name`` owned by it. SQL goes to psql on stdin.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.postgres_apply jupyterhub jupyterhub /etc/jupyterhub/database-password
    """
    name, owner = _pg_name(name, "name"), _pg_name(owner, "user")
    password = _read_password(password_file)
    verb = "ALTER" if _psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{owner}'") else "CREATE"
    _psql(f"{verb} ROLE {owner} LOGIN PASSWORD '{password}';")
    if not _psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
        _psql(f"CREATE DATABASE {name} OWNER {owner};")
    else:
        _psql(f"ALTER DATABASE {name} OWNER TO {owner};")
    return True


def salt_call_command():
    """
    How a systemd unit runs ``salt-call`` the way this minion runs: ``{"cwd": ..., "argv": [...],
    "trusted": [...]}``.

    Masterless from a checkout of this repository (``conf/minion`` there): the checkout's root, so
    that its ``Saltfile`` applies. Otherwise ``/`` and the ``salt-call`` next to this Python.

    A root timer runs code from the checkout and from Salt's Python environment: both (everything
    in them, and every directory above them) must be owned by root and writable by root only,
    else an account that can write there gets root at the next run. This raises
    ``CommandExecutionError`` naming the offending path and the fix when they are not.
    ``trusted`` lists them, for the unit to check again before it runs anything
    (``trusted_path.py --recurse``).

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.salt_call_command
    """
    salt_call = os.path.join(os.path.dirname(sys.executable), "salt-call")
    conf_dir = os.path.dirname(os.path.abspath(__opts__["conf_file"]))
    cwd = "/"
    if __opts__.get("file_client") == "local" and os.path.isfile(
        os.path.join(os.path.dirname(conf_dir), "Saltfile")
    ):
        cwd = os.path.dirname(conf_dir)
    trusted = ([cwd] if cwd != "/" else []) + [os.path.abspath(sys.prefix)]
    for path in trusted:
        __salt__["trusted_path.check"](
            path,
            recurse=True,
            what="the env-update timer runs salt-call as root from",
            hint="keep the checkout and Salt's venv in directories only root can write",
        )
    return {"cwd": cwd, "argv": [salt_call], "trusted": trusted}
