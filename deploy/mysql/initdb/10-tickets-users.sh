#!/bin/bash
# Runs once, when the mysql service initialises an empty data volume (the
# official mysql image and the offline stand-in both run
# /docker-entrypoint-initdb.d/*.sh after creating MYSQL_DATABASE, against a
# server that only listens on its socket, with the root password set).
#
# Creates the three accounts of the deployment with only what they use:
#   APP_DB_USER     api, worker: SELECT, INSERT, UPDATE on MYSQL_DATABASE
#                   (nothing is ever deleted; no schema change, so a bug or
#                   an injection in the app cannot drop or alter a table)
#   MIGRATE_DB_USER migrate: rows and schema changes (CREATE, ALTER, INDEX,
#                   DROP, REFERENCES) on MYSQL_DATABASE only
#   BACKUP_DB_USER  mysqldump --single-transaction --routines --triggers:
#                   SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT on
#                   MYSQL_DATABASE, plus reading routine bodies
#                   (SHOW_ROUTINE on MySQL 8, mysql.proc on MariaDB)
set -euo pipefail

for v in MYSQL_ROOT_PASSWORD MYSQL_DATABASE APP_DB_USER APP_DB_PASSWORD MIGRATE_DB_USER MIGRATE_DB_PASSWORD \
    BACKUP_DB_USER BACKUP_DB_PASSWORD; do
    if [[ -z ${!v:-} ]]; then
        echo "10-tickets-users.sh: $v is not set" >&2
        exit 1
    fi
done

root_sql() {
    mysql --defaults-extra-file=<(printf '[client]\nuser=root\npassword="%s"\n' "$MYSQL_ROOT_PASSWORD") \
        --protocol=socket --batch --skip-column-names "$@"
}

# SQL string literal contents.
q() { printf '%s' "$1" | sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g"; }

db=$MYSQL_DATABASE
app="'$(q "$APP_DB_USER")'@'%'"
migrate="'$(q "$MIGRATE_DB_USER")'@'%'"
backup="'$(q "$BACKUP_DB_USER")'@'%'"

if root_sql -e 'SELECT VERSION()' | grep -qi mariadb; then
    routines="GRANT SELECT ON mysql.proc TO $backup;"
else
    routines="GRANT SHOW_ROUTINE ON *.* TO $backup;"
fi

root_sql <<SQL
CREATE USER IF NOT EXISTS $app IDENTIFIED BY '$(q "$APP_DB_PASSWORD")';
GRANT SELECT, INSERT, UPDATE ON \`$db\`.* TO $app;
CREATE USER IF NOT EXISTS $migrate IDENTIFIED BY '$(q "$MIGRATE_DB_PASSWORD")';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, INDEX, DROP, REFERENCES
    ON \`$db\`.* TO $migrate;
CREATE USER IF NOT EXISTS $backup IDENTIFIED BY '$(q "$BACKUP_DB_PASSWORD")';
GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON \`$db\`.* TO $backup;
$routines
SQL
echo "10-tickets-users.sh: created $APP_DB_USER, $MIGRATE_DB_USER and $BACKUP_DB_USER with access to $db"
