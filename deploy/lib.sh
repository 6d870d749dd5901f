# shellcheck shell=bash
# Shared by the deploy/check-*.sh scripts (sourced; they define `log` and `die` first).

# Installs Debian's `prometheus` package (promtool and the server) unless both are present.
ensure_prometheus() {
    if command -v promtool >/dev/null && command -v prometheus >/dev/null; then
        return 0
    fi
    log "promtool/prometheus missing: installing Debian package prometheus"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || die "promtool/prometheus missing and not root (no sudo)"
        sudo="sudo -n"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || {
        $sudo apt-get update -qq >/dev/null 2>&1
        $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1
    } || die "apt-get install prometheus failed"
}
