"""Support for the Grid Engine unit tests (no tests here).

Loads _modules/sge.py, _states/sge.py and _utils/sgejobs.py under unique names, and fakes cmd.run_all with outputs
recorded on a real Debian 12 cell (tests/unit/files/sge: one JSON file per call with the command,
the user it ran as, retcode, stdout and stderr)."""

import importlib.util
import json
import os
import sys

from tests.conftest import REPO

FILES = REPO / "tests/unit/files/sge"


def load(name, path):
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sge_module = load("sge_module", REPO / "_modules/sge.py")
sge_state = load("sge_state", REPO / "_states/sge.py")
sgejobs = load("sgejobs_util", REPO / "_utils/sgejobs.py")
# what the loader's __utils__ gives the sge module
SGEJOBS_UTILS = {f"sgejobs.{name}": getattr(sgejobs, name) for name in ("parse_qstat_xml", "classify", "by_id")}


def recording(name):
    return json.loads((FILES / f"{name}.json").read_text())


class Recorded:
    """A cmd.run_all fake that answers each call with the next recording, after checking that
    the call runs the recorded binary with the recorded first arguments (file arguments of
    ``qconf -A*``/``-M*`` are temp files, so only the option before them is compared)."""

    def __init__(self, *names, strict=True):
        self.strict = strict
        self.queue = [recording(n) for n in names]
        self.calls = []

    def __call__(self, cmd, **kwargs):
        assert isinstance(cmd, list), "commands must be lists"
        assert kwargs.get("python_shell") is False
        assert kwargs["env"]["SGE_ROOT"] and kwargs["env"]["SGE_CELL"]
        self.calls.append((cmd, kwargs))
        assert self.queue, f"unexpected call {cmd}"
        rec = self.queue.pop(0)
        want = rec["cmd"]
        assert os.path.basename(cmd[0]) == os.path.basename(want[0]), (cmd, want)
        if self.strict:
            assert cmd[1] == want[1], (cmd, want)
            if not want[1].startswith(("-A", "-M")):
                assert cmd[1:] == want[1:], (cmd, want)
        if rec["user"] != "root":
            assert kwargs.get("runas") in (None, rec["user"])
        return {
            "pid": 4242,
            "retcode": rec["retcode"],
            "stdout": rec["stdout"].rstrip("\n"),
            "stderr": rec["stderr"].rstrip("\n"),
        }

    @property
    def done(self):
        return not self.queue
