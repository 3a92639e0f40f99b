#!/usr/bin/env bash
# Start a Tiled server whose catalog AND tabular storage are PostgreSQL databases: the Tiled that
# several ingesters (`ingester watch` / `ingest-dir --parallel-writes`) write to at once.
#
#   TILED_SINGLE_USER_API_KEY=... scripts/tiled-postgres.sh --data /srv/tiled/data --read /data/xpd [options]
#
# Options (all optional except that a key must be in the environment):
#   --postgres URL     the PostgreSQL server, without a database   [postgresql://postgres@127.0.0.1:5432]
#   --catalog-db NAME  database for Tiled's catalog (created if missing)     [tiled_catalog]
#   --tables-db NAME   database for Tiled's tabular storage (created if missing) [tiled_tables]
#   --data DIR         writable folder for arrays (zarr)             [./tiled-data]
#   --read DIR         repeatable: folders Tiled may read registered files from (the data roots)
#   --host H --port P  where to listen                               [127.0.0.1 8000]
#   --workers N        uvicorn worker processes                       [1]
#   --pool N           connections per pool (catalog and tables), each worker [10]
#   --print-config     write the config file, print its path, do not start the server
#
# The API key comes from TILED_SINGLE_USER_API_KEY (or TILED_API_KEY) and never appears in argv, in
# the config file (which holds "${TILED_SINGLE_USER_API_KEY}", expanded by Tiled when it reads the
# file) or in the output: the server is started through tiled's own app factory, which does not
# print the key (`tiled serve ... ` without --api-key prints it). Needs the psycopg, asyncpg and
# adbc-driver-postgresql packages (tabular storage on PostgreSQL goes through ADBC).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$here/../.venv/bin/python" ]]; then python="$here/../.venv/bin/python"; else python=python3; fi
fi

postgres="postgresql://postgres@127.0.0.1:5432"
catalog_db="tiled_catalog"
tables_db="tiled_tables"
data="./tiled-data"
host="127.0.0.1"
port="8000"
workers="1"
pool="10"
print_config=""
read_dirs=()

while [[ $# -gt 0 ]]; do
    case "$1" in
        --postgres) postgres="$2"; shift 2 ;;
        --catalog-db) catalog_db="$2"; shift 2 ;;
        --tables-db) tables_db="$2"; shift 2 ;;
        --data) data="$2"; shift 2 ;;
        --read) read_dirs+=("$2"); shift 2 ;;
        --host) host="$2"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        --workers) workers="$2"; shift 2 ;;
        --pool) pool="$2"; shift 2 ;;
        --print-config) print_config=1; shift ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

if [[ -z "${TILED_SINGLE_USER_API_KEY:-}" ]]; then
    if [[ -z "${TILED_API_KEY:-}" ]]; then
        echo "error: set TILED_SINGLE_USER_API_KEY (or TILED_API_KEY) to the key writers will use" >&2
        exit 2
    fi
    export TILED_SINGLE_USER_API_KEY="$TILED_API_KEY"
fi

mkdir -p "$data"
data="$(cd "$data" && pwd)"
config="$data/.tiled-postgres.yml"

# Create the two databases if missing, write the config file, and create Tiled's catalog tables
# once here (not in each uvicorn worker). Paths and URLs travel through the environment, not argv
# (a URL may hold a password).
TP_POSTGRES="$postgres" TP_CATALOG_DB="$catalog_db" TP_TABLES_DB="$tables_db" TP_DATA="$data" \
TP_CONFIG="$config" TP_POOL="$pool" TP_READ="$(printf '%s\n' "${read_dirs[@]+"${read_dirs[@]}"}")" \
"$python" - <<'PY'
import json, os, subprocess, sys
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

server = make_url(os.environ["TP_POSTGRES"]).set(drivername="postgresql")
def url(database):
    return server.set(database=database).render_as_string(hide_password=False)

with psycopg.connect(url(server.database or "postgres"), autocommit=True) as conn:
    for name in (os.environ["TP_CATALOG_DB"], os.environ["TP_TABLES_DB"]):
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}", file=sys.stderr)

catalog_uri = url(os.environ["TP_CATALOG_DB"])
reads = [str(Path(p).absolute()) for p in os.environ["TP_READ"].splitlines() if p]
pool = int(os.environ["TP_POOL"])
config = {
    "authentication": {"single_user_api_key": "${TILED_SINGLE_USER_API_KEY}", "allow_anonymous_access": False},
    "trees": [{
        "path": "/",
        "tree": "catalog",
        "args": {
            "uri": catalog_uri,
            "specs": [{"name": "CatalogOfBlueskyRuns", "version": "3.0"}],
            "writable_storage": [os.environ["TP_DATA"], url(os.environ["TP_TABLES_DB"])],
            "readable_storage": reads,
            "init_if_not_exists": False,
            "catalog_pool_size": pool, "storage_pool_size": pool,
        },
    }],
}
path = Path(os.environ["TP_CONFIG"])
tmp = path.with_suffix(".tmp")
tmp.write_text(json.dumps(config, indent=1))  # JSON is YAML
os.chmod(tmp, 0o600)  # it holds the databases' URLs
tmp.replace(path)
# tiled's own catalog initialisation; a no-op on an initialised database. The URI goes in argv of
# a short-lived child here: put the password in ~/.pgpass or PGPASSWORD rather than in the URL.
subprocess.run([sys.executable, "-m", "tiled", "catalog", "init", "--if-not-exists", catalog_uri],
               check=True, stdout=subprocess.DEVNULL)
PY

if [[ -n "$print_config" ]]; then
    echo "$config"
    exit 0
fi
export TILED_CONFIG="$config"
exec "$python" -m uvicorn --factory tiled.server.app:app_factory --host "$host" --port "$port" \
    --workers "$workers" --no-access-log
