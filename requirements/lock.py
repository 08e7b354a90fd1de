#!/usr/bin/env python3
"""
Write a pip lock with hashes: every pinned requirement ``name==version`` followed by the sha256
of EVERY distribution file of that version on the package index (wheels for all platforms and
the sdist), so ``pip install --require-hashes -r LOCK`` accepts whichever file pip picks on the
target host and refuses anything else.

Usage (from the repository root, with network access to the package index)::

    # refresh the hashes of the pins already in a lock (versions unchanged)
    python3 requirements/lock.py salt/jupyterhub/files/hub-requirements.lock

    # re-resolve a lock from its .in file (newest versions allowed by the .in), then hash it;
    # resolves with /usr/bin/python3 (Debian 12: CPython 3.11) in a throw-away venv
    python3 requirements/lock.py --from requirements/hub.in salt/jupyterhub/files/hub-requirements.lock

Packages named in ``# left-out: NAME`` lines (of the .in file or the lock's header; the format
is check-lock.py's, which removes them from existing envs) are dropped from a re-resolved lock.
Review the diff before committing. Lines that are not pins (comments, ``-r other.lock``) are kept
as they are; pins of the lock's own comment header stay on top. Only the standard library
is used. The index is the Simple API (PEP 691 JSON) of ``$PIP_LOCK_INDEX`` (default
https://pypi.org/simple).

Build dependencies: salt's ``timelib`` has no wheel; pip builds it from its sdist in an isolated
build environment. pip does not hash-check that environment's own installs (setuptools), which
come from the index; ``bootstrap.sh`` therefore installs the pinned, hashed build tools of
``requirements/build.lock`` first and builds with ``--no-build-isolation``.
"""

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import urllib.request

# the lock format's reader that the hub role installs; one definition of `# left-out:` lines
_spec = importlib.util.spec_from_file_location(
    "check_lock", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "salt/jupyterhub/files/check-lock.py"))
check_lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_lock)

INDEX = os.environ.get("PIP_LOCK_INDEX", "https://pypi.org/simple").rstrip("/")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#\\]+)\s*(;[^#\\]*)?")


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _file_version(filename, name):
    """Version part of a wheel or sdist file name of project ``name`` (None if not one)."""
    base = canonical(name).replace("-", "_")
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return parts[1] if canonical(parts[0]).replace("-", "_") == base else None
    for ext in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if filename.endswith(ext):
            stem = filename[: -len(ext)]
            project, _, version = stem.rpartition("-")
            return version if canonical(project).replace("-", "_") == base else None
    return None


def _normal_version(version):
    """Compare versions loosely the way the index spells them (1.0 == 1.0.0 is not needed)."""
    return version.lower().replace("_", "-")


def hashes(name, version):
    """sha256 of every file of ``name==version`` on the index (sorted)."""
    req = urllib.request.Request(
        f"{INDEX}/{canonical(name)}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:  # nosec: the configured index
        files = json.load(resp)["files"]
    found = sorted(
        {
            f["hashes"]["sha256"]
            for f in files
            if "sha256" in f.get("hashes", {})
            and _normal_version(_file_version(f["filename"], name) or "") == _normal_version(version)
        }
    )
    if not found:
        raise SystemExit(f"lock.py: no file of {name}=={version} on {INDEX}")
    return found


def resolve(infile):
    """Pins ``[(name, version)]`` that pip resolves for ``infile`` on /usr/bin/python3."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["/usr/bin/python3", "-m", "venv", f"{tmp}/venv"], check=True)
        report = f"{tmp}/report.json"
        subprocess.run(
            [f"{tmp}/venv/bin/python", "-m", "pip", "install", "--quiet", "--dry-run",
             "--ignore-installed", "--report", report, "-r", infile],
            check=True,
        )
        with open(report, encoding="utf-8") as handle:
            items = json.load(handle)["install"]
    return sorted(
        ((i["metadata"]["name"], i["metadata"]["version"]) for i in items),
        key=lambda p: canonical(p[0]),
    )


def render(lines):
    """Lock text: non-pin lines kept, each pin followed by its hashes."""
    out = []
    for line in lines:
        match = PIN.match(line.strip())
        if not match:
            out.append(line.rstrip("\n"))
            continue
        name, version, marker = match.groups()
        pin = f"{name}=={version}" + (f" {marker.strip()}" if marker else "")
        out.append(f"{pin} \\")
        digests = hashes(name, version)
        out.extend(
            f"    --hash=sha256:{d}" + (" \\" if i < len(digests) - 1 else "")
            for i, d in enumerate(digests)
        )
    return "\n".join(out) + "\n"


def read_pins(path):
    """Lines of an existing lock with continuation lines (hashes) dropped."""
    with open(path, encoding="utf-8") as handle:
        return [ln for ln in handle if not ln.lstrip().startswith("--hash=")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("lock", help="lock file to (re)write")
    parser.add_argument("--from", dest="infile", help="re-resolve the pins from this .in file")
    args = parser.parse_args(argv)
    lines = read_pins(args.lock) if os.path.exists(args.lock) else []
    if args.infile:
        header = [ln for ln in lines if ln.startswith("#") or ln.startswith("-r")]
        with open(args.infile, encoding="utf-8") as handle:
            skip = {canonical(n) for n in check_lock.left_out("".join(header) + handle.read())}
        lines = header + [f"{n}=={v}\n" for n, v in resolve(args.infile) if canonical(n) not in skip]
    text = render(lines)
    with open(args.lock + ".tmp", "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(args.lock + ".tmp", args.lock)
    print(f"lock.py: wrote {args.lock}", file=sys.stderr)


if __name__ == "__main__":
    main()
