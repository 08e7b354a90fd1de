"""Seconds per test module from a pytest junit file, as tests/conftest.py's MODULE_SECONDS wants them.

    bin/test --junitxml=/tmp/run.xml
    /opt/salt-jupyterhub/venv/bin/python -m tests.support.module_seconds /tmp/run.xml

Only the integration modules are listed (the rest take seconds and fill in at the end)."""

import collections
import sys
import xml.etree.ElementTree as ET


def module_seconds(junit_path):
    seconds = collections.Counter()
    for case in ET.parse(junit_path).iter("testcase"):
        module = case.get("classname", "").replace(".", "/")  # tests.integration.test_x -> tests/integration/test_x
        seconds[module.removeprefix("tests/") + ".py"] += float(case.get("time") or 0)
    return {name: round(total) for name, total in seconds.most_common() if name.startswith("integration/")}


if __name__ == "__main__":
    for name, total in module_seconds(sys.argv[1]).items():
        print(f'    "{name}": {total},')
