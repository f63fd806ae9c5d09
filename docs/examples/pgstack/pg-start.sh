#!/bin/sh
# The PostgreSQL image's entrypoint: on an empty data directory (a new
# volume) create the cluster with the password from POSTGRES_PASSWORD_FILE
# (a secret), then run the server in the foreground as postgres, so the
# task's stop signal reaches it directly.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
bin=/usr/lib/postgresql/15/bin
as_pg() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
	pw=${POSTGRES_PASSWORD_FILE:?POSTGRES_PASSWORD_FILE must name the password file}
	as_pg "$bin/initdb" -D "$PGDATA" -U "${POSTGRES_USER:-postgres}" --pwfile="$pw" \
		-E UTF8 --locale=C --auth-local=trust --auth-host=scram-sha-256 >/dev/null
	# initdb allows host connections from the loopback only; the app
	# connects over the service network.
	echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
fi
exec setpriv --reuid=postgres --regid=postgres --init-groups \
	"$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp -c jit=off "$@"
