"""A PEP 517 build backend for this one pure-Python package, standard library only: the wheel
holds ``sgespawner/*.py`` and its metadata (name, version, dependencies and entry points from
pyproject.toml). No setuptools or wheel needed, so the role installs the package offline into
any env that has pip (venv or conda).

Run as a script (``python backend.py --installed``), it exits 0 when the package installed in
that Python is exactly this source tree (same version and files), else 1: the role's ``unless``.
"""

import base64
import hashlib
import io
import os
import re
import sys
import zipfile

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "sgespawner"


def _project():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        if tomllib is not None:
            return tomllib.load(handle)["project"]
    return _parse_minimal(open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read())


def _parse_minimal(text):
    """Enough TOML for this pyproject.toml (strings, lists of strings, tables) on Python 3.10."""
    import ast

    data, table = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            table = data.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        table[key.strip().strip('"')] = ast.literal_eval(value.strip())
    project = data["project"]
    project["entry-points"] = {
        name.split(".", 2)[2].strip('"'): values for name, values in data.items()
        if name.startswith("project.entry-points.")
    }
    return project


def _sources():
    """(path in the wheel, bytes) of the package's modules, sorted."""
    directory = os.path.join(ROOT, PACKAGE)
    names = sorted(n for n in os.listdir(directory) if n.endswith(".py"))
    return [(f"{PACKAGE}/{n}", open(os.path.join(directory, n), "rb").read()) for n in names]


def _dist_info(project):
    lines = [
        "Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {project['version']}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '')}",
    ] + [f"Requires-Dist: {dep}" for dep in project.get("dependencies", [])]
    entry_points = "".join(
        f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in sorted(items.items())) + "\n"
        for group, items in sorted(project.get("entry-points", {}).items())
    )
    wheel = "Wheel-Version: 1.0\nGenerator: sgespawner-backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    return {"METADATA": "\n".join(lines) + "\n", "WHEEL": wheel, "entry_points.txt": entry_points}


def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    project = _project()
    name, version = project["name"], project["version"]
    dist_info = f"{name}-{version}.dist-info"
    files = _sources() + [(f"{dist_info}/{k}", v.encode()) for k, v in _dist_info(project).items()]
    record = "".join(f"{path},{_digest(data)},{len(data)}\n" for path, data in files)
    record += f"{dist_info}/RECORD,,\n"
    filename = f"{name}-{version}-py3-none-any.whl"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in files + [(f"{dist_info}/RECORD", record.encode())]:
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            wheel.writestr(info, data)
    with open(os.path.join(wheel_directory, filename), "wb") as handle:
        handle.write(buffer.getvalue())
    return filename


def get_requires_for_build_wheel(config_settings=None):
    return []


def installed():
    """Is the package installed in this Python exactly this tree? (version and module files)"""
    from importlib import metadata

    project = _project()
    try:
        dist = metadata.distribution(project["name"])
    except metadata.PackageNotFoundError:
        return False
    if dist.version != project["version"]:
        return False
    wanted = dict(_sources())
    have = {str(f).replace(os.sep, "/"): f for f in dist.files or [] if re.fullmatch(
        rf"{PACKAGE}/[^/]+\.py", str(f).replace(os.sep, "/"))}
    if set(have) != set(wanted):
        return False
    return all(dist.locate_file(have[path]).read_bytes() == data for path, data in wanted.items())


if __name__ == "__main__":
    if sys.argv[1:] != ["--installed"]:
        sys.exit("usage: backend.py --installed")
    sys.exit(0 if installed() else 1)
