#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# Test certificates for provserver.py, made at test time with the openssl CLI (EC P-256 keys,
# valid for 30 days). Usage: make-certs.sh DIR
#
#   DIR/ca.pem                      the test CA (what a client is given: --cacert)
#   DIR/server.pem, server.key      a server certificate from the test CA for 127.0.0.1, ::1 and
#                                   localhost (subjectAltName), extendedKeyUsage serverAuth
#   DIR/wrong-ca.pem                another CA, that no client is told about
#   DIR/wrong.pem, wrong.key        the same names, but issued by the other CA: verification fails
#   DIR/wrongname.pem, wrongname.key   issued by the test CA, but for another name
#                                   (wrong.invalid): host name verification fails
# The CA keys are deleted at the end; nothing here is secret outside a test.
set -eu

dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

key() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

ca() { # NAME SUBJECT
	key "$1.key"
	openssl req -x509 -new -key "$1.key" -sha256 -days 30 -subj "$2" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" \
		-out "$1.pem"
}

leaf() { # NAME CA SUBJECT-CN SAN
	key "$1.key"
	openssl req -new -key "$1.key" -subj "/CN=$3" -out "$1.csr"
	cat >"$1.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$4
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EOF
	openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
		-sha256 -days 30 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
	rm -f "$1.csr" "$1.ext"
}

ca ca "/CN=amt-enlist test CA"
ca wrong-ca "/CN=amt-enlist wrong CA"
leaf server ca 127.0.0.1 "IP:127.0.0.1,IP:::1,DNS:localhost"
leaf wrong wrong-ca 127.0.0.1 "IP:127.0.0.1,IP:::1,DNS:localhost"
leaf wrongname ca wrong.invalid "DNS:wrong.invalid"
rm -f ca.key wrong-ca.key ca.srl wrong-ca.srl
chmod 644 ca.pem wrong-ca.pem server.pem wrong.pem wrongname.pem
