"""The Dockerfile, docker-compose.yml and docs/DEPLOY.md agree with the settings they deploy."""

from __future__ import annotations

import base64
import http.server
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from django.http.request import validate_host
from django.urls import resolve

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat", "migrate")
SECRETS_DIR = "deploy/secrets/"


# --- Reading the files ---


def dockerfile_final_stage() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the image's last stage, continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            instructions = []
        instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def instruction(name: str) -> list[str]:
    return [arguments for keyword, arguments in dockerfile_final_stage() if keyword == name]


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list), arguments
    return parsed


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def interpolate(value: str) -> str:
    """Compose's ${NAME:-default} with nothing set: the default (or empty)."""
    return re.sub(r"\$\{\w+(?::?[-?]([^}]*))?\}", lambda match: match.group(1) or "", value)


def service_environment(service: dict) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {name: interpolate(str(value)) for name, value in environment.items()}


def mounted_secrets(service: dict) -> set[str]:
    return {item if isinstance(item, str) else item["source"] for item in service.get("secrets", [])}


def clean_environment(**extra: str) -> dict[str, str]:
    """Nothing of this process's configuration: only what a container would be given."""
    base = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "SYSTEMROOT") if name in os.environ}
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    return {**base, "DJANGO_SETTINGS_MODULE": "jitaccess.settings", **extra}


