{%- from "jupyterhub/map.jinja" import jupyterhub with context %}
{%- set ssl_dir = jupyterhub.config_dir ~ "/ssl" %}
{%- set sans = jupyterhub.subject_alt_names | join(", ") %}
# TLS for nginx: a key and a CSR made on this host (cryptography, Salt's x509 states). On a dev
# host a self-signed certificate; on prod the certificate your CA issued (tls:cert_file).
include:
  - jupyterhub.dirs

# Salt's x509 modules need the cryptography library where the state runs: Salt's own venv has it,
# salt-ssh's thin bundle does not (it uses the target's python3, which then finds Debian's)
jupyterhub-tls-cryptography-installed:
  pkg.installed:
    - name: python3-cryptography
    - reload_modules: true

jupyterhub-tls-key-present:
  x509.private_key_managed:
    - name: {{ ssl_dir }}/hub.key
    - algo: rsa
    - keysize: {{ jupyterhub.tls.key_size }}
    - user: root
    - group: root
    - mode: "0600"
    - require:
      - file: jupyterhub-ssl-dir-present
      - pkg: jupyterhub-tls-cryptography-installed

jupyterhub-tls-csr-present:
  x509.csr_managed:
    - name: {{ ssl_dir }}/hub.csr
    - private_key: {{ ssl_dir }}/hub.key
    - CN: {{ jupyterhub.common_name }}
    - subjectAltName: {{ sans | json }}
    - mode: "0644"
    - require:
      - x509: jupyterhub-tls-key-present

{#- prod without the CA's certificate yet: nginx uses a self-signed one until it is there #}
{%- set self_signed = jupyterhub.is_devel_env or jupyterhub.tls.self_signed %}
{%- set use_ca_cert = not self_signed and jupyterhub.tls.cert_file
                      and salt["file.file_exists"](jupyterhub.tls.cert_file) %}
{%- if use_ca_cert %}
jupyterhub-tls-certificate-linked:
  file.symlink:
    - name: {{ ssl_dir }}/hub.crt
    - target: {{ jupyterhub.tls.cert_file }}
    - force: true
{%- else %}
jupyterhub-tls-certificate-self-signed:
  x509.certificate_managed:
    - name: {{ ssl_dir }}/hub.crt
    - signing_private_key: {{ ssl_dir }}/hub.key
    - CN: {{ jupyterhub.common_name }}
    - subjectAltName: {{ sans | json }}
    - extendedKeyUsage: serverAuth
    - days_valid: {{ jupyterhub.tls.days_valid }}
    - days_remaining: 30
    - mode: "0644"
    - require:
      - x509: jupyterhub-tls-key-present
{%-   if not self_signed %}

jupyterhub-tls-certificate-missing-notice:
  test.show_notification:
    - text: >-
        Production host without a CA-issued certificate
        ({{ jupyterhub.tls.cert_file or "tls:cert_file is not set" }}{{ " does not exist" if jupyterhub.tls.cert_file else "" }}):
        nginx uses a self-signed certificate. Have {{ ssl_dir }}/hub.csr signed, put the
        certificate at tls:cert_file and apply the state again.
{%-   endif %}
{%- endif %}
