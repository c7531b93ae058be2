# The app's image: web (uvicorn), workers (manage.py temporal_worker) and one-shot jobs (migrate)
# all run from it. Slim, non-root, its dependencies pinned (docs/deploy/requirements.lock) and
# installed at build time, static files collected. Settings come from the environment at run
# time; no secret is in it.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /venv
COPY docs/deploy/requirements.lock /tmp/requirements.lock
RUN /venv/bin/pip install -r /tmp/requirements.lock
WORKDIR /app
COPY pyproject.toml manage.py ./
COPY approvals approvals
COPY workflows workflows
COPY templates templates
COPY static static
RUN /venv/bin/pip install --no-deps . \
 && DATA_DIR=/tmp/build SECRET_KEY=build-only-not-a-secret STATIC_ROOT=/app/staticfiles \
    /venv/bin/python manage.py collectstatic --noinput -v 0

FROM python:3.11-slim
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    STATIC_ROOT=/app/staticfiles DATA_DIR=/data LOG_FORMAT=json
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin app \
 && mkdir /data && chown app:app /data
COPY --from=build /venv /venv
COPY --from=build --chown=app:app /app /app
WORKDIR /app
USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["uvicorn", "approvals.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--forwarded-allow-ips", "*"]
