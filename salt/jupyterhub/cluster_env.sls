{%- from "jupyterhub/files/conda/settings.jinja" import conda with context %}
# The env on the cluster's shared filesystem for the worker nodes: the SAME spec and lock as the
# hub env (jupyterhub.env.conda), so both hold identical builds. Apply it on any one host that
# mounts the shared filesystem (the hub, or an admin host). Needs conda:cluster_env:prefix.
{%- if conda.cluster_prefix %}
jupyterhub-cluster-env-pkgs-dir-present:
  file.directory:
    - name: {{ conda.cluster_pkgs_dir }}
    - mode: "0755"
    - makedirs: true

jupyterhub-cluster-env:
  conda_env.present:
    - name: {{ conda.cluster_prefix }}
    - root: {{ conda.root }}
    - pkgs_dir: {{ conda.cluster_pkgs_dir }}
{%- for key, value in conda.env_args.items() %}
    - {{ key }}: {{ value | json }}
{%- endfor %}
    - lock_file: {{ conda.env_lock }}
    - pip_args: {{ conda.pip_args | json }}
    - frozen: {{ conda.frozen | json }}
    - require:
      - file: jupyterhub-cluster-env-pkgs-dir-present
{%- else %}
jupyterhub-cluster-env:
  test.fail_without_changes:
    - name: "jupyterhub.cluster_env needs pillar jupyterhub:conda:cluster_env:prefix (a prefix on the shared filesystem)"
{%- endif %}
