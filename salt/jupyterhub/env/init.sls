{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# The hub's Python environment from the provider chosen in pillar (env_provider: venv | conda).
# Every provider ends in the state ID `jupyterhub-python-env`.
include:
  - jupyterhub.env.{{ jupyterhub.env_provider }}
