"""
Helpers for the ``jupyterhub`` formula: pillar validation, values computed on the host, and
secrets generated on the host.

:depends: nothing outside Salt and the standard library

The SLS files call these through ``map.jinja`` so that every template sees the same, validated
settings. A pillar error is raised while rendering, before any state runs: nothing is changed.
"""

import grp
import ipaddress
import logging
import os
import pwd
import secrets
import socket
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


def computed(config):
    """
    Values derived from the settings and this host: ``fqdn``, ``hub_ip``, ``env_prefix``,
    ``server_name``, ``common_name`` and ``subject_alt_names`` (the TLS names).

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.computed "$(salt-call --out=json pillar.get jupyterhub)"
    """
    fqdn = __grains__.get("fqdn") or __grains__["id"]
    host = __grains__.get("host") or fqdn.split(".")[0]
    if config["env_provider"] == "conda":
        env_prefix = os.path.join(config["conda_root"], "envs", config["conda_env"])
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
    return {
        "fqdn": fqdn,
        "hub_ip": cluster_address(config["cluster_net_cidr"]),
        "env_prefix": env_prefix,
        "server_name": server_name,
        "common_name": config["tls"]["common_name"] or server_name,
        "subject_alt_names": sans,
    }


def sudo_runas(group="", exclude=("root",), min_uid=1000):
    """
    The sudoers ``Runas_List`` the hub may submit jobs as: members of ``group`` when it is set,
    otherwise every account except root and the system accounts (uid below ``min_uid`` or
    65534) that exist now, by name and by uid.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.sudo_runas
        salt-call jupyterhub.sudo_runas group=hpcusers
    """
    if group:
        try:
            grp.getgrnam(group)
        except KeyError as exc:
            raise CommandExecutionError(
                f"jupyterhub:sge:sudo_runas_group: group {group!r} does not exist"
            ) from exc
        return f"%{group}"
    names = set(exclude)
    uids = {0}
    for entry in pwd.getpwall():
        if entry.pw_uid < min_uid or entry.pw_uid == 65534:
            names.add(entry.pw_name)
            uids.add(entry.pw_uid)
    denied = [f"!{name}" for name in sorted(names)] + [f"!#{uid}" for uid in sorted(uids)]
    return ", ".join(["ALL"] + denied)


def write_secret(path, nbytes=32, template="{secret}\n", user="root", group="root", mode="0600"):
    """
    Write a new random secret (``nbytes`` random bytes, hex) to ``path`` atomically, created
    with ``mode`` and owned by ``user``:``group``. The secret is never returned or logged.

    template
        Text of the file; ``{secret}`` is replaced by the secret.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.write_secret /srv/jupyterhub/jupyterhub_cookie_secret user=jupyter group=jupyter
    """
    uid = pwd.getpwnam(user).pw_uid
    gid = grp.getgrnam(group).gr_gid
    directory = os.path.dirname(path)
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


def salt_call_command():
    """
    How a systemd unit runs ``salt-call`` the way this minion runs: ``{"cwd": ..., "argv": [...]}``.

    Masterless from a checkout of this repository (``conf/minion`` there): the checkout's root, so
    that its ``Saltfile`` applies. Otherwise ``/`` and the ``salt-call`` next to this Python.

    CLI Example:

    .. code-block:: bash

        salt-call jupyterhub.salt_call_command
    """
    salt_call = os.path.join(os.path.dirname(sys.executable), "salt-call")
    conf_dir = os.path.dirname(os.path.abspath(__opts__["conf_file"]))
    if __opts__.get("file_client") == "local" and os.path.isfile(
        os.path.join(os.path.dirname(conf_dir), "Saltfile")
    ):
        return {"cwd": os.path.dirname(conf_dir), "argv": [salt_call]}
    return {"cwd": "/", "argv": [salt_call]}
