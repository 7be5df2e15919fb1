# One image for web, worker and beat:
#   web:    (default command) gunicorn
#   worker: celery -A jitaccess worker -l info
#   beat:   celery -A jitaccess beat -l info --schedule /app/var/celerybeat-schedule
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
COPY --chown=jitaccess:jitaccess . .
# Static files are collected at build time; the secret key, root key (all zeros) and audit signing
# key (all ones) on this line are throwaways for this command only, never in the image's environment.
RUN DJANGO_SECRET_KEY=collectstatic-only JIT_ROOT_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    JIT_AUDIT_SIGNING_KEY=AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE= DJANGO_DEBUG=false \
    python manage.py collectstatic --noinput -v0 \
    && mkdir -p /app/var && chown -R jitaccess:jitaccess /app/var
USER jitaccess
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"
# Threaded workers: a streamed audit export of millions of rows outlives gunicorn's 30 s timeout,
# which with sync workers kills the worker mid-file; gthread workers keep checking in meanwhile.
CMD ["gunicorn", "jitaccess.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "gthread", \
     "--threads", "4", "--access-logfile", "-"]
