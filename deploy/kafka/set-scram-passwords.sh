#!/usr/bin/env bash
# Sets the SCRAM-SHA-512 password of every Ketenbus user on the running compose broker to the
# one in its environment (SCRAM_<USER>_PASSWORD, from KAFKA_<USER>_PASSWORD in deploy/.env).
# start-kafka.sh creates the users only when it formats an empty data directory; run this to
# change a password, or on a broker whose storage was formatted without the users (one that
# ran the earlier PLAINTEXT compose file):
#
#   docker compose up -d kafka                         # the broker, with the new .env values
#   docker compose exec kafka bash /opt/ketenbus/set-scram-passwords.sh
#   docker compose up -d                               # the services, with the new passwords
#
# It talks to the broker's INTERNAL listener (PLAINTEXT on the container's loopback, which
# nothing outside this container can reach), so it works even when no login works any more.
set -euo pipefail

for user in admin intake trajectory notifications learning analytics; do
    variable="SCRAM_${user^^}_PASSWORD"
    password="${!variable:?$variable is not set (deploy/.env: KAFKA_${user^^}_PASSWORD)}"
    /opt/kafka/bin/kafka-configs.sh --bootstrap-server localhost:9091 --alter \
        --entity-type users --entity-name "ketenbus-$user" \
        --add-config "SCRAM-SHA-512=[password=$password]"
done
