#!/usr/bin/env bash
# Installs what ChaosLedger needs on a Debian machine that has the Swift toolchain:
# liblmdb-dev and libsodium-dev (found through pkg-config) for the build, and Python's
# `cryptography` for the independent test-vector check and PyNaCl (libsodium's Python
# binding) for the example agent in another language (tools/example_agent.py, run by
# ExampleAgentTests); libcurl4 for the HTTP client the CLI and the integration tests use
# (FoundationNetworking); iptables and iproute2 for the fault harness (tools/faultnet.py);
# PostgreSQL's server and client for the sink's tests and benchmark (tools/postgres.sh
# starts a cluster of its own; the package's default cluster is left alone).
# Installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for p in liblmdb-dev libsodium-dev pkg-config libcurl4 iptables iproute2 postgresql postgresql-client; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "setup: installing python cryptography"
  python3 -m pip install -q cryptography
fi
if ! python3 -c 'import nacl.signing' 2>/dev/null; then
  echo "setup: installing python pynacl"
  python3 -m pip install -q pynacl
fi
# The reference MCP client (PyPI's `mcp`) for the MCP server's test, in a venv of its own
# (its dependencies are kept apart from the system's Python packages).
if [ ! -x .build/mcp-venv/bin/python ] || ! .build/mcp-venv/bin/python -c 'import mcp' 2>/dev/null; then
  echo "setup: installing python mcp (in .build/mcp-venv)"
  python3 -m venv .build/mcp-venv
  .build/mcp-venv/bin/python -m pip install -q mcp
fi
