# The health of a hub, checked last by orch.jupyterhub; it changes nothing: the hub's units are
# active and its login page answers over HTTPS through nginx (from this host, so public_net_cidr
# must let the host itself in, as the default 0.0.0.0/0 does).
jupyterhub-health-units-active:
  cmd.run:
    - name: systemctl is-active --quiet jupyterhub-proxy jupyterhub nginx && echo changed=no
    - stateful: true

jupyterhub-health-login-page-answers:
  http.wait_for_successful_query:
    - name: https://127.0.0.1/hub/login
    - status: 200
    - match: 'name="password"'
    - verify_ssl: false
    # a hub restarted by the run before takes a few seconds to answer again
    - wait_for: 120
    - require:
      - cmd: jupyterhub-health-units-active
