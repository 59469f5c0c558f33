#!/usr/bin/env bash
# Starts a throw-away clickhouse-server on loopback for the collector benchmarks and runs
# `bench query-clickhouse` against it (see docs/benchmarks.md):
#   tests/bench/clickhouse.sh 10000000          # load 10M summaries, time the API, report disk
#   KEEP=1 tests/bench/clickhouse.sh 10000000   # keep the data directory for another run
#   tests/bench/clickhouse.sh server            # only the server, until interrupted
#   BATCH_ROWS=250000 LOADERS=40 tests/bench/clickhouse.sh 10000000
#                                               # the writer's batch_rows; concurrent loaders
# The data lives in ${CH_DIR:-/tmp/tollgate-ch-bench}; the HTTP port is ${CH_PORT:-18123}.
set -euo pipefail
n="${1:-1000000}"
dir="${CH_DIR:-/tmp/tollgate-ch-bench}"
port="${CH_PORT:-18123}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$dir"
cat > "$dir/config.xml" <<XML
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <http_port>$port</http_port>
  <tcp_port>$((port + 1))</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$dir/data/</path>
  <tmp_path>$dir/tmp/</tmp_path>
  <user_files_path>$dir/user_files/</user_files_path>
  <format_schema_path>$dir/format_schemas/</format_schema_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
cat > "$dir/users.xml" <<XML
<yandex>
  <profiles><default><max_memory_usage>8000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
XML
if [ "$n" = server ]; then exec clickhouse-server --config-file="$dir/config.xml"; fi
clickhouse-server --config-file="$dir/config.xml" >"$dir/server.log" 2>&1 &
server=$!
cleanup() {
  kill "$server" 2>/dev/null || true
  wait "$server" 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$dir"; fi
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/ping" >/dev/null && break
  sleep 0.2
done
cd "$root"
cargo build --release -q -p tollgate-collector --example bench
/usr/bin/time -f "bench process: max RSS %M KiB" target/release/examples/bench query-clickhouse "http://127.0.0.1:$port" "$n"
echo "disk (data directory of the bench database): $(du -sb "$dir/data/data/tollgate_bench" | cut -f1) bytes"
curl -s "http://127.0.0.1:$port/" --data-binary \
  "SELECT table, sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts WHERE database = 'tollgate_bench' AND active GROUP BY table FORMAT TSV"
