#!/usr/bin/env bash
# Installs what Vigil's demo and tests need on Debian 12, and nothing that is
# already there. Safe to run again. Needs root for apt-get.
set -euo pipefail

# haproxy: the e2e test that proves proxy routing runs its own HAProxy.
# openssh-server: the SSH fencing tests run their own sshd in a namespace.
# pgpool2: the Pgpool-II e2e test runs its own Pgpool-II, which calls
# vigil failover-command; iputils-arping: that command's duplicate check and
# gratuitous ARP, for real, on the test's namespaces.
# nftables: vigil chaos injects partitions, packet loss and latency with nft.
# prometheus: its promtool checks and unit-tests examples/monitoring's
# alert rules.
# chromium: the tests render the HTML reports in a real headless browser.
# man-db: the package test reads the installed man pages with man(1).
# stress-ng: vigil bench stability saturates the CPU and fsyncs beside etcd's
# data with it.
packages=(postgresql-15 postgresql-client-15 iproute2 util-linux procps ca-certificates haproxy openssh-server pgpool2 iputils-arping nftables prometheus chromium man-db stress-ng)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]}; run as root (sudo) to install them" >&2
    exit 1
  fi
  # Vigil builds its own clusters; the package's default cluster on port 5432
  # would only be in the way.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/vigil-no-main-cluster.conf
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Without systemd, a package's init script would start its service during
  # the install (Pgpool-II, HAProxy, sshd): a temporary policy-rc.d stops
  # that, unless the host has its own policy already.
  own_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ] && [ ! -d /run/systemd/system ]; then
    own_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# written by vigil scripts/install-deps.sh for the length of one install\nexit 101\n' > "$own_policy"
    chmod 755 "$own_policy"
    trap 'rm -f "$own_policy"' EXIT
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
  if [ -n "$own_policy" ]; then
    rm -f "$own_policy"
    trap - EXIT
  fi
  # The tests run HAProxy as their own child process with their own
  # configuration; the package's service is not needed. Stopped only when
  # this run installed it, so an HAProxy already in use is left alone.
  if [[ " ${missing[*]} " == *" haproxy "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now haproxy.service >/dev/null 2>&1 || true
  fi
  # Likewise sshd: the tests start their own, with generated keys, inside
  # namespaces; a host sshd that this run did not install is left alone.
  if [[ " ${missing[*]} " == *" openssh-server "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now ssh.service ssh.socket >/dev/null 2>&1 || true
  fi
  # Likewise Pgpool-II: the test runs its own (pgpool -n) with its own
  # configuration; a Pgpool-II this run did not install is left alone.
  if [[ " ${missing[*]} " == *" pgpool2 "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now pgpool2.service >/dev/null 2>&1 || true
  fi
  # Likewise Prometheus: only its promtool is used; a Prometheus server
  # this run did not install is left alone.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
fi

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null 2>&1; then
  echo "install-deps: Go 1.26 or newer is required (https://go.dev/doc/install); Debian 12's golang package is too old" >&2
  exit 1
fi
go mod download
