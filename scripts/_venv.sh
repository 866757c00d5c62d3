# shellcheck shell=bash
# Shared set-up for scripts/test and scripts/demo: source it, then call
#   gearq_venv EXTRA      (EXTRA is "dev" or "" for the runtime dependencies only)
# It creates .venv in the repository root if needed (python3 -m venv), installs gearq into it
# in editable mode, and puts .venv/bin first on PATH. The install is redone only when
# pyproject.toml changes (a stamp file in .venv records what was installed).
#
# Environment: PYTHON selects the interpreter (default: the first of python3, python3.13 ..
# python3.10 that is Python >= 3.10).

GEARQ_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GEARQ_VENV="$GEARQ_ROOT/.venv"

gearq_log() { printf '==> %s\n' "$*" >&2; }
gearq_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

gearq_is_root() { [ "$(id -u)" -eq 0 ]; }

gearq_find_python() {
    local candidates=() py
    if [ -n "${PYTHON:-}" ]; then candidates=("$PYTHON"); else
        candidates=(python3 python3.13 python3.12 python3.11 python3.10)
    fi
    for py in "${candidates[@]}"; do
        if command -v "$py" >/dev/null 2>&1 \
            && "$py" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

gearq_apt_install() {
    gearq_log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -q || gearq_die "apt-get update failed"
    gearq_log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" \
        || gearq_die "apt-get install $* failed"
}

gearq_make_venv() {
    local py="$1" ver
    if "$py" -m venv "$GEARQ_VENV" 2>"$GEARQ_ROOT/.venv-error.log"; then
        rm -f "$GEARQ_ROOT/.venv-error.log"
        return 0
    fi
    rm -rf "$GEARQ_VENV"
    ver="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if grep -qiE 'ensurepip|python3.*-venv' "$GEARQ_ROOT/.venv-error.log"; then
        if gearq_is_root && command -v apt-get >/dev/null 2>&1; then
            if apt-cache show "python${ver}-venv" >/dev/null 2>&1; then
                gearq_apt_install python3-venv "python${ver}-venv"
            else
                gearq_apt_install python3-venv
            fi
            "$py" -m venv "$GEARQ_VENV" || gearq_die "python -m venv still fails"
            rm -f "$GEARQ_ROOT/.venv-error.log"
            return 0
        fi
        cat "$GEARQ_ROOT/.venv-error.log" >&2
        gearq_die "the venv module is missing: run 'apt-get install python3-venv' (or python${ver}-venv) as root"
    fi
    cat "$GEARQ_ROOT/.venv-error.log" >&2
    gearq_die "could not create $GEARQ_VENV"
}

gearq_venv() {
    local extra="${1:-}" py spec stamp want
    if [ ! -x "$GEARQ_VENV/bin/python" ] || ! "$GEARQ_VENV/bin/python" -c '' 2>/dev/null; then
        py="$(gearq_find_python)" || gearq_die "Python >= 3.10 not found (set PYTHON=/path/to/python3)"
        gearq_log "creating $GEARQ_VENV with $py ($("$py" --version 2>&1))"
        rm -rf "$GEARQ_VENV"
        gearq_make_venv "$py"
    fi
    want="$(cd "$GEARQ_ROOT" && cat pyproject.toml | cksum | cut -d' ' -f1)"
    stamp="$GEARQ_VENV/.gearq-installed${extra:+-$extra}"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        spec="."
        [ -n "$extra" ] && spec=".[$extra]"
        gearq_log "pip install -e '$spec' into .venv"
        # pip's errors are shown; only the warnings about missing local mirror folders
        # (from a machine-wide pip.conf) are filtered out.
        (cd "$GEARQ_ROOT" && set -o pipefail \
            && "$GEARQ_VENV/bin/python" -m pip install -q -e "$spec" 2>&1 \
            | { grep -v "^WARNING: Location 'file:" || true; } >&2) \
            || gearq_die "pip install -e '$spec' failed"
        echo "$want" >"$stamp"
        # A dev install includes the runtime install.
        [ -n "$extra" ] && echo "$want" >"$GEARQ_VENV/.gearq-installed"
    fi
    export VIRTUAL_ENV="$GEARQ_VENV"
    export PATH="$GEARQ_VENV/bin:$PATH"
}

# gearmand is Debian's gearman-job-server; /usr/sbin is not always on PATH.
gearq_have_gearmand() {
    [ -n "${GEARQ_GEARMAND:-}" ] && [ -x "$GEARQ_GEARMAND" ] && return 0
    command -v gearmand >/dev/null 2>&1 || [ -x /usr/sbin/gearmand ]
}
