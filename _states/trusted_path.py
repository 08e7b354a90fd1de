"""
Fail unless root can trust a path (see the ``trusted_path`` execution module): the path and
every directory above it owned by root and writable by root only.

.. code-block:: yaml

    hub-lock-trusted:
      trusted_path.checked:
        - name: /opt/jupyterhub/venv/requirements.lock

    later-step:
      cmd.run:
        - name: ...
        - require:
          - trusted_path: hub-lock-trusted
"""

from salt.exceptions import CommandExecutionError

__virtualname__ = "trusted_path"


def __virtual__():
    if "trusted_path.check" in __salt__:
        return __virtualname__
    return (False, "trusted_path: the trusted_path execution module is not loaded")


def checked(name, missing_ok=False, recurse=False, hint=""):
    """
    Check that root can trust ``name``; changes nothing.

    name
        Absolute path of a file or directory.

    missing_ok
        A missing path (root may create it) is fine.

    recurse
        Also check everything below the directory ``name``.

    hint
        Another way to fix a refusal, appended to the message.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": f"{name} can be trusted by root"}
    try:
        __salt__["trusted_path.check"](name, missing_ok=missing_ok, recurse=recurse, hint=hint)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
    return ret
