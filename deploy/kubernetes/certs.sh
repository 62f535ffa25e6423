#!/bin/sh
# certs.sh [DIR]: make a CA and the webhook's serving certificate for the
# Service wardgate-webhook in namespace wardgate (the name the API server
# checks), and the caBundle for the webhook configurations. Needs openssl.
# See docs/kubernetes.md; cert-manager can do the same (its CA injector
# fills caBundle).
set -eu
dir=${1:-certs}
svc=${WARDGATE_SERVICE:-wardgate-webhook}
ns=${WARDGATE_NAMESPACE:-wardgate}
days=${WARDGATE_CERT_DAYS:-365}
mkdir -p "$dir"
cd "$dir"
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=$svc-ca" -keyout ca.key -out ca.crt 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj "/CN=$svc.$ns.svc" -keyout tls.key -out tls.csr 2>/dev/null
printf 'subjectAltName=DNS:%s,DNS:%s.%s,DNS:%s.%s.svc\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n' \
  "$svc" "$svc" "$ns" "$svc" "$ns" > ext.cnf
openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
  -extfile ext.cnf -out tls.crt 2>/dev/null
rm -f tls.csr ext.cnf ca.srl
base64 < ca.crt | tr -d '\n' > ca.bundle
echo "$dir/tls.crt and $dir/tls.key: the serving certificate for $svc.$ns.svc"
echo "$dir/ca.bundle: the caBundle of both webhook configurations (keep $dir/ca.key offline)"
