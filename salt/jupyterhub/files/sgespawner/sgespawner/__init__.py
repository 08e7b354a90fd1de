"""JupyterHub servers as Grid Engine jobs (batchspawner's GridengineSpawner, hardened).

Modules: ``options`` (the form table, validation, qsub options and job script), ``tokenfile``
(the API token's file), ``gridengine`` (commands, ``qstat`` parsing, the shared poller) need only
the standard library and Jinja; ``spawner`` (the JupyterHub class, entry point ``sge``) and
``api`` (the job's report handler) need JupyterHub and batchspawner and are not imported here.
"""

__version__ = "2.0.0"
