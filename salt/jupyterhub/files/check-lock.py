"""
Exit 0 when every pinned requirement (``name==version``) of a lock file is installed in this
Python, else 1 (listing what differs).

The lock is pip's requirements format with hashes: a pin may continue on the next lines
(``\\`` at the end of a line) with its ``--hash=sha256:...`` options; comments and option lines
are ignored.
"""

import re
import sys
from importlib import metadata


def pins(text):
    """``[(name, version)]`` of the pinned requirements in a lock's text."""
    out = []
    for line in re.sub(r"\\\r?\n", " ", text).splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==([^\s;#\\]+)", line.strip())
        if match:
            out.append(match.groups())
    return out


def main(lock):
    missing = []
    with open(lock, encoding="utf-8") as handle:
        wanted = pins(handle.read())
    for name, version in wanted:
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = None
        if have != version:
            missing.append(f"{name}: want {version}, have {have}")
    for problem in missing:
        print(problem)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
