#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# pki.sh CA_DIR OUT_DIR NAME [NAME...]: the files QEMU's native TLS reads
# from libvirt's migrate_tls_x509_cert_dir (default /etc/pki/qemu), for one
# host, signed by the CA in CA_DIR (made there first when CA_DIR has none):
#
#   OUT_DIR/ca-cert.pem                       the CA both ends trust
#   OUT_DIR/server-cert.pem, server-key.pem   this host as a destination
#                                             (serverAuth; DNS names NAME...)
#   OUT_DIR/client-cert.pem, client-key.pem   this host as a source
#                                             (clientAuth; the destination
#                                             verifies it, migrate_tls_x509_verify)
#
# The first NAME is the subject's CN; every NAME is a DNS subjectAltName.
# QEMU on the source checks the destination's certificate against the
# host name of the migration URI, or against VIR_MIGRATE_PARAM_TLS_DESTINATION
# when the migration names one.  ECDSA P-256 keys: the whole rig's set takes
# a few openssl runs of milliseconds each.  Used by hosts.sh at start and by
# tests/e2e/test_tls_migration.py (a second CA that the rig does not trust).
set -euo pipefail

die() {
	echo "pki.sh: error: $*" >&2
	exit 1
}

(($# >= 3)) || die "usage: pki.sh CA_DIR OUT_DIR NAME [NAME...]"
ca=$1 out=$2
shift 2
command -v openssl >/dev/null || die "openssl not installed (run deploy/rig/install-deps.sh)"
umask 077
mkdir -p "$ca" "$out"

if [[ ! -s $ca/ca-key.pem || ! -s $ca/ca-cert.pem ]]; then
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$ca/ca-key.pem" -out "$ca/ca-cert.pem" -days 3650 \
		-subj "/O=ferry rig/CN=ferry rig CA $(basename "$ca")" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null ||
		die "cannot make the CA in $ca"
fi

cn=$1 san=""
for n in "$@"; do san+="${san:+,}DNS:$n"; done

# leaf ROLE PURPOSE: ROLE-key.pem and ROLE-cert.pem in OUT_DIR.
leaf() {
	local role=$1 purpose=$2
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$out/$role-key.pem" -subj "/O=ferry rig/CN=$cn" 2>/dev/null |
		openssl x509 -req -CA "$ca/ca-cert.pem" -CAkey "$ca/ca-key.pem" \
			-set_serial "$((RANDOM << 30 | RANDOM << 15 | RANDOM))" -days 3650 -out "$out/$role-cert.pem" \
			-extfile <(printf '%s\n' "basicConstraints=critical,CA:FALSE" \
				"keyUsage=critical,digitalSignature,keyEncipherment" \
				"extendedKeyUsage=$purpose" "subjectAltName=$san") 2>/dev/null ||
		die "cannot make $out/$role-cert.pem"
}

leaf server serverAuth
leaf client clientAuth
cp "$ca/ca-cert.pem" "$out/ca-cert.pem"
chmod 0644 "$out/ca-cert.pem" "$out/server-cert.pem" "$out/client-cert.pem"
chmod 0755 "$out"
