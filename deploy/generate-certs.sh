#!/bin/sh
# The TLS material of the Kafka in docker-compose.yml, made with openssl: a private CA, and a
# certificate for the broker signed by it (for the names kafka, localhost and 127.0.0.1).
# ECDSA keys on the P-256 curve, which Java (the broker) and Python's ssl (the services) speak.
# Written to deploy/certs/ (ignored by git):
#
#   certs/ca/ca.key, ca.crt      the CA. Only this script uses the key: to sign the next
#                                broker certificate (--renew). Nothing mounts this directory.
#   certs/kafka-ca/ca.crt        the CA certificate, public: the services and kafka-topics
#                                verify the broker with it (KAFKA_SSL_CAFILE)
#   certs/mailpit/               the mail catcher's key and certificate (name mailpit), for
#                                STARTTLS from notifications and Alertmanager
#   certs/kafka-broker/          the broker's: keystore.p12 (its key and certificate chain),
#                                keystore.password, and ca.crt for its own health check
#
#   ./generate-certs.sh          make what is missing; never replaces anything
#   ./generate-certs.sh --renew  a new broker certificate from the same CA (do it before the
#                                one in use expires, then: docker compose up -d --force-recreate kafka)
#
# Permissions: certs/ is 0700, so no other user of this machine can reach into it. The broker
# runs as uid 1000 in its container and the services as uid 10001: the mounted directories
# and their files are world-readable so that those uids can read them, and certs/ around them
# is what keeps everyone else out. generate-env.sh runs this script on its first run.
set -eu
cd "$(dirname "$0")"

CA_DAYS=3650
BROKER_DAYS=730

renew=false
case "${1:-}" in
    "") ;;
    --renew) renew=true ;;
    *) echo "usage: $0 [--renew]" >&2; exit 2 ;;
esac

umask 077
mkdir -p certs/ca
chmod 700 certs certs/ca

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no

[dn]
CN = unused

[ca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[broker_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
# kafka: the services and kafka-topics on the compose network; localhost and 127.0.0.1: tools
# on this machine through the published port 19092.
subjectAltName = DNS:kafka, DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[mailpit_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
# mailpit: notifications and Alertmanager on the compose network (STARTTLS, verified).
subjectAltName = DNS:mailpit
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

serial() { echo "0x$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"; }
hex() { od -An -tx1 -N32 /dev/urandom | tr -d ' \n'; }

if [ ! -e certs/ca/ca.key ]; then
    openssl req -x509 -new -config "$work/openssl.cnf" -extensions ca_ext \
        -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days "$CA_DAYS" -set_serial "$(serial)" \
        -subj "/CN=Ketenbus Kafka CA (docker compose)" \
        -keyout certs/ca/ca.key -out certs/ca/ca.crt 2> "$work/log" \
        || { cat "$work/log" >&2; exit 1; }
    echo "made the CA: certs/ca/ca.crt (valid $CA_DAYS days)"
fi

# The public parts: readable by the containers' users (see Permissions above).
mkdir -p certs/kafka-ca certs/kafka-broker
chmod 755 certs/kafka-ca certs/kafka-broker
cp certs/ca/ca.crt certs/kafka-ca/ca.crt
cp certs/ca/ca.crt certs/kafka-broker/ca.crt
chmod 644 certs/kafka-ca/ca.crt certs/kafka-broker/ca.crt

# The mail catcher's certificate, from the same CA: notifications speaks STARTTLS to every
# relay not on loopback and verifies it (SMTP_CA_FILE adds this CA to the system's).
mkdir -p certs/mailpit
chmod 755 certs/mailpit
if [ ! -e certs/mailpit/mailpit.crt ] || [ "$renew" = true ]; then
    openssl req -new -config "$work/openssl.cnf" \
        -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
        -subj "/CN=mailpit" -keyout "$work/mailpit.key" -out "$work/mailpit.csr" 2> "$work/log" \
        || { cat "$work/log" >&2; exit 1; }
    openssl x509 -req -in "$work/mailpit.csr" -CA certs/ca/ca.crt -CAkey certs/ca/ca.key \
        -set_serial "$(serial)" -sha256 -days "$BROKER_DAYS" \
        -extfile "$work/openssl.cnf" -extensions mailpit_ext -out "$work/mailpit.crt" 2> "$work/log" \
        || { cat "$work/log" >&2; exit 1; }
    chmod 644 "$work/mailpit.key" "$work/mailpit.crt"
    mv "$work/mailpit.key" certs/mailpit/mailpit.key
    mv "$work/mailpit.crt" certs/mailpit/mailpit.crt
    echo "made the mail catcher's certificate: certs/mailpit/mailpit.crt"
fi

if [ -e certs/kafka-broker/keystore.p12 ] && [ "$renew" = false ]; then
    echo "certs/kafka-broker/keystore.p12 exists; not replacing it (--renew makes a new one)"
    exit 0
fi

# The broker's key never lands outside the keystore: it is made in the temporary directory.
openssl req -new -config "$work/openssl.cnf" \
    -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
    -subj "/CN=kafka" -keyout "$work/broker.key" -out "$work/broker.csr" 2> "$work/log" \
    || { cat "$work/log" >&2; exit 1; }
openssl x509 -req -in "$work/broker.csr" -CA certs/ca/ca.crt -CAkey certs/ca/ca.key \
    -set_serial "$(serial)" -sha256 -days "$BROKER_DAYS" \
    -extfile "$work/openssl.cnf" -extensions broker_ext -out "$work/broker.crt" 2> "$work/log" \
    || { cat "$work/log" >&2; exit 1; }
openssl verify -CAfile certs/ca/ca.crt "$work/broker.crt" > /dev/null

# PKCS12 with explicit modern algorithms, so that OpenSSL 1.1 and 3 make the same kind of
# file; Java (the broker) reads PKCS12 with AES and PBKDF2.
hex > "$work/keystore.password"
openssl pkcs12 -export -name kafka \
    -in "$work/broker.crt" -inkey "$work/broker.key" -certfile certs/ca/ca.crt \
    -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256 \
    -passout "file:$work/keystore.password" -out "$work/keystore.p12"
chmod 644 "$work/keystore.p12" "$work/keystore.password"
# Each file is replaced by a rename, never half-written.
mv "$work/keystore.password" certs/kafka-broker/keystore.password.new
mv "$work/keystore.p12" certs/kafka-broker/keystore.p12.new
mv certs/kafka-broker/keystore.password.new certs/kafka-broker/keystore.password
mv certs/kafka-broker/keystore.p12.new certs/kafka-broker/keystore.p12
echo "made the broker certificate: certs/kafka-broker/keystore.p12, $(openssl x509 -noout -enddate -in "$work/broker.crt")"
