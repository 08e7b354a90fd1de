"""
Generate a small local conda channel of REAL conda packages (``.tar.bz2`` with
``info/index.json``, ``info/paths.json``, ``info/files`` and a payload), indexed with
``rattler.index.index_fs``, and tiny pure-Python wheels for a local wheelhouse.

These machines reach no conda channel (see /work/shared/notes/conda-offline.md); the
``conda_env`` module is driven against such a ``file://`` channel in the tests, through the same
rattler code path that would use conda-forge in production.

.. code-block:: python

    chan = LocalChannel(tmp_path / "channel")
    chan.add("alpha", "1.0")
    chan.add("beta", "1.0", depends=["alpha >=1"])
    chan.index()
    chan.url  # file:///.../channel
"""

import asyncio
import base64
import csv
import hashlib
import io
import json
import pathlib
import shutil
import tarfile
import zipfile


def _tar_add(tf, arcname, data, mode=0o644):
    info = tarfile.TarInfo(arcname)
    info.size = len(data)
    info.mtime = 1700000000
    info.mode = mode
    tf.addfile(info, io.BytesIO(data))


def build_package(
    channel_dir,
    name,
    version,
    build_number=0,
    depends=(),
    files=None,
    subdir="noarch",
    build=None,
    noarch="generic",
):
    """
    Write ``<channel_dir>/<subdir>/<name>-<version>-<build>.tar.bz2`` and return its path.
    ``files`` maps prefix-relative paths to text; default: ``share/<name>/VERSION``.
    ``noarch="python"`` makes a noarch Python package: its ``site-packages/...`` files are
    linked into ``lib/pythonX.Y/site-packages`` of the env (needs a ``python`` record).
    """
    build = build or f"h0_{build_number}"
    files = files if files is not None else {f"share/{name}/VERSION": f"{name} {version} {build}\n"}
    index = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": build_number,
        "depends": list(depends),
        "license": "MIT",
        "subdir": subdir,
        "timestamp": 1700000000000 + build_number,
    }
    if subdir == "noarch":
        index["noarch"] = noarch
    else:
        index["arch"], index["platform"] = "x86_64", "linux"
    payload = {p: c.encode() if isinstance(c, str) else c for p, c in files.items()}
    paths = {
        "paths_version": 1,
        "paths": [
            {
                "_path": p,
                "path_type": "hardlink",
                "sha256": hashlib.sha256(c).hexdigest(),
                "size_in_bytes": len(c),
            }
            for p, c in sorted(payload.items())
        ],
    }
    target = pathlib.Path(channel_dir, subdir)
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{name}-{version}-{build}.tar.bz2"
    with tarfile.open(path, "w:bz2") as tf:
        _tar_add(tf, "info/index.json", json.dumps(index, indent=1).encode())
        _tar_add(tf, "info/paths.json", json.dumps(paths, indent=1).encode())
        _tar_add(tf, "info/files", "".join(f"{p}\n" for p in sorted(payload)).encode())
        for p, c in sorted(payload.items()):
            _tar_add(tf, p, c)
    return path


class LocalChannel:
    """A conda channel directory with ``noarch`` and ``linux-64`` subdirs."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        for sub in ("noarch", "linux-64"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    @property
    def url(self):
        return self.path.resolve().as_uri()

    def add(self, name, version, **kwargs):
        return build_package(self.path, name, version, **kwargs)

    def remove(self, name, version, build=None):
        for sub in ("noarch", "linux-64"):
            for pkg in (self.path / sub).glob(f"{name}-{version}-{build or '*'}.tar.bz2"):
                pkg.unlink()

    def index(self):
        import rattler.index  # pylint: disable=import-outside-toplevel

        for sub in ("noarch", "linux-64"):
            for stale in (self.path / sub).glob("repodata*"):
                stale.unlink()
        asyncio.run(rattler.index.index_fs(self.path, write_zst=False, write_shards=False, force=True))
        return self


def build_wheel(wheelhouse, name, version, module_text=None):
    """
    Write a minimal pure-Python wheel ``<name>-<version>-py3-none-any.whl`` (one module
    ``<name>.py`` with ``__version__``) into ``wheelhouse`` and return its path.
    """
    wheelhouse = pathlib.Path(wheelhouse)
    wheelhouse.mkdir(parents=True, exist_ok=True)
    mod = name.replace("-", "_")
    dist = f"{mod}-{version}.dist-info"
    files = {
        f"{mod}.py": (module_text or f'__version__ = "{version}"\n').encode(),
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: test wheel\n"
        ).encode(),
        f"{dist}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: conda_channel.py\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        writer.writerow([path, f"sha256={digest}", len(data)])
    writer.writerow([f"{dist}/RECORD", "", ""])
    files[f"{dist}/RECORD"] = record.getvalue().encode()
    path = wheelhouse / f"{mod}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for arcname, data in files.items():
            zf.writestr(arcname, data)
    return path


def copy_channel(src, dst):
    """Copy a channel directory (e.g. to simulate a mirror)."""
    shutil.copytree(src, dst)
    return LocalChannel(dst)


__all__ = ["LocalChannel", "build_package", "build_wheel", "copy_channel"]
