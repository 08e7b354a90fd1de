"""
Conda environments managed with py-rattler (see the ``conda_env`` execution module).

.. code-block:: yaml

    jupyterhub-python-env:
      conda_env.present:
        - name: /opt/conda/envs/jupyterhub
        - spec: salt://jupyterhub/files/conda/jupyterhub.yml
        - lock_file: /etc/jupyterhub/conda/jupyterhub.lock.yml
        - pip_args: ['--no-index', '--find-links', '/srv/wheels']

    old-env:
      conda_env.absent:
        - name: scratch
        - root: /opt/conda
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "conda_env"


def __virtual__():
    if "conda_env.install" in __salt__:
        return __virtualname__
    return (False, "conda_env: the conda_env execution module is not available (py-rattler missing?)")


def _summary(changes):
    parts = []
    for section in ("conda", "pip"):
        items = changes.get(section) or {}
        if not items:
            continue
        add = sum(1 for c in items.values() if c.get("old") is None)
        rem = sum(1 for c in items.values() if c.get("new") is None)
        chg = len(items) - add - rem
        parts.append(f"{section}: {add} added, {rem} removed, {chg} changed")
    if "lock" in changes:
        parts.append(f"lock {changes['lock']['new']} recorded")
    return "; ".join(parts)


def present(
    name,
    spec=None,
    lock_file=None,
    channels=None,
    dependencies=None,
    pip=None,
    pip_args=None,
    root=None,
    pkgs_dir=None,
    frozen=False,
    saltenv=None,
):
    """
    Ensure a conda environment matches an environment spec (and its lock).

    name
        Environment name (under ``<root>/envs``) or absolute prefix.

    spec
        ``environment.yml`` (``channels``, ``dependencies``, optional ``- pip: [...]``) as a
        local path or ``salt://`` URL. Alternatively give ``channels``, ``dependencies`` and
        ``pip`` inline.

    lock_file
        Lock of the spec (local path or ``salt://``). Existing and matching: exactly its builds
        are installed. A missing (or stale) local lock is recorded from this solve.

    pip_args
        Extra ``pip install`` arguments (``--no-index``, ``--find-links DIR``, ``--index-url``).

    root
        conda root, for environment names (default ``conda_env.root`` config, ``/opt/conda``).

    pkgs_dir
        Package cache (default ``<root>/pkgs``).

    frozen
        Install only from an existing, matching lock; never solve.

    With ``test=True`` the result is ``None`` and ``changes`` holds exactly what an apply
    would change (``{'conda': {pkg: {'old', 'new'}}, 'pip': {...}, 'lock': {...}}``).
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = bool(__opts__.get("test"))
    try:
        changes = __salt__["conda_env.install"](
            name,
            spec=spec,
            lock_file=lock_file,
            channels=channels,
            dependencies=dependencies,
            pip=pip,
            pip_args=pip_args,
            root=root,
            pkgs_dir=pkgs_dir,
            frozen=frozen,
            test=test,
            saltenv=saltenv or __env__,
        )
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    if not changes:
        ret["comment"] = f"Conda environment {name} is in the desired state"
        return ret
    ret["changes"] = changes
    if test:
        ret["result"] = None
        ret["comment"] = f"Conda environment {name} would be changed ({_summary(changes)})"
    else:
        ret["comment"] = f"Conda environment {name} changed ({_summary(changes)})"
    return ret


def absent(name, root=None):
    """
    Ensure a conda environment (name under ``<root>/envs`` or absolute prefix) does not exist.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = bool(__opts__.get("test"))
    try:
        prefix = __salt__["conda_env.resolve_prefix"](name, root=root)
        removed = __salt__["conda_env.remove"](name, root=root, test=test)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    if not removed:
        ret["comment"] = f"Conda environment {prefix} is already absent"
        return ret
    ret["changes"] = {"removed": prefix}
    if test:
        ret["result"] = None
        ret["comment"] = f"Conda environment {prefix} would be removed"
    else:
        ret["comment"] = f"Conda environment {prefix} removed"
    return ret
