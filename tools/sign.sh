#!/usr/bin/env bash
# Test-signs the driver on Linux: Authenticode signature with a self-signed
# code-signing certificate, made with openssl and applied by osslsigncode,
# then checked with `osslsigncode verify`.
#
# Usage: tools/sign.sh [--in FILE.sys] [--out DIR] [--cert-dir DIR]
#   --in FILE.sys   the image to sign (default target/vstor/vstor.sys)
#   --out DIR       the signed package folder (default target/vstor/signed):
#                   the signed .sys, the INF next to the input (if any), and
#                   the certificate as .cer for Windows' certificate stores
#   --cert-dir DIR  where the test certificate lives (default target/sign);
#                   it is made once and reused, so every signature from this
#                   checkout chains to the same certificate
#
# The input is not modified: the build output stays byte-for-byte what the
# linker wrote, and the emulator keeps loading that.
#
# What Windows needs on top of this (docs/windows.md): test signing mode
# (bcdedit /set testsigning on), the certificate in the LocalMachine Root and
# TrustedPublisher stores, and a catalog (inf2cat) signed with the same
# certificate. This script signs the .sys only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

note() { printf 'sign: %s\n' "$*" >&2; }
fail() { note "$*"; exit 1; }

input="$root/target/vstor/vstor.sys"
out=""
cert_dir="$root/target/sign"
while [ $# -gt 0 ]; do
    case "$1" in
        --in) input=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --cert-dir) cert_dir=$2; shift 2 ;;
        *) note "unknown argument '$1' (expected --in FILE.sys, --out DIR or --cert-dir DIR)"; exit 64 ;;
    esac
done
[ -n "$out" ] || out="$(dirname "$input")/signed"

# shellcheck source=tools/apt.sh
source "$root/tools/apt.sh"

command -v openssl >/dev/null || vstor_apt_install openssl || fail "openssl is needed to make the test certificate"
command -v osslsigncode >/dev/null || vstor_apt_install osslsigncode || fail "osslsigncode is needed to sign the image"

[ -f "$input" ] || fail "the driver image '$input' does not exist; build it first with 'cargo make build' (or pass --in FILE.sys)."

# 1. The test certificate: made once, reused afterwards.
key="$cert_dir/vstor-test.key"
cert="$cert_dir/vstor-test.pem"
cer="$cert_dir/vstor-test.cer"
pfx="$cert_dir/vstor-test.pfx"
if [ ! -s "$key" ] || [ ! -s "$cert" ]; then
    mkdir -p "$cert_dir"
    note "creating the test certificate in $cert_dir"
    (umask 077 && openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days 3650 \
        -subj "/CN=vstor test signing (not trusted outside test machines)" \
        -addext "basicConstraints=critical,CA:FALSE" \
        -addext "keyUsage=critical,digitalSignature" \
        -addext "extendedKeyUsage=codeSigning" \
        -keyout "$key" -out "$cert" 2>/dev/null) \
        || fail "openssl could not create the test certificate in '$cert_dir'."
fi
# DER copy for certutil / certmgr, and a PFX (no password) for signtool /f.
[ -s "$cer" ] || openssl x509 -in "$cert" -outform der -out "$cer"
[ -s "$pfx" ] || openssl pkcs12 -export -inkey "$key" -in "$cert" -passout pass: -out "$pfx"

# 2. Sign a copy of the image into the package folder.
name=$(basename "$input")
mkdir -p "$out"
signed="$out/$name"
rm -f "$signed"
osslsigncode sign -certs "$cert" -key "$key" -h sha256 \
    -n "vstor" -i "https://example.invalid/vstor" \
    -in "$input" -out "$signed" >/dev/null \
    || fail "osslsigncode could not sign '$input'."
inf="$(dirname "$input")/${name%.sys}.inf"
[ -f "$inf" ] && cp "$inf" "$out/"
cp "$cer" "$out/"

# 3. The signature must verify against the certificate.
if ! report=$(osslsigncode verify -CAfile "$cert" -in "$signed" 2>&1); then
    printf '%s\n' "$report" >&2
    fail "osslsigncode does not accept the signature on '$signed'; the signed package is not usable."
fi
grep -q 'Signature verification: ok' <<<"$report" \
    || { printf '%s\n' "$report" >&2; fail "osslsigncode verify did not report 'Signature verification: ok' for '$signed'."; }

note "signed image:   $signed"
note "certificate:    $cer (import into LocalMachine Root and TrustedPublisher on the test machine)"
note "signing key:    $pfx (PFX without password, for signtool /f on Windows)"
note "verified with:  osslsigncode verify -CAfile $cert -in $signed"
