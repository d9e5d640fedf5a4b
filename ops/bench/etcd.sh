#!/usr/bin/env bash
# The federation directory beside etcd, in one run (node/sandbox/benches/etcd.rs): installs
# Debian's etcd-server (etcd 3.4, and etcd-client for etcdctl) with apt-get when `etcd` is not on
# PATH (as root), then runs the benchmark. Arguments are passed to `cargo bench`.
#
#   ops/bench/etcd.sh
#
# The benchmark starts its own three-member cluster with TLS on ports the OS chooses, in a
# temporary directory. On a host run by systemd the package also starts its own single-member
# service on 127.0.0.1:2379, which the benchmark does not use: `systemctl disable --now etcd`
# stops it.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v etcd >/dev/null; then
    echo "== etcd (apt-get install etcd-server etcd-client)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends etcd-server etcd-client >/dev/null
fi
etcd --version | head -1

exec cargo bench -p tierlink-sandbox --bench etcd "$@"
