#!/usr/bin/env bash
# Part of `make demo`: export notebooks/serve.ipynb as a service, run it, call it with curl.
set -euo pipefail
MLNB="${MLNB:-.venv/bin/mlnb}"
PORT="${PORT:-8765}"
OUT=build/service

"$MLNB" export notebooks/serve.ipynb -o "$OUT" --force --parity
"$MLNB" serve "$OUT" --port "$PORT" > build/service.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break; sleep 0.2; done

show() { echo; echo "\$ $*"; "$@"; echo; }
show curl -s "http://127.0.0.1:$PORT/predict" -H 'content-type: application/json' \
     -H 'X-Request-ID: demo-1' -d @"$OUT/example.json"
show curl -s "http://127.0.0.1:$PORT/probability" -H 'content-type: application/json' -d @"$OUT/example.json"
# One wrong value in an otherwise good record: a 422 that names the field.
BAD=$(sed '0,/"mean radius": [0-9.]*/s//"mean radius": "big"/' "$OUT/example.json")
show curl -s -w '  (HTTP %{http_code})' "http://127.0.0.1:$PORT/predict" -H 'content-type: application/json' \
     -d "$BAD"
echo; echo "\$ curl -s http://127.0.0.1:$PORT/metrics | grep mlnb_requests_total"
curl -s "http://127.0.0.1:$PORT/metrics" | grep '^mlnb_requests_total' || true
echo; echo "OpenAPI page: http://127.0.0.1:$PORT/docs  (while \`mlnb serve $OUT\` runs)"
echo; echo "\$ mlnb lineage breast-cancer-classifier   # from the data to the service"
"$MLNB" lineage breast-cancer-classifier
