"""The hub API handler the job reports to: ``POST /hub/api/batchspawner`` with its server's port
(``{"port": N}``, as batchspawner-singleuser does) or why the server failed
(``{"exit_status": N, "output": ...}``).

It replaces batchspawner's handler, which sets ANY attribute the token holder names on the
spawner (for instance the submit command, which the hub would then run). ``install`` is called
once, when ``sgespawner.spawner`` is imported (JupyterHub loads the spawner class while it reads
its configuration, before it builds its handler list).
"""

import json

import batchspawner.api  # noqa: F401 - registers batchspawner's handler, replaced by install()
from jupyterhub import orm
from jupyterhub.apihandlers import APIHandler, default_handlers
from tornado import web

ROUTE = r"/api/batchspawner"


class JobReportHandler(APIHandler):
    """Accepts a report only from the token of a server of ``spawner_class``."""

    spawner_class = None  # set by install()

    @web.authenticated
    def post(self):
        token = self.get_auth_token()
        spawners = getattr(self.current_user, "spawners", {})
        found = orm.APIToken.find(self.db, token) if token else None
        spawner = next((s for s in spawners.values() if s.api_token == token  # (this hub process)
                        or (found and getattr(s, "job_token_id", 0) == found.id)), None)  # (restarted)
        if self.spawner_class is None or not isinstance(spawner, self.spawner_class):
            raise web.HTTPError(404, "no server of this token")
        try:
            spawner.job_reported(self.get_json_body())
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        self.set_status(201)
        self.finish(json.dumps({"message": "noted"}))


def install(spawner_class):
    """Route /hub/api/batchspawner to JobReportHandler for servers of ``spawner_class``."""
    JobReportHandler.spawner_class = spawner_class
    default_handlers[:] = [h for h in default_handlers if h[0] != ROUTE]
    default_handlers.append((ROUTE, JobReportHandler))
