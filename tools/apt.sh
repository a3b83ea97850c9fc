#!/usr/bin/env bash
# vstor_apt_install PKG...: installs the Debian packages among PKG that are
# missing, with apt-get, as root or through passwordless sudo (as on CI
# runners). Installs nothing when all are present, so it is safe to call
# on every run. Without root and sudo it names the missing packages and the
# command that installs them, and returns 1.
# Sourced by the scripts in tools/.

vstor_apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local as_root=()
    [ "$(id -u)" -ne 0 ] && sudo -n true 2>/dev/null && as_root=(sudo -n)
    if { [ "$(id -u)" -eq 0 ] || [ ${#as_root[@]} -gt 0 ]; } && command -v apt-get >/dev/null; then
        printf 'apt: installing %s\n' "${missing[*]}" >&2
        "${as_root[@]}" apt-get update -qq >&2
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
            install -y -qq --no-install-recommends "${missing[@]}" >&2
    else
        printf 'apt: missing Debian packages: %s\n' "${missing[*]}" >&2
        printf 'apt: install them with: sudo apt-get update && sudo apt-get install -y %s\n' "${missing[*]}" >&2
        return 1
    fi
}
