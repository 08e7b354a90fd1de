# Single-host demo (the default of bin/setup): a Grid Engine cell on this host (salt/top.sls adds
# jupyterhub.sge.cell and jupyterhub.sge.local_submit_host), the hub, and this host as the worker.
# Every local account may log in; the TLS certificate is self-signed.
jupyterhub:
  is_devel_env: false
  # any address of this host
  cluster_net_cidr: 0.0.0.0/0
  tls:
    self_signed: true
  # The form offers what this host has: the cell counts slots and RAM (h_vmem, per slot) against
  # the host's cores and memory (jupyterhub:sge:cell_setup:exec_host), so at most all its cores,
  # and per core at most its memory divided by its cores.
{%- set cores = grains["num_cpus"] %}
{%- set ram_per_core = [grains["mem_total"] // 1024 // cores, 1] | max %}
  spawner:
    fields:
      slots:
        max: {{ cores }}
      ram:
        default: {{ [2, ram_per_core] | min }}
        max: {{ ram_per_core }}
