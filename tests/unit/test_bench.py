"""bench/run.py's own parsing: where the hub's CPU goes in its idle window (its request log)."""

import importlib.util
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[2]
FILES = pathlib.Path(__file__).parent / "files" / "bench"


def bench_run():
    spec = importlib.util.spec_from_file_location("bench_run", REPO / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_hubs_request_log_is_grouped_by_route_with_user_names_folded():
    # two lines recorded from a demo hub's journal (the idle culler's visit), then the shape of
    # jupyterhub.log.log_request's other lines: a server's activity report, a redirect, a refusal
    journal = (FILES / "hub-journal.txt").read_text() + "\n".join([
        "[I 2026-12-07 01:31:00.100 JupyterHub log:192] 200 POST /hub/api/users/u01/activity (u01@10.250.0.10) 12.50ms",
        "[I 2026-12-07 01:31:00.200 JupyterHub log:192] 200 POST /hub/api/users/u02/activity (u02@10.250.0.10) 7.50ms",
        "[I 2026-12-07 01:31:01.000 JupyterHub log:192] 302 GET /hub/ -> /hub/spawn (u01@10.250.0.1) 3.00ms",
        "[W 2026-12-07 01:31:02.000 JupyterHub log:192] 403 GET /hub/api/users/u010 (@10.250.0.1) 1.25ms",
        "[I 2026-12-07 01:31:03.000 SGESpawner] u01: job 12 running",
    ]) + "\n"
    routes = bench_run().hub_requests(journal, ["u01", "u02"])
    assert routes == {
        "GET /hub/api/users 200": {"count": 1, "ms": 51.3},
        "GET /hub/api/ 200": {"count": 1, "ms": 40.4},
        "POST /hub/api/users/{user}/activity 200": {"count": 2, "ms": 20.0},
        "GET /hub/ 302": {"count": 1, "ms": 3.0},
        "GET /hub/api/users/u010 403": {"count": 1, "ms": 1.2},
    }
    assert list(routes)[0] == "GET /hub/api/users 200"  # the most expensive first
