{#- map.jinja checks the jupyterhub pillar against defaults.yaml/schema.yaml: a key that is not
    there or a value of the wrong type stops the render with an error naming the key #}
{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# Run first on every host by orch.jupyterhub: this host's pillar is valid, else the orchestration
# stops here, before any host is changed.
jupyterhub-pillar-is-valid:
  test.succeed_without_changes:
    - name: the jupyterhub pillar of {{ grains["id"] }} is valid
