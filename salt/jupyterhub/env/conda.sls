{%- from "jupyterhub/files/conda/settings.jinja" import conda with context %}
# Provider `conda`: the hub env at env_prefix (<conda_root>/envs/<conda_env>) from the pillar spec
# (conda:channels/packages/pip, or conda:env_spec), installed with exactly the builds of its
# lock (conda:env_lock, shared with jupyterhub.cluster_env). Ends in `jupyterhub-python-env`.
include:
  - jupyterhub.conda

jupyterhub-python-env:
  conda_env.present:
    - name: {{ conda.env_prefix }}
    - root: {{ conda.root }}
    - pkgs_dir: {{ conda.pkgs_dir }}
{%- for key, value in conda.env_args.items() %}
    - {{ key }}: {{ value | json }}
{%- endfor %}
    - lock_file: {{ conda.env_lock }}
    - pip_args: {{ conda.pip_args | json }}
    - frozen: {{ conda.frozen | json }}
    - require:
      - jupyterhub-conda-base-env
