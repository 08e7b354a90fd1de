# System packages of the hub host. configurable-http-proxy comes from Debian (pinned by release).
jupyterhub-system-packages-installed:
  pkg.installed:
    - pkgs:
      - nginx
      - sudo
      - acl
      - node-configurable-http-proxy
      - python3-venv
