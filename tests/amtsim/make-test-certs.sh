#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# make-test-certs.sh DIR: TLS material for the emulator's TLS-enforcing machines (and demos).
# Makes, in DIR (created if needed, mode 0700):
#   ca.pem    a test CA certificate (give it to the agent with --amt-ca)
#   ca.key    its private key
#   amt.pem   AMT's certificate: CN "AMT RCFG", as AMT's is before provisioning, signed by the
#             test CA (give it to amtsim with --tls-cert)
#   amt.key   its private key (amtsim --tls-key)
# Nothing here is secret beyond a test run; the certificates are valid for 30 days.
set -eu

if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
dir=$1
command -v openssl >/dev/null 2>&1 || {
	echo "$0: openssl is needed (Debian: apt install openssl)" >&2
	exit 1
}

umask 077
mkdir -p "$dir"
ext="$dir/amt.ext"
trap 'rm -f "$ext" "$dir/amt.csr"' EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 -sha256 \
	-keyout "$dir/ca.key" -out "$dir/ca.pem" \
	-subj "/O=amt-enlist tests/CN=amt-enlist test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-addext "subjectKeyIdentifier=hash" 2>/dev/null

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
	-keyout "$dir/amt.key" -out "$dir/amt.csr" \
	-subj "/CN=AMT RCFG" 2>/dev/null

cat >"$ext" <<'EOF'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid:always
EOF

serial=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
openssl x509 -req -in "$dir/amt.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
	-set_serial "0x$serial" -days 30 -sha256 -extfile "$ext" \
	-out "$dir/amt.pem" 2>/dev/null

chmod 0644 "$dir/ca.pem" "$dir/amt.pem"
openssl verify -CAfile "$dir/ca.pem" "$dir/amt.pem" >/dev/null
