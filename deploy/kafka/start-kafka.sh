#!/usr/bin/env bash
# Entrypoint of the `kafka` service of deploy/docker-compose.yml (apache/kafka image): adds what
# the image's own start-up cannot do, then hands over to it (/etc/kafka/docker/run).
#
# 1. TLS: the keystore made by deploy/generate-certs.sh is mounted at /etc/kafka/secrets; its
#    password is read from the file beside it and passed on as the ssl.keystore.password and
#    ssl.key.password of the broker (the image turns KAFKA_* variables into server.properties).
# 2. SASL/SCRAM: the users live in the KRaft metadata log, and on a broker whose listeners all
#    demand authentication there is no way in to create the first one. So on the first start
#    (an empty data directory) the storage is formatted here, with one SCRAM-SHA-512
#    credential per user (kafka-storage format --add-scram). The image's launch step formats
#    too; it then finds the storage formatted and goes on ("already formatted").
#    Later starts leave the users alone: to change a password, see set-scram-passwords.sh.
# 3. A client configuration for the health check (SASL_SSL as ketenbus-admin), so that
#    "healthy" means what the services need: TLS and a SCRAM login on the client listener.
#
# The passwords come in as SCRAM_<USER>_PASSWORD, not KAFKA_*: the image would write every
# KAFKA_* variable into server.properties.
set -euo pipefail

secrets=/etc/kafka/secrets
data="${KAFKA_LOG_DIRS:?KAFKA_LOG_DIRS is not set}"
users=(admin intake trajectory notifications learning analytics)

keystore_password="$(cat "$secrets/keystore.password")"
export KAFKA_SSL_KEYSTORE_PASSWORD="$keystore_password"
export KAFKA_SSL_KEY_PASSWORD="$keystore_password"

scram_arguments=()
for user in "${users[@]}"; do
    variable="SCRAM_${user^^}_PASSWORD"
    password="${!variable:?$variable is not set (deploy/.env: KAFKA_${user^^}_PASSWORD)}"
    scram_arguments+=(--add-scram "SCRAM-SHA-512=[name=ketenbus-$user,password=$password]")
done

if [ -e "$data/meta.properties" ]; then
    echo "===> ketenbus: $data is formatted; the SCRAM users in it are kept as they are"
else
    echo "===> ketenbus: formatting $data with the SCRAM-SHA-512 users: ${users[*]/#/ketenbus-}"
    # What kafka-storage needs to know of this node, from the same variables the broker's
    # server.properties is made from.
    format_config=/tmp/ketenbus-format.properties
    cat > "$format_config" <<EOF
process.roles=${KAFKA_PROCESS_ROLES}
node.id=${KAFKA_NODE_ID}
controller.quorum.voters=${KAFKA_CONTROLLER_QUORUM_VOTERS}
controller.listener.names=${KAFKA_CONTROLLER_LISTENER_NAMES}
listeners=${KAFKA_LISTENERS}
advertised.listeners=${KAFKA_ADVERTISED_LISTENERS}
listener.security.protocol.map=${KAFKA_LISTENER_SECURITY_PROTOCOL_MAP}
inter.broker.listener.name=${KAFKA_INTER_BROKER_LISTENER_NAME}
log.dirs=${data}
EOF
    /opt/kafka/bin/kafka-storage.sh format --config "$format_config" \
        --cluster-id "${CLUSTER_ID:?CLUSTER_ID is not set}" "${scram_arguments[@]}"
    rm -f "$format_config"
fi

# For the health check: kafka-broker-api-versions.sh --command-config /tmp/ketenbus-admin.properties
umask 077
cat > /tmp/ketenbus-admin.properties <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="ketenbus-admin" password="${SCRAM_ADMIN_PASSWORD}";
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/ca.crt
EOF
umask 022

exec /etc/kafka/docker/run
