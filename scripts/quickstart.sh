#!/usr/bin/env bash
# Quickstart: install into .venv, start the gateway on its embedded defaults
# (SQLite in ./.openshell, local bubblewrap driver, bundled policies, loopback only),
# drive a short demo with the `openshell` CLI, and leave the gateway running.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null
  else echo "bubblewrap is needed for sandboxes: sudo apt-get install bubblewrap" >&2; fi
fi
if [ ! -x .venv/bin/openshell-gateway ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]' 'tox>=4.11,<5'
fi
export PATH="$PWD/.venv/bin:$PATH"
export OPENSHELL_GATEWAY=127.0.0.1:50051

openshell-gateway > .openshell-gateway.log 2>&1 &
gateway_pid=$!
trap 'kill $gateway_pid 2>/dev/null || true' INT TERM
for _ in $(seq 1 50); do grep -q "listening on" .openshell-gateway.log 2>/dev/null && break; sleep 0.2; done
grep "listening on" .openshell-gateway.log || { cat .openshell-gateway.log; exit 1; }

set -x
openshell whoami
openshell namespace list
openshell sandbox create demo
openshell sandbox exec demo -- sh -c 'echo hi > /workspace/f && cat /workspace/f'
openshell sandbox list
openshell auth can-i DeleteNamespace namespace/default || true   # no: the default namespace is permanent (a policy)
openshell sandbox delete demo
set +x
echo "gateway running (pid $gateway_pid, log .openshell-gateway.log); Ctrl-C to stop"
wait $gateway_pid
