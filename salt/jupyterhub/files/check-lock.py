"""
Exit 0 when every pinned requirement (``name==version``) of a lock file is installed in this
Python, else 1 (listing what differs).

The lock is pip's requirements format with hashes: a pin may continue on the next lines
(``\\`` at the end of a line) with its ``--hash=sha256:...`` options; comments and option lines
are ignored, except ``# left-out: NAME (why)``: a package that the resolver wanted but the lock
leaves out on purpose (e.g. one that only slows every server's start).

    check-lock.py LOCK                   every pin installed?
    check-lock.py --left-out LOCK        exit 1 (listing them) when a left-out package is installed
    check-lock.py --remove-left-out LOCK uninstall the left-out packages that are installed (pip)
"""

import re
import subprocess
import sys
from importlib import metadata

NAME = r"[A-Za-z0-9][A-Za-z0-9_.\-]*"


def pins(text):
    """``[(name, version)]`` of the pinned requirements in a lock's text."""
    out = []
    for line in re.sub(r"\\\r?\n", " ", text).splitlines():
        match = re.match(rf"^({NAME})==([^\s;#\\]+)", line.strip())
        if match:
            out.append(match.groups())
    return out


def left_out(text):
    """Names of the ``# left-out: NAME`` lines of a lock's text."""
    return re.findall(rf"^#\s*left-out:\s*({NAME})", text, flags=re.MULTILINE)


def installed(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def main(lock, mode="pins"):
    with open(lock, encoding="utf-8") as handle:
        text = handle.read()
    if mode == "pins":
        have = {name: installed(name) for name, _ in pins(text)}
        problems = [f"{name}: want {version}, have {have[name]}"
                    for name, version in pins(text) if have[name] != version]
    else:
        present = [name for name in left_out(text) if installed(name) is not None]
        if mode == "remove" and present:
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", *present], check=True)
            present = [name for name in present if installed(name) is not None]
        problems = [f"{name}: left out of the lock, installed {installed(name)}" for name in present]
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    modes = {"--left-out": "left-out", "--remove-left-out": "remove"}
    args = sys.argv[1:]
    mode = modes[args.pop(0)] if args and args[0] in modes else "pins"
    sys.exit(main(args[0], mode))
