# Pillar of a host, merged in this order:
#   profile: pillar/jupyterhub/<grain jupyterhub_profile>.sls: demo (masterless default: a
#            complete single-host installation), dev or prod; `bin/setup --profile prod` sets it.
#            With a salt-master no profile applies unless the grain is set: the host's file
#            below includes one.
#   site:    pillar/site.sls (untracked, yours: no upgrade touches it), e.g. extra users under
#            jupyterhub:access:members; see pillar.example
#   host:    hosts/<minion id>.sls (dots in the id become "_"), e.g. on a salt-master
#            /srv/pillar/hosts/hub01_example_org.sls: the host's `roles` (salt/top.sls), an
#            `include` of its profile and its own settings; see README "With a salt-master"
{%- set profile = salt["grains.get"]("jupyterhub_profile", opts.get("jupyterhub_default_profile", "")) %}
base:
  "*":
{%- if profile %}
    - jupyterhub.{{ profile }}
{%- endif %}
    - site
    - hosts.{{ opts.id | replace(".", "_") }}
    - ignore_missing: true
