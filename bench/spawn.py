#!/usr/bin/env python3
"""Spawn benchmark on real hosts: runs tests/integration/test_spawn.py (hub + qmaster containers,
browser-driven) and prints what the spawner issue asks for in its closing note:

- median spawn latency, request to ready (5 spawns), and the two floors measured the same way
  (qsub -now yes until `r`, on the hub host; the same Jupyter app on its own until it answers, on
  the execution host);
- qstat calls per minute with 1 and with 10 running servers;
- how long a qdel behind the hub's back, a job that dies at start and a job in error state take to
  be reported.

    sudo bench/spawn.py            # needs root (systemd-nspawn), ~10 min; JHSALT_TEST_PREFIX/SUBNET apply
"""
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("JHSALT_VENV", "/opt/salt-jupyterhub/venv")


def main():
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = dict(os.environ, JHSALT_SPAWN_BENCH=out.name)
        proc = subprocess.run([f"{VENV}/bin/python", "-m", "pytest", "-p", "no:cacheprovider", "-q",
                               "tests/integration/test_spawn.py", *sys.argv[1:]], cwd=REPO, env=env)
        numbers = json.load(open(out.name)) if os.path.getsize(out.name) else {}
    width = max(map(len, numbers), default=0)
    for key, value in numbers.items():
        print(f"{key:<{width}}  {value}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
