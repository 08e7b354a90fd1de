"""Exit 0 when every `name==version` line of a lock file is installed in this Python, else 1."""

import re
import sys
from importlib import metadata


def main(lock):
    missing = []
    with open(lock, encoding="utf-8") as handle:
        for line in handle:
            match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
            if not match:
                continue
            name, version = match.groups()
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
