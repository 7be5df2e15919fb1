# One image for every process of a deployment (docker-compose.yml, docs/DEPLOY.md):
#   web:     (default command) gunicorn
#   worker:  celery -A jitaccess worker -l info
#   beat:    celery -A jitaccess beat -l info
#   migrate: python manage.py migrate --noinput
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt .
RUN python -m venv /venv && /venv/bin/pip install -r requirements.txt

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=jitaccess.settings \
    JIT_VAR_DIR=/app/var
RUN groupadd --system --gid 10001 jitaccess \
    && useradd --system --uid 10001 --gid jitaccess --home-dir /app --shell /usr/sbin/nologin jitaccess
WORKDIR /app
COPY --from=build /venv /venv
# The code and the collected static files belong to root: the app's user can read them, not change them.
COPY . .
# Static files are collected at build time (under JIT_VAR_DIR, where the settings serve them from). The
# secret key, root key and audit signing key on this line are random throwaways made for this command
# only: they are never in the image's environment or layers.
RUN DJANGO_DEBUG=false \
    DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    JIT_ROOT_KEY="$(python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')" \
    JIT_AUDIT_SIGNING_KEY="$(python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())')" \
    python manage.py collectstatic --noinput -v0
# What the app's user may write: JIT_VAR_DIR (beat's schedule file; without REDIS_URL the embedded
# broker and cache) and the audit checkpoint sink's folder, where docker-compose.yml mounts a volume of
# its own (a new volume takes this owner). What the settings made under JIT_VAR_DIR for collectstatic,
# besides the static files, goes: the app's user recreates it as its own.
RUN find /app/var -mindepth 1 -maxdepth 1 ! -name staticfiles -exec rm -rf {} + \
    && mkdir -p /var/lib/jitaccess/audit \
    && chown jitaccess:jitaccess /app/var \
    && chown jitaccess:jitaccess /var/lib/jitaccess/audit \
    && chmod 0750 /var/lib/jitaccess/audit
USER jitaccess
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
# Threaded workers: a streamed audit export of millions of rows outlives gunicorn's 30 s timeout,
# which with sync workers kills the worker mid-file; gthread workers keep checking in meanwhile.
# The heartbeat files live in /dev/shm (memory), so a slow container disk cannot time workers out.
# GUNICORN_CMD_ARGS adds or overrides options (e.g. "--workers 8") without a new image.
CMD ["gunicorn", "jitaccess.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "gthread", \
     "--threads", "4", "--worker-tmp-dir", "/dev/shm", "--access-logfile", "-"]
