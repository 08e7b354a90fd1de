# Masterless pillar: the profile of this host, then this site's own settings.
#   profile: grain `jupyterhub_profile` = demo (default: a complete single-host installation),
#            dev or prod; `bin/setup --profile prod` sets it
#   site:    pillar/site.sls (untracked, yours: no upgrade touches it), merged over the profile,
#            e.g. extra users under jupyterhub:access:members; see pillar.example
{%- set profile = salt["grains.get"]("jupyterhub_profile", "demo") %}
base:
  "*":
    - jupyterhub.{{ profile }}
    - site
    - ignore_missing: true
