# The formula's execution and state modules (salt://_modules, salt://_states) on this minion, from
# the master's file roots, and its pillar refreshed; run first by orch.jupyterhub. Reports changes
# only when a module was new or changed.
jupyterhub-custom-modules-synced:
  saltutil.sync_all:
    - refresh: true
