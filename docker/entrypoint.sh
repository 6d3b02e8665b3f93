#!/bin/sh
# Container entrypoint. The first argument picks the role:
#   web        apply migrations, then serve with gunicorn (config/gunicorn.py)
#   live       the ASGI process of requests that wait (config/live.py, uvicorn)
#   worker     Celery worker
#   scheduler  Celery beat (the periodic sweeper)
#   consumer   the queue consumer (events from INTAKE_BROKER_URL)
#   migrate    apply migrations and exit
# Extra arguments after a role are passed on to its command. Anything else is
# run as given, e.g. `docker compose run --rm web python manage.py createsuperuser`.
set -eu

role="${1:-web}"
if [ "$#" -gt 0 ]; then
    shift
fi

# prometheus_client keeps one file per process in PROMETHEUS_MULTIPROC_DIR and
# /metrics sums them all, so files left by an earlier run would be counted
# again: the web role empties the folder before gunicorn starts.
reset_metrics_dir() {
    if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
        mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
        find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
    fi
}

case "$role" in
    web)
        python manage.py migrate --noinput
        reset_metrics_dir
        exec gunicorn --config config/gunicorn.py config.wsgi "$@"
        ;;
    live)
        exec python -m config.live "$@"
        ;;
    worker)
        exec celery --app config worker --loglevel INFO \
            --concurrency "${WORKER_CONCURRENCY:-2}" "$@"
        ;;
    scheduler)
        exec celery --app config beat --loglevel INFO \
            --schedule /tmp/celerybeat-schedule "$@"
        ;;
    consumer)
        exec python manage.py consume "$@"
        ;;
    migrate)
        exec python manage.py migrate --noinput "$@"
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
