#!/usr/bin/env bash
# Peer FTP servers for `ftpgate-bench peers`, on Debian, run as root.
#
#   bench/peers.sh install
#       Installs what the comparison needs, skipping what is already there: vsftpd and iperf3
#       from Debian; Pure-FTPd and ProFTPD unpacked (not installed: they conflict with vsftpd as
#       packages) under bench/.peers/; pyftpdlib and pyOpenSSL from PyPI; a self-signed RSA
#       certificate for FTPS; and the system user the system-account servers log in as.
#
#   bench/peers.sh run NAME DIR PORT PASV_LO PASV_HI USER PASSWORD
#       Replaces itself (exec) with peer NAME (vsftpd, pure-ftpd, proftpd or pyftpdlib) in the
#       foreground, serving DIR on 127.0.0.1:PORT with passive ports PASV_LO-PASV_HI, FTPS by
#       AUTH TLS with that certificate. vsftpd, Pure-FTPd and ProFTPD authenticate against the
#       system account USER (created by `install`, with PASSWORD set on every run);
#       pyftpdlib keeps USER and PASSWORD in memory.
#
#   bench/peers.sh version NAME
#       Prints the peer's version.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS="$HERE/.peers"
ROOTFS="$PEERS/root"
TLS="$PEERS/tls"

log() { echo "peers.sh: $*" >&2; }

# Shared libraries unpacked with the peers, for what the base system lacks.
peer_libs() {
    echo "$ROOTFS/usr/lib/x86_64-linux-gnu:$ROOTFS/lib/x86_64-linux-gnu"
}

