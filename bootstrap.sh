#!/bin/sh
# Install everything the Salt states and the tests need, pinned, idempotently.
#
#   ./bootstrap.sh            system packages + the Salt venv (salt, cryptography, py-rattler, ...)
#   ./bootstrap.sh --tests    also the packages the integration tests use on the machine
#                             (systemd-nspawn, debootstrap, nftables, openssl, curl) and a venv
#                             of the hub's packages + pytest for tests/hubenv ($JHSALT_HUBENV),
#                             chromium + Playwright (requirements/browser-tests.lock) for the
#                             real-browser test
#
# The venv lives in $JHSALT_VENV (default /opt/salt-jupyterhub/venv). A second run changes nothing:
# apt is only called for missing packages and pip only when a lock changed.
#
# Every pip install is hash-checked (--require-hashes): the locks pin each package with the
# sha256 of all its files on the package index (regenerate: requirements/lock.py). salt's
# dependency timelib has no wheel: it is built from its (hashed) sdist with the hashed build
# tools of requirements/build.lock and --no-build-isolation, since pip would fetch an isolated
# build environment's setuptools/Cython without checking any hash.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=${JHSALT_VENV:-/opt/salt-jupyterhub/venv}
lock="$here/requirements/salt.lock"
piplock="$here/requirements/pip.lock"
buildlock="$here/requirements/build.lock"

# gcc + python3-dev: salt's dependency timelib has no wheel and builds from source.
pkgs="python3 python3-venv python3-dev gcc ca-certificates"
if [ "${1:-}" = "--tests" ]; then
    pkgs="$pkgs systemd-container debootstrap nftables iproute2 openssl curl git chromium"
fi

missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "bootstrap: installing system packages:$missing"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "bootstrap: creating $venv"
    /usr/bin/python3 -m venv "$venv"
fi

want=$(cat "$piplock" "$buildlock" "$lock" | sha256sum | cut -d' ' -f1)
stamp="$venv/.salt-lock.sha256"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    echo "bootstrap: installing $lock into $venv"
    "$venv/bin/python" -m pip install --no-input -q --require-hashes -r "$piplock"
    "$venv/bin/python" -m pip install --no-input -q --require-hashes -r "$buildlock"
    "$venv/bin/python" -m pip install --no-input -q --require-hashes --no-build-isolation -r "$lock"
    echo "$want" > "$stamp"
fi
# --tests: also the hub's environment + pytest for the spawner's JupyterHub-level tests
if [ "${1:-}" = "--tests" ]; then
    hubenv=${JHSALT_HUBENV:-/opt/salt-jupyterhub/hubenv}
    hublock="$here/requirements/hubenv-tests.lock"
    want=$(cat "$piplock" "$hublock" "$here/salt/jupyterhub/files/hub-requirements.lock" | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$hubenv/.lock.sha256" 2>/dev/null || true)" != "$want" ]; then
        echo "bootstrap: installing $hublock into $hubenv"
        [ -x "$hubenv/bin/python" ] || /usr/bin/python3 -m venv "$hubenv"
        "$hubenv/bin/python" -m pip install --no-input -q --require-hashes -r "$piplock"
        # --no-deps: the locks are complete, and leave out on purpose what they say (# left-out:)
        "$hubenv/bin/python" -m pip install --no-input -q --require-hashes --no-deps -r "$hublock"
        "$hubenv/bin/python" "$here/salt/jupyterhub/files/check-lock.py" --remove-left-out "$here/salt/jupyterhub/files/hub-requirements.lock"
        echo "$want" > "$hubenv/.lock.sha256"
    fi
fi
# --tests: Playwright (its driver only: it runs Debian's chromium) for tests/integration/test_browser.py
if [ "${1:-}" = "--tests" ]; then
    browserlock="$here/requirements/browser-tests.lock"
    want=$(sha256sum "$browserlock" | cut -d' ' -f1)
    if [ "$(cat "$venv/.browser-lock.sha256" 2>/dev/null || true)" != "$want" ]; then
        echo "bootstrap: installing $browserlock into $venv"
        "$venv/bin/python" -m pip install --no-input -q --require-hashes --no-deps -r "$browserlock"
        echo "$want" > "$venv/.browser-lock.sha256"
    fi
fi
echo "bootstrap: ok ($("$venv/bin/salt-call" --version))"
