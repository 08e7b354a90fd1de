{#- The site as the master sees it now: every minion it has data for, with its pillar compiled
    fresh from the current pillar files (pillar.show_pillar), not a copy a minion cached. A hub is
    a minion whose pillar `roles` holds jupyterhub-hub (salt/top.sls lists the roles). #}
{%- set known = ["jupyterhub-hub", "sge-cell", "sge-admin", "cluster-env"] %}
{%- set by_role = {"jupyterhub-hub": [], "sge-cell": [], "sge-admin": [], "cluster-env": []} %}
{%- set hub_names = [] %}
{%- set minions = salt.saltutil.runner("cache.grains", tgt="*") %}
{%- for id, grains in minions | dictsort %}
{%-   set pillar = salt.saltutil.runner("pillar.show_pillar", minion=id) %}
{%-   if pillar.get("_errors") %}
{{-     raise("pillar of minion " ~ id ~ ": " ~ pillar._errors | join("; ")) }}
{%-   endif %}
{%-   set roles = pillar.get("roles", []) %}
{%-   if roles is string or roles is mapping %}
{{-     raise("pillar roles of minion " ~ id ~ ": a list of roles, e.g. [jupyterhub-hub]") }}
{%-   endif %}
{%-   for role in roles %}
{%-     if role not in known %}
{{-       raise("pillar roles of minion " ~ id ~ ": unknown role " ~ role | json ~ "; known: " ~ known | join(", ")) }}
{%-     endif %}
{%-     do by_role[role].append(id) %}
{%-   endfor %}
{%-   if "jupyterhub-hub" in roles %}
{#-     the name the hub's resolver gives itself; Grid Engine on the admin host resolves it #}
{%-     do hub_names.append(grains.get("fqdn") or id) %}
{%-   endif %}
{%- endfor %}
{%- set involved = by_role.values() | sum(start=[]) | unique | list | sort %}
{#- How long each step waits for a minion before asking whether it still runs the job (Salt's
    find_job): with the master's default (5 s, then gather_job_timeout 10 s) a minion slowed by
    load, e.g. while another host boots, was dropped as "did not return" from a 4-s sync. A minion
    that answers sooner returns sooner. #}
{%- set answer_within = 120 %}
# Bring a JupyterHub site up in order (salt-run state.orchestrate orch.jupyterhub). Each step
# stops the run when it fails (failhard): custom modules synced, every host's pillar valid, the
# Grid Engine cell (demo cells), the worker env on the shared filesystem, the hubs, the hubs as
# the submit hosts on the admin hosts (a host that lost its hub role is deregistered), and the
# health of each hub. A second run changes nothing.
{%- if not involved %}

jupyterhub-no-minion-has-a-role:
  test.succeed_without_changes:
    - name: no minion has one of the roles {{ known | join(", ") }} in its pillar
{%- else %}

jupyterhub-custom-modules-synced:
  salt.state:
    - tgt: {{ involved | join(",") }}
    - tgt_type: list
    - sls: jupyterhub.sync
    - timeout: {{ answer_within }}
    - failhard: true

jupyterhub-pillar-valid-everywhere:
  salt.state:
    - tgt: {{ involved | join(",") }}
    - tgt_type: list
    - sls: jupyterhub.validate
    - timeout: {{ answer_within }}
    - failhard: true
{%- for role, sls in [("sge-cell", "jupyterhub.sge.cell"), ("cluster-env", "jupyterhub.cluster_env"),
                      ("jupyterhub-hub", "jupyterhub")] if by_role[role] %}

jupyterhub-role-{{ role }}-applied:
  salt.state:
    - tgt: {{ by_role[role] | join(",") }}
    - tgt_type: list
    - sls: {{ sls }}
    - timeout: {{ answer_within }}
    - failhard: true
{%- endfor %}
{%- if by_role["sge-admin"] %}

jupyterhub-hubs-are-the-submit-hosts:
  salt.state:
    - tgt: {{ by_role["sge-admin"] | join(",") }}
    - tgt_type: list
    - sls: jupyterhub.sge.submit_hosts
    - pillar:
        jupyterhub_hubs: {{ hub_names | sort | json }}
    - timeout: {{ answer_within }}
    - failhard: true
{%- endif %}
{%- if by_role["jupyterhub-hub"] %}

jupyterhub-hubs-healthy:
  salt.state:
    - tgt: {{ by_role["jupyterhub-hub"] | join(",") }}
    - tgt_type: list
    - sls: jupyterhub.health
    - timeout: {{ answer_within }}
    - failhard: true
{%- endif %}
{%- endif %}
