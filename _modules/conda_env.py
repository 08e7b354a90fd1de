"""
Manage conda environments with `py-rattler`_ (the conda community's solver and installer).

:depends: py-rattler (in Salt's own Python), PyYAML, packaging

The module solves an ``environment.yml`` style spec (``channels``, ``dependencies`` and a
``pip:`` section) against conda channels and installs exactly the solved package builds into a
prefix. It never runs ``conda``: it only needs the channels to be reachable (``https://`` or a
local ``file://`` channel) and works on hosts that have no conda installed at all.

A *lock* records the solved builds of a spec (``conda_env.lock``) in a YAML file that is kept
and reviewed next to the spec. An environment applied from a lock gets exactly those builds, so
the same spec/lock applied on the hub host and on a cluster's shared filesystem yields identical
package sets, however the channel moved on in between.

Configuration (minion config or pillar, read with ``config.get``):

.. code-block:: yaml

    conda_env.root: /opt/conda       # environments named without a path live in <root>/envs
    conda_env.pkgs_dir: /opt/conda/pkgs   # package cache (default <root>/pkgs)

.. _py-rattler: https://conda.github.io/rattler/py-rattler/
"""

import asyncio
import collections
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
import time

import salt.utils.files
from salt.exceptions import CommandExecutionError, SaltInvocationError

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - Salt always ships PyYAML
    HAS_YAML = False

try:
    import rattler
    from rattler import MatchSpec, PackageRecord, PrefixRecord, RepoDataRecord, VirtualPackage

    HAS_RATTLER = True
except ImportError:
    HAS_RATTLER = False

try:
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    HAS_PACKAGING = True
except ImportError:  # pragma: no cover
    HAS_PACKAGING = False

log = logging.getLogger(__name__)

__virtualname__ = "conda_env"
__func_alias__ = {"list_": "list"}

#: Version of the lock file format written by :py:func:`lock`.
LOCK_VERSION = 1
#: File (inside ``<prefix>/conda-meta``, not ``*.json`` so conda/rattler ignore it) in which the
#: module remembers what it applied: spec hash and the pip packages it installed.
MARKER = "salt-conda_env.yml"
#: Keys of a package record kept in a lock (everything conda's ``index.json`` has, plus where the
#: package comes from).
_INDEX_KEYS = (
    "name",
    "version",
    "build",
    "build_number",
    "subdir",
    "arch",
    "platform",
    "noarch",
    "depends",
    "constrains",
    "track_features",
    "features",
    "license",
    "license_family",
    "timestamp",
    "python_site_packages_path",
)


def __virtual__():
    if not HAS_RATTLER:
        return (
            False,
            "conda_env: the py-rattler library is not installed in Salt's Python "
            "(pip install py-rattler into the Salt venv; packaged onedir Salt: "
            "salt-pip install py-rattler, then restart salt-minion)",
        )
    if not HAS_YAML or not HAS_PACKAGING:
        return (False, "conda_env: PyYAML and packaging are required")
    return __virtualname__


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _run(coro):
    """
    Run a rattler coroutine to completion, also when the caller already runs an event loop
    (then in a helper thread).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    result = {}

    def _target():
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # pylint: disable=broad-except
            result["error"] = exc

    thread = threading.Thread(target=_target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _root(root=None):
    if root:
        return os.path.abspath(root)
    return __salt__["config.get"]("conda_env.root", "/opt/conda")


def _pkgs_dir(root=None, pkgs_dir=None):
    if pkgs_dir:
        return os.path.abspath(pkgs_dir)
    configured = __salt__["config.get"]("conda_env.pkgs_dir", "")
    return configured or os.path.join(_root(root), "pkgs")


def resolve_prefix(name, root=None):
    """
    Return the prefix of an environment: ``name`` itself when it is an absolute path, else
    ``<root>/envs/<name>`` (``root`` defaults to the ``conda_env.root`` config value,
    ``/opt/conda``). The name ``base`` means ``<root>`` itself.

    CLI Example:

    .. code-block:: bash

        salt '*' conda_env.resolve_prefix jupyterhub root=/opt/conda
    """
    if not name:
        raise SaltInvocationError("conda_env: an environment name or prefix is required")
    if os.path.isabs(name):
        return os.path.normpath(name)
    if "/" in name or name in (".", ".."):
        raise SaltInvocationError(
            f"conda_env: '{name}' is neither an environment name nor an absolute prefix"
        )
    if name == "base":
        return _root(root)
    return os.path.join(_root(root), "envs", name)


#: How to get a lock or spec out of reach of other accounts (the end of a refusal message).
_KEEP_IN_STATE_TREE = "keep it in the state tree (salt://...) or in a directory only root can write"


def _trusted(path, what, missing_ok=False, hint=""):
    """
    Refuse (CommandExecutionError naming the component and the fix) a local path that root would
    read, or write next to, when an account other than root could change it or a directory
    above it (``trusted_path.check``).
    """
    __salt__["trusted_path.check"](path, missing_ok=missing_ok, what=f"conda_env: {what}", hint=hint)


def _open_private(path):
    """
    Open (creating it 0644 if missing) the file ``path`` read-write WITHOUT following a symlink
    and return the descriptor. Anything but a regular file with one link owned by this
    account (root) raises CommandExecutionError: nothing another account planted is used.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise CommandExecutionError(
            f"conda_env: cannot open {path} ({exc.strerror}; a symlink there is refused): remove it"
        )
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_nlink != 1:
        os.close(fd)
        raise CommandExecutionError(
            f"conda_env: {path} is not a regular file with one link owned by uid {os.geteuid()}: "
            "refusing to use it; remove it and apply again"
        )
    return fd


