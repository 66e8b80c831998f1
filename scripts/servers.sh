# The servers the tests and the benches run, found or installed without root.
# Sourced by scripts/test and scripts/bench (not run by itself); both call
# these functions under `set -euo pipefail`, so a failure stops the script
# with the message printed here.
#
#   ensure_carbon_venv VENV PYTHON PACKAGE...
#       A Python virtualenv at VENV with carbon and whisper (PACKAGE... are
#       the pip requirements): reused when carbon imports from it, else made
#       with PYTHON (-m venv) and installed from PyPI.
#   ensure_deb_server LABEL PACKAGE BIN_VAR DIR_VAR DEFAULT_DIR USABLE_FN
#       A server binary, usr/bin/PACKAGE of Debian's package PACKAGE: the one
#       $BIN_VAR names (which must run), else PACKAGE on PATH, else the one
#       unpacked into the directory $DIR_VAR (default DEFAULT_DIR; relative
#       to the cwd) by an earlier run, else Debian's package fetched there
#       (`apt-get download` + `dpkg-deb -x`, no root). USABLE_FN BIN says
#       whether BIN runs here. Sets SERVER_BIN to the binary's path and
#       SERVER_DIR to that directory.
#
# The binaries' usable checks: relay_usable and vm_usable.

# carbon-cache and whisper from PyPI, pinned so every machine tests (and
# benches) against the same server.
CARBON_PACKAGES=(carbon==1.1.10 whisper==1.1.10 Twisted==26.10.0)

carbon_usable() { # VENV
    [[ -f $1/bin/carbon-cache.py ]] &&
        "$1/bin/python" -c 'import carbon.util, whisper, twisted.internet' >/dev/null 2>&1
}

ensure_carbon_venv() {
    local venv=$1 python=$2
    shift 2
    if carbon_usable "$venv"; then
        echo "reusing it"
        return
    fi
    if [[ -e $venv && ! -f $venv/pyvenv.cfg ]]; then
        echo "$venv exists and is not a virtualenv; refusing to replace it (set GRAPHYTE_VENV)" >&2
        false
    fi
    rm -rf "$venv"
    if ! "$python" -m venv "$venv"; then
        echo "'$python -m venv' failed; on Debian: apt-get install python3-venv" >&2
        false
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input "$@"
    if ! carbon_usable "$venv"; then
        echo "carbon was installed into $venv but does not import" >&2
        false
    fi
}

# A carbon-c-relay that runs here: it prints its version, and every shared
# library it needs resolves (Debian's build needs libc and libssl3 only).
relay_usable() {
    [[ -x $1 ]] && "$1" -v 2>/dev/null | grep -q '^carbon-c-relay v' &&
        ! ldd "$1" 2>/dev/null | grep -q 'not found'
}

# A VictoriaMetrics that runs here (Debian's is a static Go binary).
vm_usable() {
    [[ -x $1 ]] && "$1" -version >/dev/null 2>&1 && ! ldd "$1" 2>/dev/null | grep -q 'not found'
}

# Debian's package PACKAGE, unpacked into DIR without root: `apt-get
# download` reads the system's package lists (readable by anyone); where
# there are none (a slimmed image), a private `apt-get update` fills a list
# directory of our own first. Unpacked next to the final place and renamed,
# so an interrupted run leaves no half-unpacked package behind.
fetch_deb() { # PACKAGE DIR
    local package=$1 dir=$2
    local work="$dir.tmp.$$"
    rm -rf "$work"
    mkdir -p "$work/deb"
    if ! (cd "$work/deb" && apt-get download -q -o "APT::Sandbox::User=$(id -un)" "$package"); then
        echo "apt-get download failed with the system's package lists; trying a private apt-get update" >&2
        local apt_opts=(-o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache"
            -o Debug::NoLocking=1 -o "APT::Sandbox::User=$(id -un)")
        mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
        apt-get update -qq "${apt_opts[@]}"
        (cd "$work/deb" && apt-get download -q "${apt_opts[@]}" "$package")
    fi
    local debs=("$work/deb/${package}_"*.deb)
    dpkg-deb -x "${debs[0]}" "$work/root"
    basename "${debs[0]}" >"$work/root/PACKAGE"
    rm -rf "$dir"
    mv "$work/root" "$dir"
    rm -rf "$work"
}

ensure_deb_server() {
    local label=$1 package=$2 env_var=$3 dir_var=$4 usable=$6
    local given=${!env_var:-} dir=${!dir_var:-$5}
    [[ $dir == /* ]] || dir="$PWD/$dir"
    SERVER_BIN=""
    SERVER_DIR=$dir
    if [[ -n $given ]]; then
        if ! "$usable" "$given"; then
            echo "$env_var=$given does not run here:" >&2
            ldd "$given" >&2 || true
            false
        fi
        SERVER_BIN=$given
        echo "$env_var"
    elif command -v "$package" >/dev/null && "$usable" "$(command -v "$package")"; then
        SERVER_BIN="$(command -v "$package")"
        echo "on PATH"
    elif "$usable" "$dir/usr/bin/$package"; then
        SERVER_BIN="$dir/usr/bin/$package"
        echo "reusing $dir ($(cat "$dir/PACKAGE" 2>/dev/null || echo '?'))"
    else
        if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
            echo "no $label ($package) on PATH and no apt-get/dpkg-deb to fetch Debian's;" \
                "install $package or set $env_var" >&2
            false
        fi
        fetch_deb "$package" "$dir"
        SERVER_BIN="$dir/usr/bin/$package"
        if ! "$usable" "$SERVER_BIN"; then
            echo "$SERVER_BIN was unpacked but does not run here:" >&2
            ldd "$SERVER_BIN" >&2 || true
            false
        fi
        echo "fetched $(cat "$dir/PACKAGE") into $dir"
    fi
}
