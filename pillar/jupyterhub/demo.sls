# Single-host demo (the default of bin/setup): a Grid Engine cell on this host (salt/top.sls adds
# jupyterhub.sge.cell and jupyterhub.sge.local_submit_host), the hub, and this host as the worker.
# The account `demo` (password generated, shown by bin/setup) may log in and get servers; add
# other local accounts under access:members. The TLS certificate is self-signed.
jupyterhub:
  is_devel_env: false
  demo_account: demo
  hub:
    # the jobs run on this host: the hub's API listens on loopback only (nginx is the only
    # public entry)
    ip: 127.0.0.1
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
  sge:
    cell_setup:
      queues:
        all.q:
          # the users' jobs run at nice 5 (queue_conf(5) `priority`): this host is also the hub,
          # nginx and the qmaster, which keep answering (and submitting the next user's job)
          # while servers fill its cores
          priority: 5
