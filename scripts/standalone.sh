#!/usr/bin/env bash
# Start/stop `airflow standalone` (api-server, scheduler, dag-processor, triggerer) with this repo's
# DAGs, in the background, for `make up` / `make down`. Expects scripts/airflow-env.sh to be sourced.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$root/.venv}"
pidfile="$AIRFLOW_HOME/standalone.pid"
log="$AIRFLOW_HOME/standalone.log"
port="${AIRFLOW__API__PORT:-8080}"
mkdir -p "$AIRFLOW_HOME"
export PATH="$venv/bin:$PATH"  # standalone starts its components as `airflow ...` subprocesses

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

case "${1:-}" in
  start)
    if running; then echo "airflow standalone already running (pid $(cat "$pidfile")) on http://localhost:$port"; exit 0; fi
    export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
    # Queue a finished task's successor sooner (Airflow's default idle sleep is 1 s), as docker-compose.yaml does.
    export AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="${AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME:-0.25}"
    "$venv/bin/airflow" db migrate >/dev/null
    setsid nohup "$venv/bin/airflow" standalone >"$log" 2>&1 < /dev/null &
    echo $! >"$pidfile"
    for _ in $(seq 1 120); do
      if curl -fsS "http://127.0.0.1:$port/api/v2/monitor/health" >/dev/null 2>&1; then
        echo "Airflow is up: http://localhost:$port  (user admin; password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)"
        exit 0
      fi
      running || { echo "airflow standalone exited; last lines of $log:"; tail -30 "$log"; exit 1; }
      sleep 1
    done
    echo "airflow standalone did not answer on port $port within 120 s; see $log"; exit 1 ;;
  stop)
    if running; then
      pid="$(cat "$pidfile")"
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -KILL -- "-$pid" 2>/dev/null || true
      echo "airflow standalone stopped"
    else
      echo "airflow standalone not running"
    fi
    rm -f "$pidfile" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
