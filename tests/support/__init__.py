"""Helpers shared by the test suites (``hosts``: real Debian 12 test hosts in systemd-nspawn)."""
