"""
States of the ``jupyterhub`` formula that Salt has no equivalent for.

.. code-block:: yaml

    jupyterhub-cookie-secret-generated:
      jupyterhub.secret_present:
        - name: /srv/jupyterhub/jupyterhub_cookie_secret
        - user: jupyter
        - group: jupyter
"""

import grp
import os
import pwd
import stat

__virtualname__ = "jupyterhub"


def __virtual__():
    if "jupyterhub.write_secret" in __salt__:
        return __virtualname__
    return (False, "the jupyterhub execution module is not loaded")


def secret_present(
    name, nbytes=32, template="{secret}\n", user="root", group="root", mode="0600"
):
    """
    Make sure a secret generated on this host exists at ``name``.

    A missing or empty file gets a new random secret (hex of ``nbytes`` random bytes, placed
    into ``template`` at ``{secret}``); an existing secret is kept, only its owner and mode are
    corrected. The secret never appears in the state's return, the logs or the job cache.

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
        current = os.stat(name)
    except FileNotFoundError:
        current = None
    if current is None or current.st_size == 0:
        ret["changes"] = {"secret": f"generated ({nbytes} random bytes)", "mode": mode}
        if __opts__["test"]:
            ret["result"] = None
            ret["comment"] = f"A new secret would be generated in {name}"
            return ret
        __salt__["jupyterhub.write_secret"](name, nbytes, template, user, group, mode)
        ret["comment"] = f"Generated a new secret in {name}"
        return ret

    want = {"user": user, "group": group, "mode": mode}
    have = {
        "user": pwd.getpwuid(current.st_uid).pw_name,
        "group": grp.getgrgid(current.st_gid).gr_name,
        "mode": f"{stat.S_IMODE(current.st_mode):04o}",
    }
    diff = {k: {"old": have[k], "new": want[k]} for k in want if have[k] != want[k]}
    if not diff:
        ret["comment"] = f"Secret {name} is present"
        return ret
    ret["changes"] = diff
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Owner/mode of {name} would be corrected"
        return ret
    os.chown(name, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
    os.chmod(name, int(mode, 8))
    ret["comment"] = f"Corrected owner/mode of {name}"
    return ret