install_peers() {
    local need_apt=()
    command -v vsftpd >/dev/null || need_apt+=(vsftpd)
    command -v iperf3 >/dev/null || need_apt+=(iperf3)
    command -v openssl >/dev/null || need_apt+=(openssl)
    if ((${#need_apt[@]})); then
        log "apt-get install ${need_apt[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    fi
    # vsftpd's package starts a daemon on port 21; the bench runs its own instances.
    if command -v systemctl >/dev/null && systemctl is-active --quiet vsftpd 2>/dev/null; then
        systemctl stop vsftpd || true
    fi
    mkdir -p /var/run/vsftpd/empty

    # The servers, ProFTPD's TLS module, and libraries Debian's base system lacks; each package
    # is downloaded and unpacked once.
    mkdir -p "$PEERS/debs" "$ROOTFS"
    local pkg
    for pkg in pure-ftpd proftpd-core proftpd-mod-crypto libhiredis0.14 libmemcached11 \
        libmemcachedutil2 libhashkit2 libpcre2-posix3; do
        if ! compgen -G "$PEERS/debs/${pkg}_*.deb" >/dev/null; then
            (cd "$PEERS/debs" && apt-get download "$pkg" 2>/dev/null >/dev/null)
            dpkg -x "$PEERS"/debs/"${pkg}"_*.deb "$ROOTFS"
        fi
    done
    for bin in "$ROOTFS/usr/sbin/pure-ftpd" "$ROOTFS/usr/sbin/proftpd"; do
        if LD_LIBRARY_PATH="$(peer_libs)" ldd "$bin" | grep -q "not found"; then
            log "$bin: missing libraries:"
            LD_LIBRARY_PATH="$(peer_libs)" ldd "$bin" | grep "not found" >&2
        fi
    done

    if ! python3 -c 'import pyftpdlib, OpenSSL' 2>/dev/null; then
        log "pip install pyftpdlib pyOpenSSL"
        python3 -m pip install -q pyftpdlib pyOpenSSL
    fi

    if [[ ! -s "$TLS/cert.pem" ]]; then
        mkdir -p "$TLS"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=127.0.0.1" \
            -keyout "$TLS/key.pem" -out "$TLS/cert.pem" 2>/dev/null
        cat "$TLS/key.pem" "$TLS/cert.pem" >"$TLS/both.pem"
        chmod 600 "$TLS/key.pem" "$TLS/both.pem"
    fi

    if ! id ftpbench >/dev/null 2>&1; then
        useradd --system --shell /bin/sh --home-dir /nonexistent --no-create-home ftpbench
    fi
    log "ready"
}

# Sets the system account's password and home (the served directory).
system_user() {
    local user="$1" password="$2" dir="$3"
    if ! id "$user" >/dev/null 2>&1; then
        useradd --system --shell /bin/sh --home-dir "$dir" --no-create-home "$user"
    fi
    usermod --home "$dir" "$user" 2>/dev/null || true
    echo "$user:$password" | chpasswd
}

run_vsftpd() {
    local dir="$1" port="$2" lo="$3" hi="$4" user="$5" password="$6"
    system_user "$user" "$password" "$dir"
    local conf="$PEERS/run/vsftpd-$port.conf"
    mkdir -p "$PEERS/run" /var/run/vsftpd/empty
    cat >"$conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$port
background=NO
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
local_root=$dir
chroot_local_user=NO
pasv_enable=YES
pasv_min_port=$lo
pasv_max_port=$hi
pasv_address=127.0.0.1
port_enable=NO
seccomp_sandbox=NO
max_clients=5000
max_per_ip=5000
pam_service_name=vsftpd
userlist_enable=NO
xferlog_enable=NO
dirmessage_enable=NO
use_localtime=YES
idle_session_timeout=600
data_connection_timeout=300
secure_chroot_dir=/var/run/vsftpd/empty
ssl_enable=YES
rsa_cert_file=$TLS/cert.pem
rsa_private_key_file=$TLS/key.pem
allow_anon_ssl=NO
force_local_logins_ssl=NO
force_local_data_ssl=NO
ssl_tlsv1=NO
ssl_sslv2=NO
ssl_sslv3=NO
require_ssl_reuse=NO
ssl_ciphers=HIGH
EOF
    exec vsftpd "$conf"
}

run_pure_ftpd() {
    local dir="$1" port="$2" lo="$3" hi="$4" user="$5" password="$6"
    system_user "$user" "$password" "$dir"
    # -l unix: system accounts; -E: no anonymous; -H: no reverse DNS; -u 1: any non-root uid;
    # -c/-C: clients in all and per address; -L: list up to 200,000 files; -Y 1: TLS optional;
    # -2: certificate and key. Without -B it stays in the foreground.
    export LD_LIBRARY_PATH
    LD_LIBRARY_PATH="$(peer_libs)"
    exec "$ROOTFS/usr/sbin/pure-ftpd" -S "127.0.0.1,$port" -p "$lo:$hi" -P 127.0.0.1 \
        -l unix -E -H -u 1 -c 5000 -C 5000 -L 200000:5 -k 99 -I 600 \
        -Y 1 -2 "$TLS/cert.pem,$TLS/key.pem"
}

run_proftpd() {
    local dir="$1" port="$2" lo="$3" hi="$4" user="$5" password="$6"
    system_user "$user" "$password" "$dir"
    local run="$PEERS/run/proftpd-$port"
    mkdir -p "$run"
    cat >"$run/proftpd.conf" <<EOF
ServerType standalone
ServerName "proftpd bench"
DefaultServer on
DefaultAddress 127.0.0.1
SocketBindTight on
Port $port
PassivePorts $lo $hi
MasqueradeAddress 127.0.0.1
User $user
Group nogroup
Umask 022
AllowOverwrite on
UseIPv6 off
UseReverseDNS off
RequireValidShell off
AuthOrder mod_auth_unix.c
DefaultChdir $dir
MaxInstances 5000
MaxClients none
MaxClientsPerHost none
MaxLoginAttempts 10
TimeoutIdle 600
WtmpLog off
ScoreboardFile $run/scoreboard
PidFile $run/proftpd.pid
ListOptions "" maxfiles 1000000 maxdirs 1000000
ModulePath $ROOTFS/usr/lib/proftpd
LoadModule mod_tls.c
<IfModule mod_delay.c>
  DelayEngine off
</IfModule>
<IfModule mod_tls.c>
  TLSEngine on
  TLSProtocol TLSv1.2 TLSv1.3
  TLSRSACertificateFile $TLS/cert.pem
  TLSRSACertificateKeyFile $TLS/key.pem
  TLSRequired off
  TLSOptions NoSessionReuseRequired
  TLSVerifyClient off
  TLSLog $run/tls.log
</IfModule>
EOF
    export LD_LIBRARY_PATH
    LD_LIBRARY_PATH="$(peer_libs)"
    exec "$ROOTFS/usr/sbin/proftpd" --nodaemon --config "$run/proftpd.conf"
}

run_pyftpdlib() {
    local dir="$1" port="$2" lo="$3" hi="$4" user="$5" password="$6"
    exec python3 "$HERE/peers/pyftpd.py" "$dir" "$port" "$lo" "$hi" "$user" "$password" \
        "$TLS/cert.pem" "$TLS/key.pem"
}

version() {
    case "$1" in
    vsftpd) dpkg-query -W -f '${Version}\n' vsftpd ;;
    pure-ftpd) dpkg-deb -f "$PEERS"/debs/pure-ftpd_*.deb Version ;;
    proftpd) dpkg-deb -f "$PEERS"/debs/proftpd-core_*.deb Version ;;
    pyftpdlib) python3 -c 'import importlib.metadata as m; print(m.version("pyftpdlib"))' ;;
    iperf3) iperf3 --version | head -1 ;;
    *) echo "unknown peer $1" >&2; return 1 ;;
    esac
}

case "${1:-}" in
install) install_peers ;;
run)
    shift
    [[ $# -eq 7 ]] || { echo "usage: $0 run NAME DIR PORT PASV_LO PASV_HI USER PASSWORD" >&2; exit 2; }
    name="$1"
    shift
    case "$name" in
    vsftpd) run_vsftpd "$@" ;;
    pure-ftpd) run_pure_ftpd "$@" ;;
    proftpd) run_proftpd "$@" ;;
    pyftpdlib) run_pyftpdlib "$@" ;;
    *) echo "unknown peer $name" >&2; exit 2 ;;
    esac
    ;;
version) version "${2:?peer name}" ;;
*)
    echo "usage: $0 install | run NAME DIR PORT PASV_LO PASV_HI USER PASSWORD | version NAME" >&2
    exit 2
    ;;
esac