def _write_private(path, write):
    """
    Replace ``path`` atomically with what ``write(handle)`` writes to a new temporary file
    (created exclusively, mode 0644) in the same directory: a symlink at ``path`` is replaced,
    never followed.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd_, tmp = tempfile.mkstemp(prefix=".conda_env-tmp-", dir=directory)
    try:
        os.fchmod(fd_, 0o644)
        with os.fdopen(fd_, "w") as fh_:
            write(fh_)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def _fetch(source, saltenv):
    """Local path of ``source`` (local path or any URL ``cp.cache_file`` understands)."""
    if os.path.isabs(source):
        if not os.path.isfile(source):
            raise CommandExecutionError(f"conda_env: file not found: {source}")
        _trusted(source, "spec", hint=_KEEP_IN_STATE_TREE)
        return source
    if "://" not in source:
        raise SaltInvocationError(
            f"conda_env: '{source}' must be an absolute path or a salt:// (or other) URL"
        )
    cached = __salt__["cp.cache_file"](source, saltenv)
    if not cached:
        raise CommandExecutionError(f"conda_env: unable to fetch {source}")
    return cached


def _as_str_list(value, what):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise CommandExecutionError(f"conda_env: {what} must be a list of strings")
    return [str(v).strip() for v in value]


def _normalize_spec(data, origin="spec"):
    """
    Check an ``environment.yml`` mapping and return ``{channels, dependencies, pip}``.
    ``dependencies`` may hold one ``{pip: [...]}`` mapping (conda's own format).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CommandExecutionError(f"conda_env: {origin}: expected a mapping, got {type(data).__name__}")
    channels = [c for c in _as_str_list(data.get("channels"), "channels") if c != "nodefaults"]
    dependencies = []
    pip = _as_str_list(data.get("pip"), "pip")
    for item in data.get("dependencies") or []:
        if isinstance(item, dict):
            if set(item) != {"pip"}:
                raise CommandExecutionError(
                    f"conda_env: {origin}: unexpected mapping in dependencies: {sorted(item)}"
                )
            pip.extend(_as_str_list(item["pip"], "dependencies:pip"))
        elif isinstance(item, (str, int, float)):
            dependencies.append(str(item).strip())
        else:
            raise CommandExecutionError(f"conda_env: {origin}: bad dependency {item!r}")
    if not channels:
        raise CommandExecutionError(f"conda_env: {origin}: no channels")
    if not dependencies:
        raise CommandExecutionError(f"conda_env: {origin}: no dependencies")
    for dep in dependencies:
        try:
            MatchSpec(dep, strict=False)
        except Exception as exc:  # pylint: disable=broad-except
            raise CommandExecutionError(f"conda_env: {origin}: bad dependency '{dep}': {exc}")
    for req in pip:
        if req.startswith("-"):
            raise CommandExecutionError(
                f"conda_env: {origin}: pip options ('{req}') belong in pip_args, not the spec"
            )
        try:
            Requirement(req)
        except InvalidRequirement as exc:
            raise CommandExecutionError(f"conda_env: {origin}: bad pip requirement '{req}': {exc}")
    return {"channels": channels, "dependencies": dependencies, "pip": pip}


def _spec_sha256(spec):
    blob = json.dumps({k: spec[k] for k in ("channels", "dependencies", "pip")}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def parse_spec(spec=None, channels=None, dependencies=None, pip=None, saltenv="base"):
    """
    Load and check an environment spec and return it normalized as
    ``{channels, dependencies, pip, sha256}``.

    spec
        Path or URL (``salt://``, ``https://``...) of an ``environment.yml`` file
        (``channels``, ``dependencies`` with an optional ``- pip: [...]`` entry), or the
        same as a mapping.

    channels, dependencies, pip
        The same lists inline (used when ``spec`` is not given).

    CLI Example:

    .. code-block:: bash

        salt '*' conda_env.parse_spec salt://jupyterhub/files/conda/jupyterhub.yml
        salt '*' conda_env.parse_spec channels='[conda-forge]' dependencies='[python=3.11]'
    """
    if isinstance(spec, dict):
        data, origin = spec, "inline spec"
    elif spec:
        path = _fetch(spec, saltenv)
        try:
            with salt.utils.files.fopen(path, "r") as fh_:
                data = yaml.safe_load(fh_)
        except yaml.YAMLError as exc:
            raise CommandExecutionError(f"conda_env: {spec}: malformed YAML: {exc}")
        origin = spec
    else:
        data = {"channels": channels, "dependencies": dependencies, "pip": pip}
        origin = "inline spec"
    out = _normalize_spec(data, origin)
    out["sha256"] = _spec_sha256(out)
    return out


def _platforms():
    return [str(rattler.Subdir.current()), "noarch"]


def _virtual_packages():
    try:
        return VirtualPackage.detect()
    except Exception:  # pylint: disable=broad-except
        return []


def _gateway(pkgs_dir):
    return rattler.Gateway(cache_dir=os.path.join(pkgs_dir, "cache"))


def _solve(spec, pkgs_dir, locked=None):
    """Solve ``spec``; errors of the solver / channel access become CommandExecutionError."""
    specs = [MatchSpec(dep, strict=False) for dep in spec["dependencies"]]
    try:
        return _run(
            rattler.solve(
                sources=spec["channels"],
                specs=specs,
                gateway=_gateway(pkgs_dir),
                platforms=_platforms(),
                locked_packages=locked or None,
                virtual_packages=_virtual_packages(),
            )
        )
    except Exception as exc:  # pylint: disable=broad-except
        raise CommandExecutionError(f"conda_env: solving {spec['dependencies']} failed: {exc}")


#: What identifies an installed/locked/solved package build.
Ident = collections.namedtuple("Ident", "name version build subdir sha256")


def _ident(rec):
    """Ident of a rattler record (RepoDataRecord / PrefixRecord)."""
    return Ident(
        rec.name.normalized,
        str(rec.version),
        str(rec.build),
        rec.subdir,
        rec.sha256.hex() if rec.sha256 else None,
    )


def _ident_of(entry):
    """Ident of a package mapping (conda-meta JSON or lock entry)."""
    return Ident(
        str(entry["name"]),
        str(entry["version"]),
        str(entry["build"]),
        entry.get("subdir"),
        entry.get("sha256"),
    )


def _label(ident):
    return f"{ident.version}={ident.build}"


def _installed(prefix):
    """
    Installed conda packages of a prefix, {name: Ident}, read from ``conda-meta/*.json`` (plain
    JSON parsing: fast, so a no-op apply stays cheap).
    """
    meta = os.path.join(prefix, "conda-meta")
    out = {}
    if not os.path.isdir(meta):
        return out
    for fname in os.listdir(meta):
        if fname.endswith(".json"):
            try:
                with salt.utils.files.fopen(os.path.join(meta, fname), "rb") as fh_:
                    ident = _ident_of(json.load(fh_))
            except (OSError, ValueError, KeyError) as exc:
                raise CommandExecutionError(f"conda_env: unreadable package record {meta}/{fname}: {exc}")
            out[ident.name] = ident
    return out


def _installed_records(prefix):
    """Installed packages as rattler PrefixRecords (to prefer them in a solve)."""
    meta = os.path.join(prefix, "conda-meta")
    if not os.path.isdir(meta):
        return []
    return [PrefixRecord.from_path(os.path.join(meta, f)) for f in os.listdir(meta) if f.endswith(".json")]


def _same_build(a, b):
    if (a.version, a.build, a.subdir) != (b.version, b.build, b.subdir):
        return False
    if a.sha256 and b.sha256:
        return a.sha256 == b.sha256
    return True


def _conda_diff(installed, target):
    """{name: {'old': 'v=b'|None, 'new': 'v=b'|None}} between installed and target Idents."""
    changes = {}
    wanted = {i.name: i for i in target}
    for name, ident in wanted.items():
        cur = installed.get(name)
        if cur is None:
            changes[name] = {"old": None, "new": _label(ident)}
        elif not _same_build(cur, ident):
            changes[name] = {"old": _label(cur), "new": _label(ident)}
    for name, cur in installed.items():
        if name not in wanted:
            changes[name] = {"old": _label(cur), "new": None}
    return dict(sorted(changes.items()))


# ---- lock files -----------------------------------------------------------------------------


def _record_to_lock(rec):
    data = json.loads(rec.to_json())
    out = {k: data[k] for k in _INDEX_KEYS if data.get(k) not in (None, [], "")}
    out.update(
        {
            "url": rec.url,
            "channel": rec.channel,
            "fn": rec.file_name,
            "sha256": rec.sha256.hex() if rec.sha256 else None,
            "md5": rec.md5.hex() if rec.md5 else None,
            "size": rec.size,
        }
    )
    return out


def _record_from_lock(entry, tmpdir):
    index = {k: entry[k] for k in _INDEX_KEYS if k in entry}
    path = os.path.join(tmpdir, "index.json")
    with salt.utils.files.fopen(path, "w") as fh_:
        json.dump(index, fh_)
    prec = PackageRecord.from_index_json(
        path, size=entry.get("size"), sha256=entry.get("sha256"), md5=entry.get("md5")
    )
    return RepoDataRecord(prec, entry["fn"], entry["url"], entry["channel"])


class _Lock:
    """A parsed lock file; rattler records are only built when needed (install, solve)."""

    def __init__(self, path, platform, spec, spec_sha256, entries):
        self.path = path
        self.platform = platform
        self.spec = spec
        self.spec_sha256 = spec_sha256
        self.entries = entries
        self.idents = [_ident_of(e) for e in entries]
        self._records = None

    @property
    def records(self):
        if self._records is None:
            try:
                with tempfile.TemporaryDirectory() as tmpdir:
                    self._records = [_record_from_lock(e, tmpdir) for e in self.entries]
            except Exception as exc:  # pylint: disable=broad-except
                raise CommandExecutionError(f"conda_env: {self.path}: bad package entry: {exc}")
        return self._records


def _read_lock(path):
    """Parse and check a lock file (a :py:class:`_Lock`)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with salt.utils.files.fopen(path, "r") as fh_:
            data = yaml.load(fh_, Loader=loader)  # nosec: safe loader
    except (OSError, yaml.YAMLError) as exc:
        raise CommandExecutionError(f"conda_env: cannot read lock {path}: {exc}")
    if not isinstance(data, dict) or data.get("version") != LOCK_VERSION:
        raise CommandExecutionError(f"conda_env: {path} is not a conda_env lock (version {LOCK_VERSION})")
    spec = _normalize_spec(data.get("spec"), f"{path}: spec")
    spec["sha256"] = _spec_sha256(spec)
    entries = data.get("packages") or []
    try:
        return _Lock(path, data.get("platform"), spec, data.get("spec_sha256"), entries)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CommandExecutionError(f"conda_env: {path}: bad package entry: {exc!r}")


def _write_lock(path, spec, records):
    data = {
        "version": LOCK_VERSION,
        "platform": _platforms()[0],
        "spec_sha256": spec["sha256"],
        "spec": {k: spec[k] for k in ("channels", "dependencies", "pip")},
        "packages": [_record_to_lock(r) for r in sorted(records, key=lambda r: r.name.normalized)],
    }
    header = (
        "# conda_env lock: the exact package builds solved for `spec` below (written by\n"
        "# conda_env.lock / conda_env.present). Review it and keep it with the spec; every env\n"
        "# applied from it gets these builds. Re-record with: salt-call conda_env.lock SPEC LOCK\n"
    )
    directory = os.path.dirname(os.path.abspath(path))
    _trusted(directory, "lock directory", missing_ok=True, hint=_KEEP_IN_STATE_TREE)
    os.makedirs(directory, exist_ok=True)

    def write(fh_):
        fh_.write(header)
        yaml.safe_dump(data, fh_, sort_keys=False, default_flow_style=False)

    _write_private(path, write)


def _lock_location(lock_file, saltenv):
    """(local path or None, is_writable_local) for a lock argument."""
    if not lock_file:
        return None, False
    if os.path.isabs(lock_file):
        _trusted(lock_file, "lock", missing_ok=True, hint=_KEEP_IN_STATE_TREE)
        return lock_file, True
    if "://" in lock_file:
        cached = __salt__["cp.cache_file"](lock_file, saltenv)
        if not cached:
            raise CommandExecutionError(
                f"conda_env: lock {lock_file} not found. Record it with "
                f"'salt-call conda_env.lock <spec> <path>' and put it there (review it first)."
            )
        return cached, False
    raise SaltInvocationError(f"conda_env: lock_file '{lock_file}' must be an absolute path or a URL")


# ---- pip --------------------------------------------------------------------------------------


def _python(prefix):
    py = os.path.join(prefix, "bin", "python")
    return py if os.access(py, os.X_OK) else None


def _pip_cmd(python, *args):
    return [python, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]


def _pip_run(cmd, what):
    res = __salt__["cmd.run_all"](cmd, python_shell=False, output_loglevel="quiet", env={"PIP_YES": "1"})
    if res["retcode"] != 0:
        raise CommandExecutionError(
            f"conda_env: {what} failed: {(res.get('stderr') or res.get('stdout') or '').strip()}"
        )
    return res["stdout"]


def _pip_installed(python):
    out = _pip_run(_pip_cmd(python, "list", "--format=json"), "pip list")
    return {canonicalize_name(p["name"]): p["version"] for p in json.loads(out or "[]")}


def _pip_plan(python, requirements, pip_args, managed_before):
    """
    pip changes {name: {'old','new'}} predicted by ``pip install --dry-run --report``, plus
    removals of packages this module installed before that left the spec.
    """
    installed = _pip_installed(python)
    changes = {}
    if requirements:
        cmd = _pip_cmd(python, "install", "--dry-run", "--quiet", "--report", "-", *pip_args, *requirements)
        report = json.loads(_pip_run(cmd, "pip install --dry-run") or "{}")
        for item in report.get("install", []):
            name = canonicalize_name(item["metadata"]["name"])
            changes[name] = {"old": installed.get(name), "new": item["metadata"]["version"]}
    wanted = {canonicalize_name(Requirement(r).name) for r in requirements}
    for name in sorted(set(managed_before) - wanted):
        if name in installed:
            changes[name] = {"old": installed[name], "new": None}
    return dict(sorted(changes.items())), sorted(wanted)


def _read_marker(prefix):
    path = os.path.join(prefix, "conda-meta", MARKER)
    try:
        with salt.utils.files.fopen(path, "r") as fh_:
            return yaml.safe_load(fh_) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _write_marker(prefix, data):
    path = os.path.join(prefix, "conda-meta", MARKER)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _write_private(path, lambda fh_: yaml.safe_dump(data, fh_, sort_keys=True))


# --------------------------------------------------------------------------------------------
# planning and applying
# --------------------------------------------------------------------------------------------


def _target(spec, lock_file, saltenv, pkgs_dir, prefix, frozen):
    """
    What the env must hold, and what happens to the lock: returns
    ``(spec, idents, get_records, lock_action, lock_path)``; ``get_records()`` gives the rattler
    records (built lazily from a lock: a no-op apply never needs them); ``lock_action`` is
    None, 'record' or 'update'.
    """
    lock_path, writable = _lock_location(lock_file, saltenv)
    lock = _read_lock(lock_path) if lock_path and os.path.isfile(lock_path) else None
    if spec is None:
        if lock is None:
            raise SaltInvocationError(
                "conda_env: give a spec (file or inline lists) or an existing lock_file"
            )
        spec = lock.spec
    if lock is not None and lock.spec_sha256 == spec["sha256"] and lock.platform == _platforms()[0]:
        return spec, lock.idents, lambda: lock.records, None, lock_path
    if lock is not None and not writable:
        raise CommandExecutionError(
            f"conda_env: lock {lock_file} was recorded from a different spec (or platform); "
            "re-record it with conda_env.lock and review it"
        )
    if frozen:
        why = "missing" if lock is None else "recorded from a different spec"
        raise CommandExecutionError(
            f"conda_env: frozen: lock {lock_file or '(none given)'} is {why}; not solving. "
            "Record and review the lock with conda_env.lock first."
        )
    # Prefer what is locked (or installed) so that only what the spec change needs moves.
    prefer = lock.records if lock is not None else _installed_records(prefix)
    records = _solve(spec, pkgs_dir, locked=prefer)
    action = None
    if lock_path:
        action = "record" if lock is None else "update"
    return spec, [_ident(r) for r in records], lambda: records, action, lock_path


def _plan(name, spec, lock_file, root, pkgs_dir, pip_args, frozen, saltenv, channels, dependencies, pip):
    prefix = resolve_prefix(name, root)
    pkgs = _pkgs_dir(root, pkgs_dir)
    parsed = None
    if spec is not None or dependencies:
        parsed = parse_spec(spec, channels, dependencies, pip, saltenv)
    installed = _installed(prefix)
    parsed, idents, get_records, lock_action, lock_path = _target(
        parsed, lock_file, saltenv, pkgs, prefix, frozen
    )
    conda_changes = _conda_diff(installed, idents)
    marker = _read_marker(prefix)
    plan = {
        "prefix": prefix,
        "pkgs_dir": pkgs,
        "spec": parsed,
        "idents": idents,
        "get_records": get_records,
        "conda": conda_changes,
        "pip": {},
        "pip_managed": marker.get("pip", []),
        "pip_pending": False,
        "lock_action": lock_action,
        "lock_path": lock_path,
        "pip_args": list(pip_args or []),
        "marker": marker,
    }
    python = _python(prefix)
    python_in_target = "python" in {i.name for i in idents}
    if parsed["pip"] or marker.get("pip"):
        if python and not ("python" in conda_changes and python_in_target):
            plan["pip"], plan["pip_managed"] = _pip_plan(
                python, parsed["pip"], plan["pip_args"], marker.get("pip", [])
            )
        elif python_in_target:
            # python arrives (or changes) with this transaction: pip resolves after it.
            plan["pip_pending"] = bool(parsed["pip"])
        elif parsed["pip"]:
            raise CommandExecutionError(
                f"conda_env: the spec has a pip section but {prefix} has no python "
                "(add python to the dependencies)"
            )
    return plan


def _changes(plan):
    changes = {}
    if plan["conda"]:
        changes["conda"] = plan["conda"]
    if plan["pip"]:
        changes["pip"] = plan["pip"]
    elif plan["pip_pending"]:
        changes["pip"] = {
            "requirements": {"old": None, "new": plan["spec"]["pip"]},
        }
    if plan["lock_action"]:
        changes["lock"] = {
            "old": None if plan["lock_action"] == "record" else "stale",
            "new": plan["lock_path"],
        }
    return changes


def _prefetch(records, pkgs_dir):
    """
    Download and unpack ``records`` into the package cache through a throw-away prefix, so a
    download/unpack error happens before the real environment is touched.
    """
    if not records:
        return
    os.makedirs(pkgs_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".conda_env-stage-", dir=pkgs_dir)
    try:
        _run(rattler.install(records, target_prefix=staging, cache_dir=pkgs_dir, show_progress=False))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _requested_specs(spec):
    """
    The spec's MatchSpecs for the ``requested_specs`` of the conda-meta records (py-rattler
    0.28's ``install`` hands this list to the Rust side unconverted, so pass the inner objects).
    """
    specs = [MatchSpec(d, strict=False) for d in spec["dependencies"]]
    return [getattr(m, "_match_spec", m) for m in specs]


def _apply(plan):
    prefix = plan["prefix"]
    spec = plan["spec"]
    if plan["conda"]:
        new = {n for n, c in plan["conda"].items() if c["new"] is not None}
        records = plan["get_records"]()
        try:
            stage = [r for r in records if r.name.normalized in new]
            if any(r.noarch.python for r in stage):
                # linking a noarch: python package needs the env's python record
                stage += [r for r in records if r.name.normalized == "python" and "python" not in new]
            _prefetch(stage, plan["pkgs_dir"])
        except Exception as exc:  # pylint: disable=broad-except
            raise CommandExecutionError(
                f"conda_env: fetching packages failed, {prefix} left unchanged: {exc}"
            )
        try:
            _run(
                rattler.install(
                    records,
                    target_prefix=prefix,
                    cache_dir=plan["pkgs_dir"],
                    show_progress=False,
                    requested_specs=_requested_specs(spec),
                )
            )
        except Exception as exc:  # pylint: disable=broad-except
            raise CommandExecutionError(f"conda_env: installing into {prefix} failed: {exc}")
    if plan["lock_action"]:
        _write_lock(plan["lock_path"], spec, plan["get_records"]())
    pip_changes = plan["pip"]
    if plan["pip_pending"] or pip_changes:
        python = _python(prefix)
        if not python:
            raise CommandExecutionError(f"conda_env: {prefix} has no bin/python for the pip section")
        if plan["pip_pending"]:
            pip_changes, _ = _pip_plan(python, spec["pip"], plan["pip_args"], plan["marker"].get("pip", []))
        remove = sorted(n for n, c in pip_changes.items() if c["new"] is None)
        if remove:
            _pip_run(_pip_cmd(python, "uninstall", "--yes", *remove), "pip uninstall")
        if any(c["new"] is not None for c in pip_changes.values()):
            _pip_run(_pip_cmd(python, "install", "--quiet", *plan["pip_args"], *spec["pip"]), "pip install")
    marker = {
        "spec_sha256": spec["sha256"],
        "pip": sorted({canonicalize_name(Requirement(r).name) for r in spec["pip"]}),
    }
    if os.path.isdir(prefix) and marker != plan["marker"]:
        _write_marker(prefix, marker)
    changes = _changes(plan)
    if pip_changes:
        changes["pip"] = pip_changes
    return changes


def install(
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
    test=False,
    saltenv="base",
):
    """
    Make the environment ``name`` match a spec (or a lock) and return the changes
    ``{'conda': {pkg: {'old', 'new'}}, 'pip': {...}, 'lock': {...}}`` (empty: nothing to do).

    The spec is solved first; a solver, channel or spec error raises and leaves the
    environment untouched. New packages are downloaded and unpacked before the environment is
    changed; then one rattler transaction adds, removes, up- and downgrades exactly what
    differs. The pip section is applied with the environment's own ``python -m pip``.

    name
        Environment name (under ``<root>/envs``) or absolute prefix.

    spec
        ``environment.yml`` path or URL (``salt://...``); or use ``channels``,
        ``dependencies`` and ``pip`` inline.

    lock_file
        Lock of the spec (see :py:func:`lock`). If it exists and was recorded from this spec,
        exactly its builds are installed (no solve). A local path that is missing (or was
        recorded from an older spec) is (re-)recorded from this solve; a ``salt://`` lock must
        exist and match.

    pip_args
        Extra ``pip install`` arguments, e.g. ``['--no-index', '--find-links', '/srv/wheels']``.

    root
        conda root (default: ``conda_env.root`` config, ``/opt/conda``).

    pkgs_dir
        Package cache (default ``<root>/pkgs``).

    frozen
        Never solve: fail unless ``lock_file`` exists and matches the spec (what an unattended
        update uses).

    test
        Only return the changes that would be made.

    CLI Example:

    .. code-block:: bash

        salt '*' conda_env.install jupyterhub spec=salt://jupyterhub/files/conda/jupyterhub.yml
        salt '*' conda_env.install /shared/envs/jh lock_file=/shared/envs/jh.lock.yml frozen=True test=True
    """
    args = (name, spec, lock_file, root, pkgs_dir, pip_args, frozen, saltenv, channels, dependencies, pip)
    if test:
        return _changes(_plan(*args))
    prefix = resolve_prefix(name, root)
    _trusted(prefix, "environment prefix", missing_ok=True)
    _trusted(_pkgs_dir(root, pkgs_dir), "package cache", missing_ok=True)
    with _prefix_lock(prefix):
        return _apply(_plan(*args))


@contextlib.contextmanager
def _prefix_lock(prefix, timeout=600):
    """
    Exclusive lock of one environment (``.<name>.conda_env-lock`` next to the prefix, so it also
    works before the prefix exists), so that two applies (e.g. two hosts on a shared filesystem)
    do not change one environment at the same time.
    """
    parent, base = os.path.split(prefix.rstrip("/"))
    _trusted(parent, "directory of the environment", missing_ok=True)
    os.makedirs(parent, exist_ok=True)
    path = os.path.join(parent, f".{base}.conda_env-lock")
    with os.fdopen(_open_private(path), "a") as fh_:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh_.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise CommandExecutionError(f"conda_env: {prefix} is locked by another apply ({path})")
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(fh_.fileno(), fcntl.LOCK_UN)


def lock(
    spec=None,
    lock_file=None,
    channels=None,
    dependencies=None,
    pip=None,
    update=False,
    root=None,
    pkgs_dir=None,
    saltenv="base",
):
    """
    Solve a spec and record the exact builds in ``lock_file`` (YAML, written atomically).
    Returns ``{'lock_file', 'packages': {name: 'version=build'}, 'changes': {...}}``.

    When the lock exists, its builds are preferred (only what the spec change needs moves);
    ``update=True`` solves afresh to pick up newer builds. Review the diff (``changes``)
    before committing the lock.

    CLI Example:

    .. code-block:: bash

        salt-call conda_env.lock salt://jupyterhub/files/conda/jupyterhub.yml /srv/locks/jupyterhub.lock.yml
        salt-call conda_env.lock /srv/jh.yml /srv/jh.lock.yml update=True
    """
    if not lock_file or not os.path.isabs(lock_file):
        raise SaltInvocationError("conda_env.lock: lock_file must be an absolute local path")
    _trusted(lock_file, "lock", missing_ok=True, hint=_KEEP_IN_STATE_TREE)
    parsed = parse_spec(spec, channels, dependencies, pip, saltenv)
    old = _read_lock(lock_file) if os.path.isfile(lock_file) else None
    records = _solve(parsed, _pkgs_dir(root, pkgs_dir), locked=None if update or not old else old.records)
    _write_lock(lock_file, parsed, records)
    idents = sorted((_ident(r) for r in records), key=lambda i: i.name)
    return {
        "lock_file": lock_file,
        "packages": {i.name: _label(i) for i in idents},
        "changes": _conda_diff({i.name: i for i in old.idents} if old else {}, idents),
    }


def drift(
    name,
    spec=None,
    lock_file=None,
    channels=None,
    dependencies=None,
    pip=None,
    pip_args=None,
    root=None,
    pkgs_dir=None,
    saltenv="base",
):
    """
    Report the drift of an environment from its lock (or, without a lock, from its spec):
    ``{'prefix', 'in_sync': bool, 'conda': {pkg: {'old': installed, 'new': wanted}},
    'pip': {...}}``. Nothing is changed and the lock is never written.

    CLI Example:

    .. code-block:: bash

        salt '*' conda_env.drift jupyterhub lock_file=salt://jupyterhub/files/conda/jupyterhub.lock.yml
    """
    plan = _plan(name, spec, lock_file, root, pkgs_dir, pip_args, False, saltenv, channels, dependencies, pip)
    return {
        "prefix": plan["prefix"],
        "in_sync": not (plan["conda"] or plan["pip"] or plan["pip_pending"]),
        "conda": plan["conda"],
        "pip": plan["pip"],
        "lock_stale": bool(plan["lock_action"] == "update"),
    }


def update_report(
    name,
    spec=None,
    lock_file=None,
    channels=None,
    dependencies=None,
    pip=None,
    pip_args=None,
    root=None,
    pkgs_dir=None,
    apply=False,
    saltenv="base",
):
    """
    What the env-update timer runs: compare the environment with its reviewed lock (never
    solving, ``frozen``), log the diff, and apply it only when ``apply=True``.
    A missing or stale lock, or a failed update, is reported with ``result: False`` and leaves
    the environment as it was (or, for a failed transaction, as rattler left it; the old builds
    stay in the package cache).

    Returns ``{'prefix', 'result', 'applied', 'changes', 'comment'}``.

    CLI Example:

    .. code-block:: bash

        salt-call --out=json conda_env.update_report jupyterhub lock_file=/etc/jupyterhub/conda/jupyterhub.lock.yml
        salt-call conda_env.update_report /shared/envs/jh lock_file=... apply=True
    """
    prefix = resolve_prefix(name, root)
    ret = {"prefix": prefix, "result": True, "applied": False, "changes": {}, "comment": ""}
    kwargs = dict(
        spec=spec,
        lock_file=lock_file,
        channels=channels,
        dependencies=dependencies,
        pip=pip,
        pip_args=pip_args,
        root=root,
        pkgs_dir=pkgs_dir,
        frozen=True,
        saltenv=saltenv,
    )
    try:
        ret["changes"] = install(name, test=True, **kwargs)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, comment=f"update check failed: {exc}")
        log.error("conda_env.update_report %s: %s", prefix, ret["comment"])
        return ret
    if not ret["changes"]:
        ret["comment"] = f"{prefix} matches its lock"
        return ret
    log.warning("conda_env.update_report %s: pending changes %s", prefix, json.dumps(ret["changes"]))
    if not apply:
        ret["comment"] = f"{prefix} differs from its lock; unattended updates are off, not applied"
        return ret
    try:
        ret["changes"] = install(name, test=False, **kwargs)
        ret["applied"] = True
        ret["comment"] = f"{prefix} updated to its lock"
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, comment=f"update failed: {exc}")
        log.error("conda_env.update_report %s: %s", prefix, ret["comment"])
    return ret


def list_(name, root=None):
    """
    Installed conda packages of an environment: ``{name: 'version=build'}``.

    CLI Example:

    .. code-block:: bash

        salt '*' conda_env.list jupyterhub
    """
    prefix = resolve_prefix(name, root)
    return {n: _label(i) for n, i in sorted(_installed(prefix).items())}


def exists(name, root=None):
    """
    True if the environment exists (its prefix holds ``conda-meta``).

    CLI Example:

    .. code-block:: bash

        salt '*' conda_env.exists jupyterhub
    """
    return os.path.isdir(os.path.join(resolve_prefix(name, root), "conda-meta"))


def remove(name, root=None, test=False):
    """
    Delete an environment (its whole prefix). Refuses prefixes without ``conda-meta`` and the
    conda root itself. Returns True if something was (or, with ``test``, would be) removed.

    CLI Example:

    .. code-block:: bash

        salt '*' conda_env.remove oldenv
    """
    prefix = resolve_prefix(name, root)
    if not os.path.exists(prefix):
        return False
    if prefix in ("/", _root(root)) or not os.path.isdir(os.path.join(prefix, "conda-meta")):
        raise CommandExecutionError(f"conda_env: {prefix} is not a conda environment, not removing it")
    if test:
        return True
    try:
        shutil.rmtree(prefix)
    except OSError as exc:
        raise CommandExecutionError(f"conda_env: removing {prefix} failed: {exc}")
    return True
