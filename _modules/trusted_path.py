"""
Can root trust a path? A file root reads, runs or writes next to must not be changeable by any
other account: the file and EVERY directory the kernel walks through to reach it (symlinks
followed, each link's own directory included) must be owned by root and not writable by group
or others.

:depends: nothing outside the standard library (this file also runs as a plain script, see below)

A group/other-writable directory is accepted only when it is sticky and owned by root (``/tmp``):
there nobody but root can replace root's entries, and the next component must still be root's.

Used by ``conda_env`` (locks, specs, the prefix lock next to the environment), the ``venv`` hub
environment and ``jupyterhub.salt_call_command`` (the checkout and Salt venv a root timer runs).

The same file is installed as ``/usr/local/sbin/jupyterhub-trust-check`` so that a root timer
re-checks its paths before it runs anything from them, without importing the code it checks::

    /usr/bin/python3 -I /usr/local/sbin/jupyterhub-trust-check [--recurse] PATH...

(exit 0: all trusted; 1: the reason on stderr).
"""

import os
import pwd
import stat
import sys

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # run as a script with the system Python (no Salt)

    class CommandExecutionError(Exception):
        """Stand-in for Salt's exception when this file runs as a script."""


__virtualname__ = "trusted_path"

#: Symlinks followed at most while resolving one path (the kernel's limit).
MAX_LINKS = 40


def __virtual__():
    return __virtualname__


def _owner(uid):
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def _verdict(path, info, last):
    """``(reason, fix)`` why root cannot trust the entry ``path`` (lstat ``info``), or None."""
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid != 0:
        return f"owned by {_owner(info.st_uid)}, not root", f"chown root: {path}"
    if mode & 0o022:
        if stat.S_ISDIR(info.st_mode) and mode & stat.S_ISVTX and not last:
            return None  # sticky and root's (like /tmp): the next component is checked
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if mode & bit)
        return f"writable by {who} (mode {mode:04o})", f"chmod go-w {path}"
    if not last and not stat.S_ISDIR(info.st_mode):
        return "not a directory", f"remove {path}"
    if last and not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
        return "neither a regular file nor a directory", f"remove {path}"
    return None


def find_problem(path, missing_ok=False):
    """
    The first entry on the way to ``path`` that root cannot trust, as
    ``{'component', 'reason', 'fix', 'via'}`` (``via``: the last symlink followed to get there,
    or None); None if ``path`` is trusted. Missing entries are a problem unless
    ``missing_ok`` (then everything that exists on the way must be trusted: root may create the
    rest).

    CLI Example:

    .. code-block:: bash

        salt-call trusted_path.find_problem /shared/conda/envs/jupyterhub.lock.yml
    """
    if not os.path.isabs(path):
        return {"component": path, "reason": "not an absolute path", "fix": "give an absolute path", "via": None}
    todo = [p for p in path.split("/") if p]
    current, via, links = "/", None, 0
    entry = "/"
    try:
        info = os.lstat("/")
        while True:
            problem = _verdict(entry, info, last=not todo)
            if problem:
                return {"component": entry, "reason": problem[0], "fix": problem[1], "via": via}
            current = entry
            while todo:
                name = todo.pop(0)
                if name == ".":
                    continue
                if name == "..":
                    current = os.path.dirname(current)
                    continue
                entry = os.path.join(current, name)
                info = os.lstat(entry)
                if not stat.S_ISLNK(info.st_mode):
                    break
                links += 1
                if links > MAX_LINKS:
                    return {"component": entry, "reason": "a symlink loop", "fix": f"remove {entry}", "via": via}
                target = os.readlink(entry)
                via = f"{entry} -> {target}"
                if target.startswith("/"):
                    current = "/"
                todo = [p for p in target.split("/") if p] + todo
            else:
                return None
    except FileNotFoundError:
        if missing_ok:
            return None
        return {"component": entry, "reason": "missing", "fix": f"create {entry}", "via": via}
    except OSError as exc:
        return {"component": entry, "reason": f"not accessible ({exc.strerror})", "fix": f"check {entry}", "via": via}


def _walk_problem(top):
    """First untrusted entry below the directory ``top`` (symlinks checked to their targets)."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in sorted(dirnames + filenames):
            entry = os.path.join(dirpath, name)
            info = os.lstat(entry)
            if stat.S_ISLNK(info.st_mode):
                problem = find_problem(entry)
            else:
                problem = _verdict(entry, info, last=True)
                problem = problem and {"component": entry, "reason": problem[0], "fix": problem[1], "via": None}
            if problem:
                return problem
    return None


def message(path, problem, what="", hint=""):
    """The error text for a ``problem`` of :py:func:`find_problem`."""
    via = f" (reached through the symlink {problem['via']})" if problem.get("via") else ""
    text = (
        f"{what + ' ' if what else ''}{path} cannot be trusted by root: {problem['component']} is "
        f"{problem['reason']}{via}; root only uses files that no other account can change. "
        f"Fix: {problem['fix']}"
    )
    return text + (f", or {hint}" if hint else "")


def check(path, missing_ok=False, recurse=False, what="", hint=""):
    """
    Return True if root can trust ``path``, else raise ``CommandExecutionError`` naming the path,
    the offending component and what to change (see :py:func:`find_problem`).

    missing_ok
        A missing ``path`` (or missing directories above it) is fine: root may create it.

    recurse
        Also check everything below a directory ``path`` (``.git`` directories are skipped).

    what, hint
        Words for the message: what the path is (``"conda lock"``) and an alternative fix
        (``"keep the lock in the state tree (salt://)"``).

    CLI Example:

    .. code-block:: bash

        salt-call trusted_path.check /shared/conda/envs/jupyterhub.lock.yml
        salt-call trusted_path.check /srv/salt-jupyterhub recurse=True
    """
    problem = find_problem(path, missing_ok=missing_ok)
    if problem is None and recurse and os.path.isdir(path):
        problem = _walk_problem(path)
    if problem:
        raise CommandExecutionError(message(path, problem, what, hint))
    return True


def main(argv):
    """Script use: ``[--recurse] PATH...``; exit 1 with the reason on stderr."""
    recurse = "--recurse" in argv
    paths = [a for a in argv if a != "--recurse"]
    if not paths:
        print("usage: jupyterhub-trust-check [--recurse] PATH...", file=sys.stderr)
        return 2
    for path in paths:
        try:
            check(path, recurse=recurse)
        except CommandExecutionError as exc:
            print(f"jupyterhub-trust-check: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
