#!/usr/bin/env bash
# Prepares a fresh clone: system packages (when root with apt), then .venv with the
# project installed editable and its test extras. Safe to run again; does nothing twice.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -e /usr/include/openssl/evp.h ] || need+=(libssl-dev)
command -v prlimit >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
# For the operations tests (tests/test_ssh.py, tests/test_systemd.py): a real OpenSSH server
# and client, and systemd-analyze to verify and rate the unit. Without them those tests skip.
want=()
[ -x /usr/sbin/sshd ] || want+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 && command -v ssh-agent >/dev/null 2>&1 || want+=(openssh-client)
command -v systemd-analyze >/dev/null 2>&1 || want+=(systemd)
if [ ${#need[@]} -gt 0 ] || [ ${#want[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need[*]} ${want[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # policy-rc.d exit 101: installing openssh-server must not start a system sshd on port 22;
    # the tests start their own, on a loopback port, with their own keys.
    made_policy=
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
      made_policy=1
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get install -y -qq --no-install-recommends "${need[@]}" "${want[@]}" >/dev/null
    if [ -n "$made_policy" ]; then
      rm -f /usr/sbin/policy-rc.d
      trap - EXIT
    fi
  elif [ ${#need[@]} -gt 0 ]; then
    echo "bootstrap: missing ${need[*]}; install them (e.g. apt-get install ${need[*]})" >&2
    exit 1
  else
    echo "bootstrap: without ${want[*]} the SSH and systemd tests will skip" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi
