"""The container image, tested without a Docker engine (none runs here): the Dockerfile's shape is checked, the build
context is computed from .dockerignore, and the builder stage's steps are replayed: the context's files copied as the
COPY instructions say, a wheel built with `pip wheel --no-deps`, installed into a fresh venv, and the installed
console script run from a folder outside the repository (`--help`, `migrate`, `serve --port N`) so only what the wheel
carries (packaged `_manifest` documents, migrations, templates, the logo) is used. Then GET /api/manifest and
/healthz, and the image's HEALTHCHECK command itself, which must find the port `serve` really listens on. The replay
takes ~40-60 s: `SKIP_SLOW=1` skips it. (docs/operations.md records a real `docker build` and `docker compose up`.)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.fakes.server import free_port
from tests.ops.procs import settings_env_names

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE = REPO / "docker-compose.yml"
slow = pytest.mark.skipif(os.environ.get("SKIP_SLOW") == "1", reason="SKIP_SLOW=1: the image build replay is skipped")


# --- Dockerfile -------------------------------------------------------------------------------------------------------


@dataclass
class Instruction:
    command: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the (joined) line

    def exec_form(self) -> list[str] | None:
        """The JSON array of an exec-form instruction (CMD ["a"]), or None for the shell form."""
        text = self.args
        if self.command == "HEALTHCHECK":
            text = text.split("CMD", 1)[1].strip() if "CMD" in text else ""
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, command: str) -> list[Instruction]:
        return [i for i in self.instructions if i.command == command]

    def last(self, command: str) -> Instruction | None:
        found = self.all(command)
        return found[-1] if found else None


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages): joins `\\` continuations, drops comments and parser directives."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):  # a comment inside a continued instruction
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        logical.append((current + stripped).strip())
        current = ""
    if current.strip():
        logical.append(current.strip())

    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        command, _, rest = line.partition(" ")
        command = command.upper()
        rest = rest.strip()
        if command == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif command == "FROM":
            match = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.IGNORECASE)
            assert match, f"cannot read FROM {rest!r}"
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), match.group(1))
            stages.append(Stage(base=base, name=match.group(2), instructions=[]))
        else:
            assert stages or command in {"ARG"}, f"{command} before FROM"
            stages[-1].instructions.append(Instruction(command, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def test_dockerfile_is_a_slim_multi_stage_build(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder, runtime = stages[0], stages[-1]
    assert builder.name == "builder"
    assert builder.base == runtime.base == "python:3.11-slim"
    copies = [c.args for c in runtime.all("COPY")]
    assert any(c.startswith("--from=builder") and "/opt/venv" in c for c in copies), "runtime takes only the venv"
    runtime_runs = " ".join(r.args for r in runtime.all("RUN"))
    assert "pip install" not in runtime_runs and "apt-get install" not in runtime_runs, "nothing is built at runtime"


def test_no_buildkit_frontend_is_fetched() -> None:
    # A `# syntax=` directive makes BuildKit pull a front-end image from a registry: offline builds fail.
    first_lines = DOCKERFILE.read_text().splitlines()[:5]
    assert not [line for line in first_lines if re.match(r"#\s*syntax\s*=", line, re.IGNORECASE)], first_lines


def test_builder_builds_a_wheel_and_installs_it_into_a_venv(stages: list[Stage]) -> None:
    runs = " && ".join(r.args for r in stages[0].all("RUN"))
    # python3: the name every Debian-based image has (a debootstrapped base has no `python`).
    assert "python3 -m venv /opt/venv" in runs
    assert re.search(r"/opt/venv/bin/pip wheel --no-deps --wheel-dir /wheels \.", runs)
    assert re.search(r"/opt/venv/bin/pip install /wheels/saleor_vtmarketing-\*\.whl", runs)


def test_runtime_runs_as_an_unprivileged_user(stages: list[Stage]) -> None:
    user = stages[-1].last("USER")
    assert user is not None, "no USER: the app would run as root"
    name = user.args.split(":")[0]
    assert name not in {"root", "0"}
    # ...and the user exists and owns the data folder.
    runs = " ".join(r.args for r in stages[-1].all("RUN"))
    assert "useradd" in runs and re.search(rf"chown {name}(:\w+)? /data", runs)


def test_healthcheck_is_the_apps_own_probe_of_the_port_it_listens_on(stages: list[Stage]) -> None:
    check = stages[-1].last("HEALTHCHECK")
    assert check is not None
    command = check.exec_form()
    # Exec form, the app's console script (the slim image has no curl); no port in it: it finds the real one.
    assert command and command[:2] == ["saleor-vtmarketing", "healthcheck"], command
    assert "--port" not in command and "8000" not in check.args
    assert "curl" not in check.args and "wget" not in check.args
    assert re.search(r"--interval=\d+s", check.args) and re.search(r"--timeout=\d+s", check.args)


def test_data_volume_entrypoint_and_default_command(stages: list[Stage]) -> None:
    runtime = stages[-1]
    volume = runtime.last("VOLUME")
    assert volume is not None and json.loads(volume.args) == ["/data"]
    env = " ".join(e.args for e in runtime.all("ENV"))
    assert re.search(r"\bDATA_DIR=/data\b", env)
    assert re.search(r"\bPATH=/opt/venv/bin:", env)
    entrypoint, cmd = runtime.last("ENTRYPOINT"), runtime.last("CMD")
    assert entrypoint is not None and entrypoint.exec_form() == ["saleor-vtmarketing"]
    assert cmd is not None and cmd.exec_form() == ["serve"]  # `docker run IMAGE worker|migrate|backfill …` swaps it
    assert runtime.last("EXPOSE") is not None and runtime.last("EXPOSE").args == "8000"


# --- .dockerignore: the build context ---------------------------------------------------------------------------------


def _glob_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + "$")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line[1:] if negate else line
        rules.append((negate, _glob_regex(pattern.strip("/").removeprefix("./"))))
    return rules


def is_ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matching a folder matches everything in it."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negate, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def build_context() -> list[str]:
    """The files `docker build .` would send (relative paths)."""
    rules = dockerignore_rules()
    files = []
    for folder, dirs, names in os.walk(REPO):
        rel_folder = os.path.relpath(folder, REPO)
        # Big folders that are ignored outright are not walked (a test below checks that they are ignored).
        dirs[:] = [d for d in dirs if not (d in {".git", ".venv", "node_modules"} and rel_folder == ".")]
        for name in names:
            rel = os.path.normpath(os.path.join(rel_folder, name))
            if not is_ignored(rel, rules):
                files.append(rel)
    return sorted(files)


def test_dockerignore_keeps_the_context_to_the_package() -> None:
    rules = dockerignore_rules()
    for path in (".venv/bin/python", "tests/conftest.py", "tests/ops/procs.py", ".git/HEAD", "data/saleor-vtmarketing.db",
                 "data/secret.key", ".env", "saleor_app/__pycache__/cli.cpython-311.pyc", ".pytest_cache/x",
                 ".hypothesis/x", "docs/operations.md", "Dockerfile", "docker-compose.yml", "bench/run_all.py"):
        assert is_ignored(path, rules), f"{path} would be sent to the Docker daemon"
    for path in ("pyproject.toml", "README.md", "saleor_app/cli/run.py", "saleor_app/storage/migrations/env.py",
                 "manifest/order_confirmed.subscription.graphql", "saleor_app/web/static/app.css",
                 "saleor_app/web/brand/logo.png"):
        assert not is_ignored(path, rules), f"{path} is needed by the build"
    context = build_context()
    assert not [f for f in context if f.split("/")[0] not in {"pyproject.toml", "README.md", "manifest", "saleor_app"}]
    size = sum((REPO / f).stat().st_size for f in context)
    assert size < 5 * 1024 * 1024, f"build context is {size} bytes"


# --- docker-compose.yml -------------------------------------------------------------------------------------------------


def test_compose_file_runs_migrate_then_two_webs_behind_a_balancer_and_two_workers() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert "name" not in compose and "version" not in compose  # docker-compose 1.29 refuses `name`

    def command(name: str) -> list[str]:
        return services[name]["command"]

    def replicas(name: str) -> int:
        return int(services[name].get("deploy", {}).get("replicas", 1))

    assert ":-postgres:" in services["postgres"]["image"]  # ${POSTGRES_IMAGE:-postgres:…}: a mirror may replace it
    assert "healthcheck" in services["postgres"]
    assert command("migrate") == ["migrate"] and services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert command("web") == ["serve", "--no-worker"] and replicas("web") == 2
    # Workers serve their metrics (the documented alerts need their counters) and so get the image's health check.
    assert command("worker")[0] == "worker" and replicas("worker") == 2
    metrics_port = command("worker")[command("worker").index("--http-port") + 1]
    assert str(metrics_port) in [str(p) for p in services["worker"].get("expose", [])]
    assert "healthcheck" not in services["worker"], "the image's check probes the worker's --http-port"
    for name in ("web", "worker"):
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://") and "@postgres:5432/" in env["DATABASE_URL"]
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "one SECRET_KEY for every process, required"
        assert env["APP_URL"].startswith("${APP_URL:?"), "the manifest needs the public address: required"
        assert int(service["stop_grace_period"].rstrip("s")) >= 25, "room for the 20 s drain on SIGTERM"
        assert "build" in service or "image" in service
    balancers = [n for n, s in services.items() if "nginx" in str(s.get("image", ""))]
    assert len(balancers) == 1
    balancer = services[balancers[0]]
    assert balancer.get("ports"), "the balancer is the only published port"
    assert not [n for n in ("web", "worker", "migrate", "postgres") if services[n].get("ports")]
    (mount,) = [v for v in balancer["volumes"] if v.endswith(":/etc/nginx/conf.d/default.conf:ro")]
    nginx_conf = (COMPOSE.parent / mount.split(":")[0]).read_text()
    assert "web:8000" in nginx_conf and "proxy_pass" in nginx_conf and "resolver 127.0.0.11" in nginx_conf
    # Metrics are not published through the balancer (METRICS_TOKEN or not): scraped inside the network only.
    assert re.search(r"location = /metrics \{\s*return 404;", nginx_conf)


def test_env_example_names_every_variable_the_compose_file_requires() -> None:
    compose_text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{(\w+):\?", compose_text))
    assert {"SECRET_KEY", "APP_URL", "POSTGRES_PASSWORD"} <= required
    example = (REPO / ".env.example").read_text()
    names = set(re.findall(r"^#?\s*(\w+)=", example, re.MULTILINE))
    assert required <= names, required - names
    assert names & set(re.findall(r"\$\{(\w+)", compose_text)) >= {"METRICS_TOKEN", "PORT"}


# --- the docs list every setting ------------------------------------------------------------------------------------


def test_operations_docs_list_every_setting() -> None:
    candidates = [REPO / "docs" / "operations.md", REPO / "README.md"]
    documented = [p for p in candidates if p.exists() and "| `APP_URL`" in p.read_text()]
    assert documented, "no settings table found in docs/operations.md or README.md"
    text = documented[0].read_text()
    missing = sorted(name for name in settings_env_names() if f"`{name}`" not in text)
    assert not missing, f"settings missing from {documented[0].name}: {missing}"


# --- the build, replayed ----------------------------------------------------------------------------------------------


def _copy_context(stage: Stage, context: list[str], src: Path) -> None:
    """Carry out the stage's COPY instructions (from the build context) into `src`, its WORKDIR."""
    context_set = set(context)
    for copy in stage.all("COPY"):
        parts = [p for p in shlex.split(copy.args) if not p.startswith("--")]
        *sources, dest = parts
        target = src / dest
        for source in sources:
            files = [f for f in context if f == source or f.startswith(source.rstrip("/") + "/")]
            assert files, f"COPY {source}: not in the build context"
            for f in files:
                if f == source:
                    out = target / Path(f).name if dest.endswith("/") else target
                else:
                    out = target / os.path.relpath(f, source)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / f, out)
        assert all(f in context_set for f in context)


def _run(args: list[str], *, env: dict[str, str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@slow
def test_image_steps_build_install_and_run_outside_the_repository(tmp_path: Path, stages: list[Stage]) -> None:
    started = time.monotonic()
    builder, runtime = stages[0], stages[-1]
    src, venv, wheels, run, data = (tmp_path / n for n in ("src", "venv", "wheels", "run", "data"))
    run.mkdir()
    base_env = {k: v for k, v in os.environ.items()
                if k.upper() not in settings_env_names(field_names_too=True) and k not in {"PYTHONPATH", "VIRTUAL_ENV", "TEST_DATABASE_URL"}}
    base_env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")

    # Builder stage: COPY …, python -m venv /opt/venv, pip wheel --no-deps ., pip install /wheels/*.whl
    _copy_context(builder, build_context(), src)
    assert (src / "pyproject.toml").exists() and (src / "manifest").is_dir() and (src / "saleor_app").is_dir()
    _run([sys.executable, "-m", "venv", str(venv)], env=base_env, cwd=tmp_path)
    pip = str(venv / "bin" / "pip")
    _run([pip, "wheel", "--no-deps", "--wheel-dir", str(wheels), str(src)], env=base_env, cwd=src, timeout=600)
    (wheel,) = wheels.glob("saleor_vtmarketing-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("saleor_app/_manifest/order_confirmed.subscription.graphql", "saleor_app/storage/migrations/env.py",
                   "saleor_app/web/templates/app.html", "saleor_app/web/static/app.css",
                   "saleor_app/web/templates/home.html", "saleor_app/web/brand/logo.png"):
        assert needed in names, f"{needed} is not in the wheel"
    assert any(n.startswith("saleor_app/storage/migrations/versions/") and n.endswith(".py") for n in names)
    assert not [n for n in names if n.startswith("tests/") or "__pycache__" in n]
    _run([pip, "install", str(wheel)], env=base_env, cwd=tmp_path, timeout=600)
    built = time.monotonic() - started

    # Runtime stage: ENV PATH=/opt/venv/bin:$PATH DATA_DIR=/data LOG_FORMAT=json; WORKDIR outside the sources.
    # TMPDIR: the container's own /tmp, where `serve` says which port it listens on for the HEALTHCHECK.
    (tmp_path / "tmp").mkdir()
    env = dict(base_env, PATH=f"{venv / 'bin'}:{base_env.get('PATH', '')}", DATA_DIR=str(data), LOG_FORMAT="json",
               PYTHONUNBUFFERED="1", TMPDIR=str(tmp_path / "tmp"), PORT=str(free_port()))
    entrypoint = runtime.last("ENTRYPOINT").exec_form()  # type: ignore[union-attr]
    assert entrypoint == ["saleor-vtmarketing"] and shutil.which("saleor-vtmarketing", path=env["PATH"]) == str(
        venv / "bin" / "saleor-vtmarketing")

    where = _run([str(venv / "bin" / "python"), "-c",
                  "import saleor_app, saleor_app.saleor.documents as d; print(saleor_app.__file__); print(d.manifest_dir())"],
                 env=env, cwd=run).stdout.split()
    assert all(Path(p).is_relative_to(venv) for p in where), f"not the installed package: {where}"
    assert Path(where[1]).name == "_manifest"

    help_text = _run([*entrypoint, "--help"], env=env, cwd=run).stdout
    for command in ("serve", "worker", "migrate", "channels", "deliveries"):
        assert command in help_text

    assert "up to date" in _run([*entrypoint, "migrate"], env=env, cwd=run).stdout
    assert (data / "saleor-vtmarketing.db").exists()
    assert (data / "secret.key").exists(), "no SECRET_KEY given: one is generated into the data volume"

    port = free_port()
    serve = subprocess.Popen([*entrypoint, *runtime.last("CMD").exec_form(), "--host", "127.0.0.1", "--port", str(port)],  # type: ignore[union-attr]
                             env=env, cwd=run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        with httpx.Client(timeout=30) as client:
            while True:
                assert serve.poll() is None, serve.stdout.read().decode() if serve.stdout else "serve exited"
                try:
                    if client.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "serve did not answer /healthz within 90 s"
                time.sleep(0.1)
            manifest = client.get(f"{base}/api/manifest")
            assert manifest.status_code == 200
            body = manifest.json()
            assert body["id"] == "vtmarketing.saleor-app" and body["permissions"] == ["MANAGE_ORDERS"]
            packaged = (Path(where[1]) / "order_confirmed.subscription.graphql").read_text().strip()
            queries = [hook["query"] for hook in body["webhooks"] if hook["asyncEvents"] == ["ORDER_CONFIRMED"]]
            assert queries and queries[0].startswith(packaged[:200])
            assert client.get(f"{base}/readyz").status_code == 200
            assert client.get(f"{base}/app").status_code in (200, 400, 401, 403)  # the page's template loads
            assert "text/html" in client.get(f"{base}/").headers["content-type"]  # homepageUrl
            logo = client.get(f"{base}/brand/logo.png")
            assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"
        # The image's own HEALTHCHECK command, as the engine runs it: it finds `serve --port N` by itself.
        check = runtime.last("HEALTHCHECK").exec_form()  # type: ignore[union-attr]
        assert check is not None
        health = subprocess.run([str(venv / "bin" / check[0]), *check[1:]], env=env, cwd=run, capture_output=True,
                                timeout=60)
        assert health.returncode == 0, health.stderr
        assert f":{port}/healthz" in health.stdout.decode()
        os.kill(serve.pid, signal.SIGTERM)
        assert serve.wait(timeout=60) == 0, "serve exits 0 on SIGTERM (docker stop)"
        # Stopped: the same check now fails (nothing listens on the port serve had, nor on PORT).
        after = subprocess.run([str(venv / "bin" / check[0]), *check[1:]], env=env, cwd=run, capture_output=True,
                               timeout=60)
        assert after.returncode == 1, after.stdout
    finally:
        if serve.poll() is None:
            os.kill(serve.pid, signal.SIGTERM)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.kill(serve.pid, signal.SIGKILL)
            serve.wait(timeout=10)
    print(f"\nimage steps: wheel built and installed in {built:.1f} s, total {time.monotonic() - started:.1f} s")
