# Sourced by scripts/serve and scripts/test: installs what the project needs on a fresh Debian or Ubuntu machine,
# and nothing twice. Safe to run again: every step checks before it acts.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${GEOSERVER_VENV:-$ROOT/.venv}"
APT_UPDATED=0

say() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else say "root is needed to run: $*"; exit 1
    fi
}

# apt_install PKG...: install those of the packages that are not installed yet.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        say "apt-get not found: install ${missing[*]} by hand (this script knows Debian and Ubuntu)"; exit 1
    fi
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=1
    fi
    say "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pg_major() { ls /usr/lib/postgresql 2>/dev/null | grep -E '^[0-9]+$' | sort -n | tail -n 1; }

ensure_postgis() {
    if [ -z "$(pg_major)" ]; then
        # We run a private cluster of our own: ask Debian's packaging not to create and start a system one.
        if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
            as_root mkdir -p /etc/postgresql-common
            echo "create_main_cluster = false" | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
        fi
        apt_install postgresql
    fi
    local major; major="$(pg_major)"
    [ -f "/usr/share/postgresql/$major/extension/postgis.control" ] || apt_install "postgresql-$major-postgis-3"
}

find_python() {
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"; return 0
        fi
    done
    return 1
}

ensure_python() {
    PYTHON="$(find_python)" || { apt_install python3 python3-venv python3-dev; PYTHON="$(find_python)" || {
        say "Python 3.11 or newer is needed"; exit 1; }; }
    "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
}

# ensure_venv EXTRAS: a virtual environment with the package installed in development mode.
ensure_venv() {
    local extras="$1" stamp want
    [ -x "$VENV/bin/python" ] || { say "creating $VENV"; "$PYTHON" -m venv "$VENV"; }
    want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -c1-16)-$extras"
    stamp="$VENV/.geoserver-installed"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing Python packages into $VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e "$ROOT${extras:+[$extras]}"
        echo "$want" > "$stamp"
    fi
}

# Front-end packages from the npm registry, at set-up time only: nothing loads from a CDN. `ensure_npm_packages dev`
# (scripts/test) also installs the test tools (axe-core, Lighthouse); `prod` (scripts/serve) only what browsers get.
# Install scripts are not run: no package here needs one. Then scripts/build-web copies what browsers need into
# geoserver/web/vendor/, which the server serves under /map/vendor/.
ensure_npm_packages() {
    local mode="${1:-dev}" want have stamp="$ROOT/node_modules/.geoserver-installed" built
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    want="$(sha256sum "$ROOT/package-lock.json" | cut -c1-16)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    # A full install (with the test tools) serves scripts/serve as well.
    if [ "$have" != "$want-dev" ] && { [ "$mode" = dev ] || [ "$have" != "$want-prod" ]; }; then
        say "installing front-end packages (npm ci)"
        local omit=()
        [ "$mode" = prod ] && omit=(--omit=dev)
        (cd "$ROOT" && npm ci --ignore-scripts "${omit[@]}" --no-audit --no-fund --loglevel=error >/dev/null)
        echo "$want-$mode" > "$stamp"
    fi
    built="$ROOT/geoserver/web/vendor/.built-from"
    if [ "$(cat "$built" 2>/dev/null)" != "$want" ]; then
        "$ROOT/scripts/build-web" >/dev/null
        echo "$want" > "$built"
    fi
}
