"""Test settings: the production settings module, on PostgreSQL and Redis, with DEBUG off.

Defaults point at the local services; DATABASE_URL / REDIS_URL override them (CI sets both).
"""

import os
import tempfile

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jitaccess")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("JIT_MIN_GRANT_SECONDS", "1")
os.environ.setdefault("JIT_TOKEN_THROTTLE", "10000/min")
os.environ.setdefault("JIT_TOKEN_USER_THROTTLE", "10000/min")
os.environ.setdefault("JIT_DECIDE_THROTTLE", "10000/min")
os.environ.setdefault("JIT_REVEAL_THROTTLE", "10000/min")
os.environ.setdefault("JIT_DEMO_PASSWORD", "demo-password-for-tests")
# A fixed, test-only root key (base64 of 32 bytes); never the published development key.
os.environ.setdefault("JIT_ROOT_KEY", "dGVzdC1vbmx5LXJvb3Qta2V5LWZvci10aGUtc3VpdGU=")
# A fixed, test-only checkpoint signing seed, and a sink no other run shares.
os.environ.setdefault("JIT_AUDIT_SIGNING_KEY", "dGVzdC1vbmx5LWF1ZGl0LXNpZ25pbmctc2VlZC0zMmI=")
os.environ.setdefault("JIT_AUDIT_SINK", os.path.join(tempfile.mkdtemp(prefix="jit-test-sink-"), "checkpoints.jsonl"))
# Webhook tests post to a receiver on 127.0.0.1 over plain http.
os.environ.setdefault("JIT_WEBHOOK_ALLOW_HTTP", "true")
# Mail stays in memory, in the test process and in the workers tests start (which may override it).
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

from jitaccess.settings import *  # noqa: E402,F403

# Hashing speed is irrelevant to what the tests check.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
