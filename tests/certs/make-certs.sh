#!/usr/bin/env bash
# Generates throwaway test certificates into DIR (never committed):
#   ca.{crt,key}          the test CA
#   server.{crt,key}      CN=localhost, SAN localhost + 127.0.0.1, signed by ca
#   client.{crt,key}      CN=sensor-1, signed by ca (mutual TLS, identity_as_username)
#   rogue-ca.crt, rogue.{crt,key}   a client certificate from another CA
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
[ -f client.crt ] && [ -f rogue.crt ] && exit 0
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=hato test CA" -keyout ca.key -out ca.crt
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=rogue CA" -keyout rogue-ca.key -out rogue-ca.crt
leaf() {  # name cn ca-prefix ext
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr"
  printf '%s\n' "$4" > "$1.ext"
  ossl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 30 -extfile "$1.ext" -out "$1.crt"
  rm -f "$1.csr" "$1.ext"
}
leaf server localhost ca "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
leaf client sensor-1 ca "extendedKeyUsage=clientAuth"
leaf rogue sensor-1 rogue-ca "extendedKeyUsage=clientAuth"
chmod 644 ./*.key
