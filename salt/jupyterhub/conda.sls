{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- from "jupyterhub/files/conda/settings.jinja" import conda with context %}
# conda at conda_root: the base env (conda + mamba for admins) and .condarc from pillar.
# Default: the base env is built by the conda_env state (py-rattler, no conda needed) from
# conda:base_packages and locked like the hub env. With miniconda_vers set: the Puppet-era way,
# the Miniconda installer (checksum-checked), run once.
jupyterhub-conda-dirs-present:
  file.directory:
    - names:
      - {{ conda.root }}
      - {{ conda.root }}/envs
      - {{ conda.root }}/locks
      - {{ conda.pkgs_dir }}
    - mode: "0755"
    - makedirs: true

{%- if conda.installer %}
{%- set installer = jupyterhub.file_cache ~ "/Miniconda3-" ~ jupyterhub.miniconda_vers ~ "-Linux-x86_64.sh" %}
{%- set c = jupyterhub.conda %}

jupyterhub-conda-installer-downloaded:
  file.managed:
    - name: {{ installer }}
    - source: {{ c.installer_url | replace("{version}", jupyterhub.miniconda_vers) }}
{%- if c.installer_sha256 %}
    - source_hash: sha256={{ c.installer_sha256 }}
{%- else %}
    - source_hash: md5={{ jupyterhub.miniconda_dl_md5 }}
{%- endif %}
    - makedirs: true
    - mode: "0644"
    - unless: test -x {{ conda.root }}/bin/conda

jupyterhub-conda-base-env:
  cmd.run:
    - name: /bin/bash {{ installer }} -b -u -p {{ conda.root }}
    - creates: {{ conda.root }}/bin/conda
    - require:
      - file: jupyterhub-conda-installer-downloaded
      - file: jupyterhub-conda-dirs-present
{%- elif conda.base_args %}

jupyterhub-conda-base-env:
  conda_env.present:
    - name: {{ conda.root }}
    - root: {{ conda.root }}
    - pkgs_dir: {{ conda.pkgs_dir }}
{%- for key, value in conda.base_args.items() %}
    - {{ key }}: {{ value | json }}
{%- endfor %}
    - lock_file: {{ conda.base_lock }}
    - frozen: {{ conda.frozen | json }}
    - require:
      - file: jupyterhub-conda-dirs-present
{%- else %}

jupyterhub-conda-base-env:
  test.nop:
    - name: no base env at {{ conda.root }} (conda:base_packages is empty)
    - require:
      - file: jupyterhub-conda-dirs-present
{%- endif %}

jupyterhub-conda-condarc-managed:
  file.serialize:
    - name: {{ conda.root }}/.condarc
    - dataset: {{ jupyterhub.conda.condarc | json }}
    - serializer: yaml
    - mode: "0644"
    - require:
      - jupyterhub-conda-base-env
