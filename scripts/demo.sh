#!/usr/bin/env bash
# `make demo`: the real dataset when found (SCL_DATASET, else ../shared/data/dataset_SCL.csv; it says which),
# else synthetic data -> container/train on a SageMaker-shaped /opt/ml tree -> container/serve on
# 127.0.0.1:${PORT:-8080} -> one JSON and one CSV invocation with curl -> SIGTERM. Everything under .demo/.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
cd "$root"
export PATH="$root/.venv/bin:$PATH"
port="${PORT:-8080}"
demo="$root/.demo"
opt_ml="$demo/opt_ml"
if curl -s -o /dev/null "http://127.0.0.1:$port/ping" || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "demo: port $port is in use: stop what listens there, or choose another with PORT=8081 make demo" >&2
  exit 1
fi
rm -rf "$demo"
mkdir -p "$opt_ml/input/config" "$opt_ml/input/data/training" "$opt_ml/model" "$opt_ml/output"

if real="$(python -m local_aws.real_dataset 2>"$demo/dataset.why")"; then
  echo "== 1. data: the real dataset, $real (read in place)"
  ln -s "$real" "$opt_ml/input/data/training/flights.csv"
else
  echo "== 1. data: 20,000 synthetic SCL-shaped flights ($(cat "$demo/dataset.why"))"
  python -m scl_delay.synthetic --rows 20000 --out "$opt_ml/input/data/training/flights.csv"
fi

echo "== 2. train (as SageMaker would: OPT_ML_DIR=$opt_ml)"
echo '{"num_round": "300"}' > "$opt_ml/input/config/hyperparameters.json"
echo '{"training": {"ContentType": "text/csv", "TrainingInputMode": "File"}}' \
  > "$opt_ml/input/config/inputdataconfig.json"
echo '{"current_host": "algo-1", "hosts": ["algo-1"]}' > "$opt_ml/input/config/resourceconfig.json"
OPT_ML_DIR="$opt_ml" container/train | grep -E '^(stage .*: done|round |metric (validation|test):(recall|precision|f1|pr_auc)=)' || true
ls "$opt_ml/model"

echo "== 3. serve on 127.0.0.1:$port"
OPT_ML_DIR="$opt_ml" SAGEMAKER_BIND_TO_PORT="$port" container/serve > "$demo/serve.log" 2>&1 &
server=$!
trap 'kill -TERM "$server" 2>/dev/null || true' EXIT
for _ in $(seq 150); do
  if curl -sf "http://127.0.0.1:$port/ping" > /dev/null; then break; fi
  if ! kill -0 "$server" 2>/dev/null; then cat "$demo/serve.log" >&2; exit 1; fi
  sleep 0.1
done
curl -sS "http://127.0.0.1:$port/ping"; echo

echo "== 4. POST /invocations, JSON in, JSON out (with explanations)"
curl -sS -X POST "http://127.0.0.1:$port/invocations?explain=true&top=2" -H 'Content-Type: application/json' \
  -d '{"instances": [
        {"Fecha-I": "2017-07-14 19:30:00", "OPERA": "Grupo LATAM", "TIPOVUELO": "I", "Des-I": "SBGR"},
        {"Fecha-I": "2017-03-08 07:05:00", "OPERA": "Sky Airline", "TIPOVUELO": "N", "Des-I": "SCFA"}]}'
echo

echo "== 5. POST /invocations, CSV in (header-less: Fecha-I,OPERA,TIPOVUELO,Des-I), CSV out"
printf '2017-12-22 23:55:00,Grupo LATAM,I,KMIA\n2017-05-03 06:40:00,Sky Airline,N,SCIE\n' |
  curl -sS -X POST "http://127.0.0.1:$port/invocations" -H 'Content-Type: text/csv' -H 'Accept: text/csv' \
    --data-binary @-

echo "== 6. an invalid record gets a 400 naming record and field"
curl -sS -X POST "http://127.0.0.1:$port/invocations" -H 'Content-Type: application/json' \
  -d '[{"Fecha-I": "2017-01-01 10:00", "OPERA": "Grupo LATAM", "TIPOVUELO": "X", "Des-I": "SCFA"}]' \
  -w '\nHTTP %{http_code}\n'

echo "== 7. SIGTERM: gunicorn drains and exits"
kill -TERM "$server"
wait "$server" && echo "serve exited 0"
trap - EXIT
