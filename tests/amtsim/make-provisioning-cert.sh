#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# make-provisioning-cert.sh [--cn NAME] [--no-intermediate] [--plain-leaf] DIR
#
# A test PKI for admin control mode activation, made at test time (nothing here is secret
# beyond a test run; the certificates are valid for 30 days). In DIR (created if needed, 0700):
#   prov-root.pem    the root CA: give it to amtsim with --trust-ca (its SHA-256 becomes an
#                    active certificate hash of the emulated AMT)
#   prov-int.pem     an intermediate CA (unless --no-intermediate)
#   prov-leaf.pem    the provisioning certificate: RSA 2048, CN NAME (default amt.example.test),
#                    OU "Intel(R) Client Setup Certificate", extended key usage serverAuth and
#                    Intel's AMT provisioning OID 2.16.840.1.113741.1.2.3, as AMT wants it
#                    (--plain-leaf: serverAuth only and no OU, which AMT refuses)
#   prov.pfx         the leaf's key, the leaf and its chain up to the root (PKCS#12, AES)
#   prov-pass.txt    the PKCS#12 password (amt-enlist --provisioning-cert-password-file)
set -eu

cn=amt.example.test
intermediate=yes
plain=no
while [ $# -gt 1 ]; do
	case $1 in
	--cn) cn=$2; shift 2 ;;
	--no-intermediate) intermediate=no; shift ;;
	--plain-leaf) plain=yes; shift ;;
	*) break ;;
	esac
done
if [ $# -ne 1 ] || [ -z "$1" ]; then
	echo "usage: $0 [--cn NAME] [--no-intermediate] [--plain-leaf] DIR" >&2
	exit 2
fi
dir=$1
command -v openssl >/dev/null 2>&1 || {
	echo "$0: openssl is needed (Debian: apt install openssl)" >&2
	exit 1
}

umask 077
mkdir -p "$dir"
trap 'rm -f "$dir"/*.csr "$dir"/*.ext "$dir/chain.pem"' EXIT

serial() { od -An -N8 -tx1 /dev/urandom | tr -d ' \n'; }

openssl req -x509 -newkey rsa:2048 -nodes -days 30 -sha256 \
	-keyout "$dir/prov-root.key" -out "$dir/prov-root.pem" \
	-subj "/O=amt-enlist tests/CN=amt-enlist test provisioning root" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-addext "subjectKeyIdentifier=hash" 2>/dev/null

issuer=prov-root
if [ "$intermediate" = yes ]; then
	printf '%s\n' "basicConstraints=critical,CA:TRUE,pathlen:0" \
		"keyUsage=critical,keyCertSign,cRLSign" "subjectKeyIdentifier=hash" \
		"authorityKeyIdentifier=keyid:always" >"$dir/int.ext"
	openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$dir/prov-int.key" \
		-out "$dir/int.csr" -subj "/O=amt-enlist tests/CN=amt-enlist test provisioning CA" \
		2>/dev/null
	openssl x509 -req -in "$dir/int.csr" -CA "$dir/prov-root.pem" -CAkey "$dir/prov-root.key" \
		-set_serial "0x$(serial)" -days 30 -sha256 -extfile "$dir/int.ext" \
		-out "$dir/prov-int.pem" 2>/dev/null
	issuer=prov-int
fi

if [ "$plain" = yes ]; then
	subject="/O=amt-enlist tests/CN=$cn"
	usage="serverAuth"
else
	subject="/O=amt-enlist tests/OU=Intel(R) Client Setup Certificate/CN=$cn"
	usage="serverAuth,2.16.840.1.113741.1.2.3"
fi
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
	"extendedKeyUsage=$usage" "subjectAltName=DNS:$cn" "subjectKeyIdentifier=hash" \
	"authorityKeyIdentifier=keyid:always" >"$dir/leaf.ext"
openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$dir/prov-leaf.key" \
	-out "$dir/leaf.csr" -subj "$subject" 2>/dev/null
openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/$issuer.pem" -CAkey "$dir/$issuer.key" \
	-set_serial "0x$(serial)" -days 30 -sha256 -extfile "$dir/leaf.ext" \
	-out "$dir/prov-leaf.pem" 2>/dev/null

if [ "$intermediate" = yes ]; then
	cat "$dir/prov-int.pem" "$dir/prov-root.pem" >"$dir/chain.pem"
	openssl verify -CAfile "$dir/prov-root.pem" -untrusted "$dir/prov-int.pem" \
		"$dir/prov-leaf.pem" >/dev/null
else
	cat "$dir/prov-root.pem" >"$dir/chain.pem"
	openssl verify -CAfile "$dir/prov-root.pem" "$dir/prov-leaf.pem" >/dev/null
fi
serial >"$dir/prov-pass.txt"
echo >>"$dir/prov-pass.txt"
openssl pkcs12 -export -inkey "$dir/prov-leaf.key" -in "$dir/prov-leaf.pem" \
	-certfile "$dir/chain.pem" -name "amt-enlist test provisioning" \
	-passout "file:$dir/prov-pass.txt" -out "$dir/prov.pfx"
chmod 0644 "$dir/prov-root.pem" "$dir/prov-leaf.pem"
