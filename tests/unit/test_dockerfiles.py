"""Cheap static checks of the service Dockerfiles and the build context (no Docker engine needed).

Every image is built from the repository root: ``docker build -f services/<svc>/Dockerfile .``.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "routing", "escalation", "notify")
BASE_IMAGE = re.compile(r"^python:3\.11(\.\d+)?-slim-bookworm(@sha256:[0-9a-f]{64})?$")


# ---------------------------------------------------------------------------------------------
# A small Dockerfile reader: enough for instructions, stages and their arguments.


@dataclass
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str] | None:
        """The JSON array form of CMD/ENTRYPOINT/HEALTHCHECK CMD, or None for the shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = re.sub(r"^(--\S+\s+)*CMD\s+", "", text)
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) else None


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_dockerfile(path: Path) -> list[Stage]:
    logical: list[str] = []
    buffer = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue  # comment lines inside a continuation are dropped by Docker too
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    assert not buffer, f"{path}: dangling line continuation"

    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        else:
            assert stages, f"{path}: {keyword} before the first FROM"
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


# ---------------------------------------------------------------------------------------------
# The workspace and the build context


def workspace_members() -> dict[str, Path]:
    """Package name -> member directory, from the root pyproject's [tool.uv.workspace] members."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    members: dict[str, Path] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for manifest in sorted(ROOT.glob(f"{pattern}/pyproject.toml")):
            name = tomllib.loads(manifest.read_text(encoding="utf-8"))["project"]["name"]
            members[name] = manifest.parent
    return members


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def dockerignored(relpath: str) -> bool:
    """Whether .dockerignore keeps relpath (or a directory above it) out of the build context.

    Follows Docker's rules closely enough for our patterns: last match wins, `!` re-includes,
    excluding a directory excludes everything under it.
    """
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((negate, _ignore_regex(pattern)))
    parts = Path(relpath).parts
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for negate, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


# ---------------------------------------------------------------------------------------------
# Tests


@pytest.fixture(scope="module", params=SERVICES)
def service(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def stages(service: str) -> list[Stage]:
    path = ROOT / "services" / service / "Dockerfile"
    assert path.is_file(), f"missing {path.relative_to(ROOT)}"
    return parse_dockerfile(path)


def test_every_base_image_is_a_pinned_python_slim_bookworm(stages: list[Stage]) -> None:
    seen: set[str] = set()
    for stage in stages:
        if stage.image not in seen:  # not a reference to an earlier stage
            assert BASE_IMAGE.fullmatch(stage.image), f"base image {stage.image!r} is not pinned as expected"
            assert not stage.image.endswith(":latest")
        if stage.name:
            seen.add(stage.name)
    for stage in stages:
        for copy in stage.all("COPY"):
            source = re.search(r"--from=(\S+)", copy.args)
            if source:
                assert source.group(1) in seen, f"COPY --from={source.group(1)}: no such stage"


def test_final_stage_runs_the_service_as_non_root_with_a_healthcheck(service: str, stages: list[Stage]) -> None:
    final = stages[-1]
    cmd = final.last("CMD")
    assert cmd is not None and cmd.exec_form() == ["python", "-m", service, "run"]
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck is not None, "the runtime stage has no HEALTHCHECK"
    probe = healthcheck.exec_form()
    assert probe and probe[:2] == ["python", "-c"], "HEALTHCHECK must be exec-form python"
    assert "urllib" in probe[2] and "/healthz" in probe[2]
    assert "HTTP_PORT" in probe[2], "the probe must follow HTTP_PORT"
    env = " ".join(i.args for i in final.all("ENV"))
    assert "HTTP_HOST=0.0.0.0" in env, "the service must listen on all interfaces inside the container"


def test_every_runnable_stage_drops_root(stages: list[Stage]) -> None:
    for stage in stages:
        if stage.last("CMD") is None and stage.last("ENTRYPOINT") is None:
            continue
        user = stage.last("USER")
        assert user is not None, f"stage {stage.name or stage.image} runs as root"
        name = user.args.split(":")[0]
        assert name not in {"root", "0"}, f"stage {stage.name or stage.image} runs as root"
        assert "useradd" in " ".join(i.args for i in stage.all("RUN")) or name.isdigit()


def test_uv_is_pinned_and_syncs_a_workspace_package_from_the_lock(service: str, stages: list[Stage]) -> None:
    runs = [i.args for s in stages for i in s.all("RUN")]
    installs = [r for r in runs if re.search(r"pip install .*\buv\b", r)]
    assert installs, "uv is not installed"
    for run in installs:
        assert re.search(r"\buv==\d+\.\d+\.\d+\b", run), f"uv is not pinned: {run}"

    members = workspace_members()
    synced: list[str] = []
    for run in runs:
        for command in run.split("&&"):
            if "uv sync" not in command:
                continue
            words = shlex.split(command[command.index("uv sync") :])
            assert "--frozen" in words and "--no-dev" in words, f"uv sync must use the lock as is: {command}"
            for n, word in enumerate(words):
                if word == "--package":
                    synced.append(words[n + 1])
                elif word.startswith("--package="):
                    synced.append(word.split("=", 1)[1])
    assert f"gridline-{service}" in synced
    unknown = sorted(set(synced) - set(members))
    assert not unknown, f"--package names not in the uv workspace: {unknown}"


def test_builder_sees_every_workspace_manifest(stages: list[Stage]) -> None:
    """uv loads the whole workspace even for one package: each member's pyproject.toml must be copied."""
    runs = " ".join(i.args for s in stages for i in s.all("RUN"))
    found = re.search(r"find (.+?) -mindepth 2 -maxdepth 2 -name pyproject\.toml", runs)
    assert found, "the manifests stage no longer collects members with find; update this test"
    searched = set(found.group(1).split())
    for name, directory in workspace_members().items():
        rel = directory.relative_to(ROOT)
        assert len(rel.parts) == 2 and rel.parts[0] in searched, f"{name} ({rel}) is not collected"
        assert not dockerignored(f"{rel}/pyproject.toml"), f"{rel}/pyproject.toml is dockerignored"
    for needed in ("pyproject.toml", "uv.lock"):
        assert not dockerignored(needed)


def test_copied_sources_exist_and_are_in_the_build_context(service: str, stages: list[Stage]) -> None:
    sources: list[str] = []
    for stage in stages:
        for copy in stage.all("COPY"):
            words = [w for w in copy.args.split() if not w.startswith("--")]
            if "--from=" in copy.args:
                continue
            sources.extend(words[:-1])
    assert f"services/{service}/" in sources
    for source in sources:
        if source == ".":
            continue
        assert (ROOT / source).exists(), f"COPY source {source} does not exist"
        assert not dockerignored(source.rstrip("/")), f"COPY source {source} is excluded by .dockerignore"


def test_runtime_keeps_the_repository_layout(service: str, stages: list[Stage]) -> None:
    final = stages[-1]
    copied = {i.args.split()[-1].rstrip("/") for i in final.all("COPY") if "--from=" in i.args}
    assert {"/app/.venv", "/app/libs", f"/app/services/{service}"} <= copied
    assert "PATH=/app/.venv/bin:$PATH" in " ".join(i.args for i in final.all("ENV"))


@pytest.mark.parametrize(
    "path",
    [
        ".git",
        ".venv",
        ".cache",
        ".devstack",
        "tests/unit",
        "bench/results",
        ".env",
        "libs/boot/src/gridline_boot/__pycache__",
        "tools/kafka/.cache",
    ],
)
def test_dockerignore_keeps_local_state_out_of_the_context(path: str) -> None:
    assert dockerignored(path)


@pytest.mark.parametrize("path", ["libs/boot/src/gridline_boot/settings.py", "services/intake/pyproject.toml"])
def test_dockerignore_keeps_sources_in_the_context(path: str) -> None:
    assert not dockerignored(path)
