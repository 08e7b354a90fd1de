#!/usr/bin/env python3
"""
Time a no-op ``conda_env.present`` apply on an unchanged environment.

Generates a local channel of N real conda packages (default 300, about the size of a
JupyterHub env from conda-forge, each with a few files and dependencies), creates the env once
through the real Salt loader (state.single), then times repeated applies that change nothing:
with a lock (no solve, the hub/cluster setup), without a lock (a solve every time), and with
``test=True``. Optionally also times ``bin/salt-call state.single`` end to end (Salt start-up
included).

Run from the repository root:

    /opt/salt-jupyterhub/venv/bin/python bench/conda_noop.py [--packages 300] [--repeat 5] [--salt-call]
"""

import argparse
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import salt.config  # noqa: E402
from saltfactories.utils.functional import Loaders  # noqa: E402

from tests.support.conda_channel import LocalChannel  # noqa: E402


def make_channel(path, count):
    chan = LocalChannel(path)
    for i in range(count):
        deps = [f"pkg{j:03d}" for j in (i - 1, i // 2) if 0 <= j < i]
        files = {f"share/pkg{i:03d}/f{k}.txt": f"pkg{i} file {k}\n" * 20 for k in range(5)}
        chan.add(f"pkg{i:03d}", "1.0", depends=sorted(set(deps)), files=files)
    return chan.index()


def loaders_for(tmp):
    opts = salt.config.minion_config(None)
    opts.update(
        {
            "id": "bench",
            "file_client": "local",
            "root_dir": str(tmp / "salt"),
            "cachedir": str(tmp / "salt/cache"),
            "extension_modules": str(tmp / "salt/extmods"),
            "pki_dir": str(tmp / "salt/pki"),
            "file_roots": {"base": [str(REPO / "salt")]},
            "pillar_roots": {"base": [str(tmp / "pillar")]},
            "module_dirs": [str(REPO / "_modules")],
            "states_dirs": [str(REPO / "_states")],
            "utils_dirs": [str(REPO / "_utils")],
            "conda_env.root": str(tmp / "conda"),
        }
    )
    (tmp / "pillar").mkdir(exist_ok=True)
    return Loaders(opts)


def timed(func, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        ret = func()
        times.append(time.perf_counter() - start)
        assert ret.result in (True, None) and not ret.changes, (ret.comment, ret.changes)
    return times


def fmt(times):
    return f"median {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f})"


def created_env(tmp, packages):
    """A channel of ``packages`` packages under ``tmp`` and an env made from it through the real
    loader: (present, prefix, spec, lock, first apply's return, its seconds, loaders)."""
    chan = make_channel(tmp / "channel", packages)
    spec = tmp / "env.yml"
    spec.write_text(f"channels: [{chan.url}]\ndependencies: [{', '.join(f'pkg{i:03d}' for i in range(packages))}]\n")
    lock = tmp / "env.lock.yml"
    loaders = loaders_for(tmp)
    present = loaders.states.conda_env.present
    prefix = str(tmp / "conda/envs/bench")
    start = time.perf_counter()
    ret = present(name=prefix, spec=str(spec), lock_file=str(lock))
    create = time.perf_counter() - start
    assert ret.result is True, ret.comment
    return present, prefix, spec, lock, ret, create, loaders


def measure(packages=300, repeat=5):
    """Median seconds of a no-op apply with its lock (``noop_locked``), with ``test=True``
    (``noop_test``) and without a lock (``noop_solve``), and of the first apply (``create``)."""
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="conda-noop-bench-"))
    try:
        present, prefix, spec, lock, _, create, loaders = created_env(tmp, packages)
        numbers = {
            "packages": packages,
            "create": create,
            "noop_locked": statistics.median(
                timed(lambda: present(name=prefix, spec=str(spec), lock_file=str(lock)), repeat)),
            "noop_test": statistics.median(
                timed(lambda: present(name=prefix, spec=str(spec), lock_file=str(lock), test=True), repeat)),
            "noop_solve": statistics.median(timed(lambda: present(name=prefix, spec=str(spec)), repeat)),
        }
        loaders.reset_state()
        return numbers
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packages", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--salt-call", action="store_true", help="also time bin/salt-call end to end")
    args = parser.parse_args()

    tmp = pathlib.Path(tempfile.mkdtemp(prefix="conda-noop-bench-"))
    try:
        present, prefix, spec, lock, ret, create, loaders = created_env(tmp, args.packages)
        print(f"packages: {len(ret.changes['conda'])}, files: {sum(len(fs) for _, _, fs in os.walk(prefix))}")
        print(f"create (solve + fetch + link + lock): {create * 1000:.0f} ms")

        print(
            "no-op apply, with lock (no solve):    ",
            fmt(timed(lambda: present(name=prefix, spec=str(spec), lock_file=str(lock)), args.repeat)),
        )
        print(
            "no-op apply, test=True, with lock:    ",
            fmt(
                timed(
                    lambda: present(name=prefix, spec=str(spec), lock_file=str(lock), test=True), args.repeat
                )
            ),
        )
        print(
            "no-op apply, no lock (solve each run):",
            fmt(timed(lambda: present(name=prefix, spec=str(spec)), args.repeat)),
        )

        if args.salt_call:
            cmd = [
                str(pathlib.Path(sys.executable).parent / "salt-call"),
                "--local",
                f"--config-dir={REPO / 'conf'}",
                f"--module-dirs={REPO / '_modules'}",
                f"--states-dir={REPO / '_states'}",
                "--out=quiet",
                "--retcode-passthrough",
                "state.single",
                "conda_env.present",
                f"name={prefix}",
                f"spec={spec}",
                f"lock_file={lock}",
            ]
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
                times.append(time.perf_counter() - start)
            print("no-op, bin/salt-call state.single end to end (Salt start-up included):", fmt(times))
        loaders.reset_state()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
