"""
States of the ``jupyterhub`` formula that Salt has no equivalent for.

.. code-block:: yaml

    jupyterhub-cookie-secret-generated:
      jupyterhub.secret_present:
        - name: /etc/jupyterhub/jupyterhub_cookie_secret
        - user: root
        - group: jupyter
        - mode: "0640"

    jupyterhub-users-group-present:
      jupyterhub.server_group_present:
        - name: jupyterhub-users
        - members: [alice, bob]
"""

import os

from salt.exceptions import CommandExecutionError

__virtualname__ = "jupyterhub"


def __virtual__():
    if "jupyterhub.write_secret" in __salt__:
        return __virtualname__
    return (False, "the jupyterhub execution module is not loaded")


def _failed(ret, exc):
    ret.update(result=False, changes={}, comment=str(exc))
    return ret


def secret_present(
    name, nbytes=32, template="{secret}\n", user="root", group="root", mode="0600"
):
    """
    Make sure a secret generated on this host exists at ``name``.

    A missing or empty file gets a new random secret (hex of ``nbytes`` random bytes, placed
    into ``template`` at ``{secret}``); an existing secret is kept, only its owner and mode are
    corrected. The secret never appears in the state's return, the logs or the job cache.

    The file is handled without following symlinks: a symlink, a hard link or anything but a
    regular file at ``name`` fails the state and is left alone, and the directory must be owned
    and writable by root only.

    name
        Path of the secret file.

    nbytes
        Number of random bytes.

    template
        File contents, with ``{secret}`` where the secret goes (e.g. ``KEY={secret}``).

    user, group, mode
        Owner, group and mode of the file.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    mode = str(mode).zfill(4)
    try:
        have = __salt__["jupyterhub.secret_status"](name)
    except CommandExecutionError as exc:
        return _failed(ret, exc)
    if have is None or have["size"] == 0:
        ret["changes"] = {"secret": f"generated ({nbytes} random bytes)", "mode": mode}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"A new secret would be generated in {name}"
            return ret
        try:
            __salt__["jupyterhub.write_secret"](name, nbytes, template, user, group, mode)
        except CommandExecutionError as exc:
            return _failed(ret, exc)
        ret["comment"] = f"Generated a new secret in {name}"
        return ret

    want = {"user": user, "group": group, "mode": mode}
    diff = {k: {"old": have[k], "new": want[k]} for k in want if have[k] != want[k]}
    if not diff:
        ret["comment"] = f"Secret {name} is present"
        return ret
    ret["changes"] = diff
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Owner/mode of {name} would be corrected"
        return ret
    try:
        __salt__["jupyterhub.secret_fix"](name, user, group, mode)
    except CommandExecutionError as exc:
        return _failed(ret, exc)
    ret["comment"] = f"Corrected owner/mode of {name}"
    return ret


def server_group_present(
    name, members=None, privileged_groups=("sudo", "wheel", "admin"), min_uid=1000
):
    """
    The Unix group whose members may get Jupyter servers (the allow-list of the sudo rule).

    With ``members`` (a list), the group's members are exactly these accounts (removing a name
    removes it from the group); every one must exist and be unprivileged (see
    ``jupyterhub.privileged_reason``), else the state fails naming them and changes nothing.
    With ``members`` None the group is only created if missing (members managed elsewhere).

    name
        Group name.

    members
        Accounts in the group, or None.

    privileged_groups, min_uid
        What counts as privileged, as in ``jupyterhub.privileged_reason``.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if members is not None:
        try:
            __salt__["jupyterhub.check_server_users"](members, privileged_groups, min_uid)
        except CommandExecutionError as exc:
            return _failed(ret, exc)
    kwargs = {"name": name}
    if members is not None:
        kwargs["members"] = sorted(members)
    return __states__["group.present"](**kwargs)


def account_password_generated(name, password_file):
    """
    Give the existing account ``name`` a random password, written to ``password_file`` (root
    only, mode 0600) and set with ``chpasswd`` on its standard input. An account whose file
    already exists keeps its password. The password never appears on a command line, in the
    state's return or in the logs.

    name
        Account name.

    password_file
        Where the password is kept for the administrator (its directory must be root's).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        have = __salt__["jupyterhub.secret_status"](password_file)
    except CommandExecutionError as exc:
        return _failed(ret, exc)
    if have is not None and have["size"]:
        ret["comment"] = f"{name} has its password (in {password_file})"
        return ret
    ret["changes"] = {"password": f"generated, in {password_file}"}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"A password would be generated for {name}"
        return ret
    try:
        __salt__["jupyterhub.write_secret"](password_file, 9, "{secret}\n", "root", "root", "0600")
        with open(password_file, encoding="utf-8") as handle:
            password = handle.read().strip()
        result = __salt__["cmd.run_all"](
            ["chpasswd"], stdin=f"{name}:{password}\n", python_shell=False,
            output_loglevel="quiet", ignore_retcode=True,
        )
        if result["retcode"]:
            os.unlink(password_file)
            raise CommandExecutionError(f"chpasswd failed for {name}: {result['stderr']}")
    except CommandExecutionError as exc:
        return _failed(ret, exc)
    ret["comment"] = f"Generated a password for {name} in {password_file}"
    return ret


def postgres_database_present(name, owner, password_file, port=5432):
    """
    Make sure PostgreSQL (on this host) has the login role ``owner`` whose password is the one in
    ``password_file`` (e.g. generated by ``jupyterhub.secret_present``) and the database ``name``
    owned by it. The password never appears in a command line, the state's return or the logs.

    .. code-block:: yaml

        jupyterhub-database-present:
          jupyterhub.postgres_database_present:
            - name: jupyterhub
            - owner: jupyterhub
            - password_file: /etc/jupyterhub/database-password
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        status = __salt__["jupyterhub.postgres_status"](name, owner, password_file, port)
    except CommandExecutionError as exc:
        return _failed(ret, exc)
    todo = {
        key: what for key, what in (("role", f"login role {owner} created"),
                                     ("database", f"database {name} owned by {owner}"),
                                     ("password", "password set from " + password_file))
        if not status[key]
    }
    if not todo:
        ret["comment"] = f"database {name} of role {owner} is ready"
        return ret
    ret["changes"] = todo
    if __opts__["test"]:
        ret.update(result=None, comment=f"database {name} would be set up")
        return ret
    try:
        __salt__["jupyterhub.postgres_apply"](name, owner, password_file)
        status = __salt__["jupyterhub.postgres_status"](name, owner, password_file, port)
    except CommandExecutionError as exc:
        return _failed(ret, exc)
    if not all(status.values()):
        return _failed(ret, f"database {name} is still not ready: {status}")
    ret["comment"] = f"database {name} of role {owner} set up"
    return ret
