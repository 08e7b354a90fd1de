{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
# nginx in front of the hub: port 80 redirects to https, 443 serves the hub (TLS 1.2+, HSTS,
# websockets). The configuration is tested with `nginx -t` before nginx reloads.
include:
  - jupyterhub.packages
  - jupyterhub.tls

jupyterhub-nginx-default-site-absent:
  file.absent:
    - name: /etc/nginx/sites-enabled/default
    - require:
      - pkg: jupyterhub-system-packages-installed

jupyterhub-nginx-site-installed:
  file.managed:
    - name: /etc/nginx/sites-available/jupyterhub.conf
    # a site's own template (any file root) replaces the formula's
    - source:
      - salt://jupyterhub_site/nginx-site.conf.j2
      - salt://jupyterhub/files/nginx-site.conf.j2
    - template: jinja
    - mode: "0644"
    - context:
        settings: {{ jupyterhub | json }}
    - require:
      - pkg: jupyterhub-system-packages-installed

jupyterhub-nginx-site-enabled:
  file.symlink:
    - name: /etc/nginx/sites-enabled/jupyterhub.conf
    - target: /etc/nginx/sites-available/jupyterhub.conf
    - require:
      - file: jupyterhub-nginx-site-installed

jupyterhub-nginx-config-valid:
  cmd.run:
    - name: /usr/sbin/nginx -t -q
    - onchanges:
      - file: jupyterhub-nginx-default-site-absent
      - file: jupyterhub-nginx-site-installed
      - file: jupyterhub-nginx-site-enabled
      - x509: jupyterhub-tls-key-present
      - sls: jupyterhub.tls

jupyterhub-nginx-running:
  service.running:
    - name: nginx
    - enable: true
    - reload: true
    - watch:
      - cmd: jupyterhub-nginx-config-valid