def random_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def required_production_variables(var_dir: Path) -> list[str]:
    """Start the production settings with nothing set, adding each variable they stop on."""
    environment = clean_environment(DJANGO_DEBUG="false", JIT_VAR_DIR=str(var_dir))
    required: list[str] = []
    for _ in range(20):
        result = subprocess.run(
            [sys.executable, "-c", "import jitaccess.settings"],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode == 0:
            return required
        last_line = result.stderr.strip().splitlines()[-1]
        match = re.search(r"ImproperlyConfigured: ([A-Z][A-Z0-9_]*) (\(or \1_FILE\) )?must be set", last_line)
        assert match, f"the settings stopped on something other than a missing variable: {last_line}"
        required.append(match.group(1))
        environment[match.group(1)] = random_key()
    raise AssertionError(f"the settings kept asking for more: {required}")


@pytest.fixture(scope="module")
def required(tmp_path_factory) -> list[str]:
    return required_production_variables(tmp_path_factory.mktemp("var"))


@pytest.fixture
def generated_secrets(tmp_path) -> Path:
    folder = tmp_path / "secrets"
    result = subprocess.run(
        ["sh", str(ROOT / "deploy/make-secrets"), str(folder)],
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return folder


def container_environment(service: str, secrets: Path, sink_dir: Path, var_dir: Path, **overrides: str) -> dict:
    """The service's compose environment, its /run/secrets files and volumes mapped onto local folders."""
    environment = service_environment(compose()["services"][service])
    for name, value in environment.items():
        if value.startswith("/run/secrets/"):
            environment[name] = str(secrets / value.removeprefix("/run/secrets/"))
        elif value.startswith("/var/lib/jitaccess/audit/"):
            environment[name] = str(sink_dir / value.removeprefix("/var/lib/jitaccess/audit/"))
    return clean_environment(**{**environment, "JIT_VAR_DIR": str(var_dir), **overrides})


# --- The image ---


def test_the_image_runs_as_a_non_root_user():
    users = instruction("USER")
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    created = " ".join(instruction("RUN"))
    uid = re.search(rf"useradd [^&]*--uid (\d+)[^&]* {user}\b", created)
    assert uid and int(uid.group(1)) != 0
    # Only its working folders are handed to that user; the code stays root's.
    assert not any("--chown" in copy for copy in instruction("COPY") if not copy.startswith("--from"))


def test_the_health_check_probes_healthz_with_the_bundled_script():
    (health,) = instruction("HEALTHCHECK")
    command = exec_form(health.split(" CMD ", 1)[1])
    assert command == ["python", "/app/deploy/healthcheck.py"]
    assert resolve("/healthz").url_name == "healthz"
    assert compose()["services"]["web"]["healthcheck"]["test"] == ["CMD", *command]


def test_the_default_command_serves_the_wsgi_app_with_gunicorn():
    (cmd,) = instruction("CMD")
    command = exec_form(cmd)
    assert command[:2] == ["gunicorn", "jitaccess.wsgi"]
    assert command[command.index("--bind") + 1] == "0.0.0.0:8000"
    assert instruction("EXPOSE") == ["8000"]
    assert importlib.util.find_spec("gunicorn") and importlib.util.find_spec("jitaccess.wsgi")
    # web runs the image's own command, so the two cannot drift apart.
    assert "command" not in compose()["services"]["web"]


def test_the_image_installs_the_pinned_runtime_requirements():
    build_stage = (ROOT / "Dockerfile").read_text().split("\nFROM ")[1]
    assert "COPY requirements.txt ." in build_stage
    assert "pip install -r requirements.txt" in build_stage
    assert "--from=build /venv /venv" in instruction("COPY")
    # Only runtime packages: the test tools of requirements-dev.txt stay out of the image.
    assert "requirements-dev.txt" not in (ROOT / "Dockerfile").read_text()
    lines = [line for line in (ROOT / "requirements.txt").read_text().splitlines() if line.strip()]
    requirements = [line for line in lines if not line.startswith("#")]
    assert all("==" in line for line in requirements), "every runtime requirement is pinned exactly"
    pinned = {line.split("==")[0].split("[")[0].lower() for line in requirements}
    # The servers the image's commands start.
    assert {"gunicorn", "celery", "psycopg", "redis"} <= pinned


def test_no_secret_is_baked_into_the_image(required):
    variables = set(" ".join(instruction("ENV")).replace("=", " ").split())
    for name in required:
        assert name not in variables and f"{name}_FILE" not in variables
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "deploy/secrets" in ignored and ".env" in ignored


def test_the_build_collects_static_files_with_nothing_but_its_own_line(tmp_path):
    (collect,) = [run for run in instruction("RUN") if "collectstatic" in run]
    # The image's ENV, with JIT_VAR_DIR pointed at a scratch folder instead of /app/var.
    result = subprocess.run(
        ["sh", "-c", collect],
        cwd=ROOT,
        env=clean_environment(JIT_VAR_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "staticfiles" / "staticfiles.json").is_file()


# --- Compose ---


def test_every_app_service_runs_the_one_image():
    services = compose()["services"]
    images = {(services[name]["image"], str(services[name]["build"])) for name in APP_SERVICES}
    assert len(images) == 1


def test_worker_and_beat_run_celery_and_migrate_runs_the_migrations():
    services = compose()["services"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "jitaccess", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "jitaccess", "beat"]
    assert services["migrate"]["command"][:3] == ["python", "manage.py", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name in ("web", "worker", "beat"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["db"]["condition"] == "service_healthy"
        assert depends_on["redis"]["condition"] == "service_healthy"


def test_postgres_redis_and_web_have_health_checks():
    services = compose()["services"]
    assert services["db"]["image"].split(":")[1] in {"15", "16"}
    assert "pg_isready" in services["db"]["healthcheck"]["test"]
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["web"]["healthcheck"]["test"]


def test_every_variable_production_requires_is_given_to_every_app_service(required):
    assert {"DJANGO_SECRET_KEY", "JIT_ROOT_KEY", "JIT_AUDIT_SIGNING_KEY"} <= set(required)
    document = compose()
    declared = document["secrets"]
    for name in APP_SERVICES:
        service = document["services"][name]
        environment = service_environment(service)
        assert environment["DJANGO_DEBUG"] == "false"
        # Without DATABASE_URL and REDIS_URL each container would fall back to files of its own.
        for variable in [*required, "DATABASE_URL", "REDIS_URL"]:
            if variable in environment:
                # Given directly: never a secret's value written into the compose file.
                assert f"{variable}_FILE" not in environment
                continue
            path = environment.get(f"{variable}_FILE", "")
            assert path.startswith("/run/secrets/"), f"{name} is not given {variable}"
            secret = path.removeprefix("/run/secrets/")
            assert secret in mounted_secrets(service) and secret in declared, f"{name}: {secret} is not mounted"


def test_the_secret_files_are_generated_never_committed():
    for secret in compose()["secrets"].values():
        assert secret["file"].startswith(f"./{SECRETS_DIR}")
    assert SECRETS_DIR in (ROOT / ".gitignore").read_text().splitlines()
    ignored = subprocess.run(["git", "check-ignore", "-q", f"{SECRETS_DIR}jit_root_key"], cwd=ROOT)
    assert ignored.returncode == 0, "deploy/secrets/ is not git-ignored"
    tracked = subprocess.run(["git", "ls-files", SECRETS_DIR], cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout == ""


def test_make_secrets_generates_valid_keys_and_never_replaces_one(generated_secrets):
    for name in ("jit_root_key", "jit_audit_signing_key"):
        assert len(base64.b64decode((generated_secrets / name).read_text().strip(), validate=True)) == 32
    assert len((generated_secrets / "django_secret_key").read_text().strip()) >= 50
    password = (generated_secrets / "postgres_password").read_text().strip()
    database_url = (generated_secrets / "database_url").read_text().strip()
    assert database_url == f"postgres://jitaccess:{password}@db:5432/jitaccess"
    # The folder keeps the host's other users out; the files are readable by the containers' user.
    assert oct(generated_secrets.stat().st_mode & 0o777) == "0o700"
    assert {oct(path.stat().st_mode & 0o777) for path in generated_secrets.iterdir()} == {"0o644"}

    before = {path.name: path.read_text() for path in generated_secrets.iterdir()}
    again = subprocess.run(
        ["sh", str(ROOT / "deploy/make-secrets"), str(generated_secrets)], capture_output=True, text=True
    )
    assert again.returncode == 0 and "created" not in again.stdout
    assert {path.name: path.read_text() for path in generated_secrets.iterdir()} == before


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_service_starts_on_its_compose_configuration(service, generated_secrets, tmp_path):
    """The production settings load from exactly what compose gives (the database URL from its file)."""
    environment = container_environment(service, generated_secrets, tmp_path / "audit", tmp_path / "var")
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", SHOW_SETTINGS],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown == {
        "debug": False,
        "database": ["django.db.backends.postgresql", "db", "jitaccess"],
        "broker": "redis://redis:6379/0",
        "sink": str(tmp_path / "audit" / "checkpoints.jsonl"),
    }


SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; db = s.DATABASES['default']; "
    "print(json.dumps({'debug': s.DEBUG, 'database': [db['ENGINE'], db['HOST'], db['NAME']], "
    "'broker': s.CELERY_BROKER_URL, 'sink': s.JIT_AUDIT_SINK}))"
)


def test_the_audit_sink_has_a_volume_of_its_own():
    document = compose()
    services = document["services"]
    sink = service_environment(services["worker"])["JIT_AUDIT_SINK"]
    assert {service_environment(services[name])["JIT_AUDIT_SINK"] for name in APP_SERVICES} == {sink}
    folder = str(Path(sink).parent)

    def volume_at(service: str, target: str) -> list[str] | None:
        for mount in services[service].get("volumes", []):
            parts = mount.split(":")
            if parts[1] == target:
                return parts
        return None

    worker_mount = volume_at("worker", folder)
    web_mount = volume_at("web", folder)
    assert worker_mount and worker_mount[0] in document["volumes"] and len(worker_mount) == 2
    # The web tier reads it for verification and cannot rewrite it.
    assert web_mount and web_mount[0] == worker_mount[0] and web_mount[2] == "ro"
    database_volumes = {mount.split(":")[0] for mount in services["db"]["volumes"]}
    assert worker_mount[0] not in database_volumes
    # A volume over JIT_VAR_DIR would hide the static files the image collected there.
    for name in APP_SERVICES:
        assert "JIT_VAR_DIR" not in service_environment(services[name])
        assert volume_at(name, "/app/var") is None


# --- Connection URLs from files ---


def show_connection_urls(**environment: str) -> subprocess.CompletedProcess:
    code = "from django.conf import settings as s; print(s.DATABASES['default']['HOST'], s.CELERY_BROKER_URL)"
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", code],
        cwd=ROOT,
        env=clean_environment(DJANGO_DEBUG="true", **environment),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_settings_read_the_connection_urls_from_files(tmp_path):
    database_url = tmp_path / "database_url"
    database_url.write_text("postgres://jitaccess:s3cret@db.internal:5432/jitaccess\n")
    redis_url = tmp_path / "redis_url"
    redis_url.write_text("redis://:pw@redis.internal:6379/0\n")
    result = show_connection_urls(
        JIT_VAR_DIR=str(tmp_path / "var"), DATABASE_URL_FILE=str(database_url), REDIS_URL_FILE=str(redis_url)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["db.internal", "redis://:pw@redis.internal:6379/0"]


@pytest.mark.parametrize(
    "setup, message",
    [
        ("both", "set only one of DATABASE_URL and DATABASE_URL_FILE"),
        ("missing", "DATABASE_URL_FILE: cannot read {path}: No such file or directory"),
        ("empty", "DATABASE_URL_FILE: {path} is empty"),
    ],
)
def test_a_bad_url_file_stops_start_up_with_one_line_naming_it(tmp_path, setup, message):
    path = tmp_path / "database_url"
    environment = {"JIT_VAR_DIR": str(tmp_path / "var"), "DATABASE_URL_FILE": str(path)}
    if setup == "both":
        path.write_text("postgres://a@b/c")
        environment["DATABASE_URL"] = "postgres://a@b/c"
    elif setup == "empty":
        path.write_text("\n")
    result = show_connection_urls(**environment)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.strip().splitlines()[-1].endswith(message.format(path=path)), result.stderr


# --- The health check script ---


def load_healthcheck():
    spec = importlib.util.spec_from_file_location("deploy_healthcheck", ROOT / "deploy/healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "allowed, host",
    [
        (None, "localhost"),
        ("", "localhost"),
        ("*", "localhost"),
        ("jitaccess.example.com,localhost", "jitaccess.example.com"),
        (" .example.com , other.example.org", "example.com"),
    ],
)
def test_the_health_check_names_a_host_django_allows(allowed, host):
    healthcheck = load_healthcheck()
    assert healthcheck.probe_host(allowed) == host
    default = ["localhost", "127.0.0.1", "[::1]"]
    allowed_hosts = [item.strip() for item in (allowed or "").split(",") if item.strip()] or default
    assert validate_host(host, allowed_hosts)


class _Recorder(http.server.BaseHTTPRequestHandler):
    status = 200
    seen: list[tuple[str, str | None, str | None]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Host"), self.headers.get("X-Forwarded-Proto")))
        self.send_response(self.status)
        if self.status == 301:
            self.send_header("Location", "https://jitaccess.example.com/healthz")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status, healthy", [(200, True), (301, False), (400, False), (503, False)])
def test_the_health_check_asks_for_healthz_and_wants_a_200(status, healthy):
    handler = type("Handler", (_Recorder,), {"status": status, "seen": []})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        result = load_healthcheck().healthy(server.server_port, allowed_hosts="jitaccess.example.com")
    finally:
        server.shutdown()
        server.server_close()
    assert result is healthy
    # One request: a redirect is never followed.
    assert handler.seen == [("/healthz", "jitaccess.example.com", "https")]


def test_the_health_check_fails_when_nothing_listens():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    port = server.server_port
    server.server_close()
    assert load_healthcheck().healthy(port, timeout=1) is False


# --- Deployment checks and documentation ---

# Warnings `check --deploy` still reports, by id; any other warning or error fails here.
REMAINING_DEPLOY_WARNINGS: set[str] = set()


def test_check_deploy_passes_on_a_production_configuration(generated_secrets, tmp_path):
    environment = container_environment(
        "web",
        generated_secrets,
        tmp_path / "audit",
        tmp_path / "var",
        DJANGO_ALLOWED_HOSTS="jitaccess.example.com",
        DJANGO_CSRF_TRUSTED_ORIGINS="https://jitaccess.example.com",
        JIT_PUBLIC_URL="https://jitaccess.example.com",
        JIT_BEHIND_TLS_PROXY="true",
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = set(re.findall(r"\(([a-z_]+\.[EW]\d{3})\)", result.stdout + result.stderr))
    assert found == REMAINING_DEPLOY_WARNINGS, result.stdout + result.stderr
    assert (result.returncode == 0) is (not found), result.stderr


def settings_variables() -> dict[str, str]:
    """Every variable jitaccess/settings.py reads, with the helper that reads it."""
    text = (ROOT / "jitaccess/settings.py").read_text()
    pattern = r'\benv_(\w+)\(\s*"([A-Z][A-Z0-9_]*)"'
    found = {name: helper for helper, name in re.findall(pattern, text)}
    for name in re.findall(r'os\.(?:environ\.get|getenv)\(\s*"([A-Z][A-Z0-9_]*)"', text):
        found.setdefault(name, "environ")
    return found


def test_deploy_md_documents_every_variable_the_settings_read():
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", (ROOT / "docs/DEPLOY.md").read_text()))
    variables = settings_variables()
    assert {"DJANGO_SECRET_KEY", "JIT_ROOT_KEY", "DATABASE_URL"} <= set(variables)
    expected = set(variables)
    # Secrets are also read from a file named by NAME_FILE (jitaccess/env.py).
    expected |= {f"{name}_FILE" for name, helper in variables.items() if helper in {"secret", "key", "secret_or_none"}}
    assert expected <= documented, sorted(expected - documented)


def test_the_compose_file_names_only_variables_the_app_reads():
    known = set(settings_variables())
    known |= {f"{name}_FILE" for name in known}
    for name in APP_SERVICES:
        unknown = set(service_environment(compose()["services"][name])) - known
        assert not unknown, f"{name} sets variables nothing reads: {unknown}"
