"""A real self-hosted Firecrawl for the tests: built once into a cache, run on loopback.

Settings (environment):
- `CREDITGATE_FIRECRAWL_SRC`: Firecrawl's source, the folder holding `apps/api` (a checkout of
  the firecrawl repository will do). Default: the project's Firecrawl checkout beside this
  repository (`source_dir()`: the one place the repository looks outside itself).
- `CREDITGATE_FIRECRAWL_TOOLS`: the folder with `playwright_standin.py` and `site.py` (a stand-in
  for Firecrawl's browser service and a test-site writer). Default: `tests/upstream/tools/`.
- `CREDITGATE_FIRECRAWL_CACHE`: where builds are kept, one folder per source content.
  Default: `$XDG_CACHE_HOME/creditgate/firecrawl` (`~/.cache/creditgate/firecrawl`).

Two builds are tested (`VARIANTS`): the source as it is, and the same source with
`tools/v2-crawl-guard.patch` applied (the later releases' guard of v2 crawl's `maxConcurrency`:
a fixed release). The patched source is a copy made in the cache and patched there; its
content differs, so it gets a build of its own.

Nothing of Firecrawl's is copied into this repository (its source is AGPL-3.0): only the
source folder is read from outside it; the stand-in and the site writer are creditgate's own.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.server import free_port

log = logging.getLogger("tests.upstream")

REPO = Path(__file__).resolve().parents[2]
PNPM_VERSION = "10.15.0"  # the version Firecrawl's lockfile was made with
BUILD_STEP_S = 900  # each step of the build (pnpm install ~1.5 min, tsc ~1 min here)
SKIPPED_DIRS = {"node_modules", "dist", ".git", ".turbo"}


class Unavailable(Exception):
    """Firecrawl cannot be built or run here (the reason says why)."""


def _setting(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


def source_dir() -> Path:
    return _setting("CREDITGATE_FIRECRAWL_SRC", (REPO.parent / "shared/firecrawl/src").resolve())


def tools_dir() -> Path:
    return _setting("CREDITGATE_FIRECRAWL_TOOLS", Path(__file__).parent / "tools")


def cache_dir() -> Path:
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return _setting("CREDITGATE_FIRECRAWL_CACHE", xdg / "creditgate" / "firecrawl")


def _api_files(api: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(api):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(files):
            yield Path(root) / name


def source_key(src: Path) -> str:
    """A hash of `apps/api`'s content (paths and bytes; node_modules and dist left out): a
    build is reused exactly as long as the source it was made from is unchanged."""
    api = src / "apps" / "api"
    digest = hashlib.sha256()
    for path in _api_files(api):
        digest.update(str(path.relative_to(api)).encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # another pytest process building: wait for it
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], cwd: Path, logfile: Path, env: dict[str, str]) -> None:
    with logfile.open("ab") as out:
        out.write(f"\n$ {' '.join(command)}\n".encode())
        out.flush()
        try:
            done = subprocess.run(
                command,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                timeout=BUILD_STEP_S,
            )
        except subprocess.TimeoutExpired:
            raise Unavailable(
                f"`{' '.join(command)}` took over {BUILD_STEP_S} s in {cwd}:\n{tail(logfile)}"
            ) from None
    if done.returncode != 0:
        raise Unavailable(
            f"`{' '.join(command)}` failed (exit {done.returncode}) in {cwd}:\n{tail(logfile)}"
        )


def _pnpm(cache: Path, logfile: Path) -> Path:
    """Firecrawl's pnpm, installed once into the cache (no global install, no root needed)."""
    prefix = cache / f"pnpm-{PNPM_VERSION}"
    binary = prefix / "node_modules" / ".bin" / "pnpm"
    if not binary.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise Unavailable("npm is not installed (Node.js 20 and npm are needed)")
        _run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
             f"pnpm@{PNPM_VERSION}"],
            cache, logfile, dict(os.environ),
        )  # fmt: skip
    return binary


@dataclass
class Build:
    api: Path  # apps/api of the build, with dist/
    key: str
    seconds: float  # the wall time of this call: the build, or finding it cached
    cached: bool

    def v2_crawl_has_the_acuc_guard(self) -> bool:
        """Whether this build's v2 crawl survives `maxConcurrency` in self-host mode (the
        2025-08 build reads `req.acuc.concurrency` with no guard and crashes: 500)."""
        code = (self.api / "src/controllers/v2/crawl.ts").read_text()
        return "req.acuc.concurrency" not in code or "req.acuc?.concurrency" in code


# The builds the suite runs on: a name, and the patch applied to the source (None: as it is).
GUARD_PATCH = Path(__file__).parent / "tools" / "v2-crawl-guard.patch"
VARIANTS: dict[str, Path | None] = {"as-is": None, "v2-guard": GUARD_PATCH}


def patched_source(src: Path, patch: Path) -> Path:
    """A copy of `src` in the cache with `patch` applied (`patch -p1`, which fails when a hunk
    does not apply: the patch was made for another source), made once per source and patch."""
    digest = hashlib.sha256(f"{source_key(src)}\0".encode() + patch.read_bytes()).hexdigest()
    cache = cache_dir()
    done = cache / f"patched-{digest[:16]}"
    with _file_lock(cache / f"patched-{digest[:16]}.lock"):
        if (done / "patched").is_file():
            return done / "src"
        shutil.rmtree(done, ignore_errors=True)
        done.mkdir(parents=True)
        shutil.copytree(src, done / "src", ignore=shutil.ignore_patterns(*SKIPPED_DIRS))
        tool = shutil.which("patch")
        if tool is None:
            raise Unavailable("`patch` is not installed (Debian's patch package)")
        applied = subprocess.run(
            [tool, "-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-i", str(patch)],
            cwd=done / "src",
            capture_output=True,
            text=True,
        )
        if applied.returncode != 0:
            raise RuntimeError(  # not Unavailable: a patch that does not apply is a failure
                f"{patch.name} does not apply to {src}:\n{applied.stdout}{applied.stderr}"
            )
        (done / "patched").write_text(f"{patch.name} applied to {src}\n")
        return done / "src"


def build(patch: Path | None = None) -> Build:
    """Firecrawl's API, built from `source_dir()` (with `patch` applied, if given) unless a
    build of the same content is cached."""
    started = time.monotonic()
    src = source_dir()
    if not (src / "apps" / "api" / "package.json").is_file():
        raise Unavailable(f"no Firecrawl source at {src} (set CREDITGATE_FIRECRAWL_SRC)")
    if patch is not None:
        src = patched_source(src, patch)
    if shutil.which("node") is None:
        raise Unavailable("node is not installed (Node.js 20 and npm are needed)")
    key = source_key(src)
    cache = cache_dir()
    done = cache / key
    with _file_lock(cache / f"{key}.lock"):
        if (done / "built").is_file():
            return Build(done / "src/apps/api", key, time.monotonic() - started, True)
        work = done  # built in place; whole once `built` is written (a half build is redone)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        logfile = cache / f"{key}.build.log"
        logfile.write_text(f"building Firecrawl from {src}\n")
        shutil.copytree(src, work / "src", ignore=shutil.ignore_patterns(*SKIPPED_DIRS))
        api = work / "src/apps/api"
        env = {**os.environ, "CI": "true"}  # pnpm: no prompts
        pnpm = _pnpm(cache, logfile)
        store = cache / "pnpm-store"
        _run(
            [str(pnpm), "install", "--frozen-lockfile", "--store-dir", str(store)],
            api,
            logfile,
            env,
        )
        _run([str(api / "node_modules/.bin/tsc")], api, logfile, env)
        if not (api / "dist/src/index.js").is_file():
            raise Unavailable(f"the build made no dist/src/index.js:\n{tail(logfile)}")
        seconds = time.monotonic() - started
        (work / "built").write_text(f"{seconds:.1f} s\n")
        return Build(done / "src/apps/api", key, seconds, False)


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path}: no log)"
    return "\n".join(text.splitlines()[-lines:])


# --- running it --------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path


@dataclass
class Firecrawl:
    """A running Firecrawl with its redis, browser stand-in and test site, all on loopback."""

    url: str  # the API
    site: str  # the test site's base URL
    logs: Path
    build: Build
    processes: list[Process] = field(default_factory=list)

    def logs_tail(self, lines: int = 25) -> str:
        return "\n".join(
            f"--- {p.name} ({p.log.name}, exit {p.popen.poll()}):\n{tail(p.log, lines)}"
            for p in self.processes
        )

    def standin_log(self) -> Path:
        return self.logs / "standin.log"

    def start(self, name: str, command: list[str], cwd: Path, env: dict[str, str]) -> Process:
        logfile = self.logs / f"{name}.log"
        with logfile.open("ab") as out:
            popen = subprocess.Popen(
                command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with its children
            )  # fmt: skip
        process = Process(name, popen, logfile)
        self.processes.append(process)
        return process

    def wait(self, check: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            dead = [p.name for p in self.processes if p.popen.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"{', '.join(dead)} exited" if dead else f"not within {timeout:.0f} s"
                raise Unavailable(f"Firecrawl: {what}: {why}\n{self.logs_tail()}")
            time.sleep(0.25)

    def stop(self) -> None:
        """Every process group, last started first: TERM, then KILL after 10 s."""
        for process in reversed(self.processes):
            _stop_group(process.popen)


def _stop_group(popen: subprocess.Popen[bytes]) -> None:
    pgid = popen.pid  # start_new_session: the group's id is the leader's pid
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            popen.poll()
            try:
                os.killpg(pgid, 0)  # anyone left in the group (bullmq's child processes)?
            except ProcessLookupError:
                popen.wait()
                return
            time.sleep(0.1)
    popen.wait()


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.TransportError:
        return False
    return True


def _scrapes(api: str, page: str) -> bool:
    try:
        answer = httpx.post(f"{api}/v1/scrape", json={"url": page}, timeout=30)
    except httpx.TransportError:
        return False
    return answer.status_code == 200 and answer.json().get("success") is True


def run_prerequisites() -> tuple[Path, str]:
    """The stand-in's folder and redis-server, or Unavailable."""
    tools = tools_dir()
    for tool in ("playwright_standin.py", "site.py"):
        if not (tools / tool).is_file():
            raise Unavailable(f"no {tool} in {tools} (set CREDITGATE_FIRECRAWL_TOOLS)")
    redis_server = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(redis_server).exists():
        raise Unavailable("redis-server is not installed")
    return tools, redis_server


@contextmanager
def running(built: Build, logs: Path, slow_seconds: float = 1.0) -> Iterator[Firecrawl]:
    """Redis, the test site, the browser stand-in, Firecrawl's API and worker; stopped at the end.

    The test site's `/slow/` pages take `slow_seconds` each (the stand-in's delay).
    """
    tools, redis_server = run_prerequisites()
    logs.mkdir(parents=True, exist_ok=True)
    redis_port, site_port, pw_port, api_port, worker_port = (free_port() for _ in range(5))
    site = f"http://127.0.0.1:{site_port}"
    fc = Firecrawl(f"http://127.0.0.1:{api_port}", site, logs, built)
    base_env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    try:
        fc.start(
            "redis",
            [redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            logs, base_env,
        )  # fmt: skip
        site_dir = logs / "site"
        subprocess.run(
            [sys.executable, str(tools / "site.py"), str(site_dir), str(site_port)], check=True
        )
        fc.start(
            "site",
            [sys.executable, "-m", "http.server", str(site_port), "--bind", "127.0.0.1"],
            site_dir, base_env,
        )  # fmt: skip
        fc.start(
            "standin",
            [sys.executable, str(tools / "playwright_standin.py"), str(pw_port)],
            logs, {**base_env, "SITE": site, "SLOW": str(slow_seconds)},
        )  # fmt: skip
        env = {
            **base_env,
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}",
            "REDIS_RATE_LIMIT_URL": f"redis://127.0.0.1:{redis_port}",
            "PLAYWRIGHT_MICROSERVICE_URL": f"http://127.0.0.1:{pw_port}/scrape",
            "SEARXNG_ENDPOINT": f"http://127.0.0.1:{pw_port}",
            "USE_DB_AUTHENTICATION": "false",
            "ENV": "local",
            "BULL_AUTH_KEY": "test",
            "LOGGING_LEVEL": "INFO",
            "NUM_WORKERS_PER_QUEUE": "4",
            "MAX_CPU": "1.5",  # else a busy 2-core machine stalls the worker
            "MAX_RAM": "0.95",
            "HOST": "127.0.0.1",
            "PORT": str(api_port),
        }
        fc.wait(lambda: _answers(f"{site}/index.html"), "the test site answers", 15)
        fc.wait(lambda: _answers(f"http://127.0.0.1:{pw_port}/health"), "the stand-in answers", 15)
        api_dir = built.api
        fc.start("api", ["node", "dist/src/index.js"], api_dir, {**env, "FLY_PROCESS_GROUP": "app"})
        fc.wait(lambda: _answers(fc.url), "the API answers HTTP", 60)
        fc.start(
            "worker",
            ["node", "dist/src/services/queue-worker.js"],
            api_dir,
            {**env, "FLY_PROCESS_GROUP": "worker", "WORKER_PORT": str(worker_port)},
        )
        fc.wait(lambda: _scrapes(fc.url, f"{site}/page1.html"), "the API scrapes a page", 120)
        yield fc
    finally:
        fc.stop()


# --- the official JS SDK -----------------------------------------------------------------------

# The JS SDK the suite drives, installed into the cache (never into the repository). The same
# release as tests/sdk/js pins; it speaks both v1 (`fc.v1`) and v2 of the 2025-08 build.
JS_SDK = "@mendable/firecrawl-js"
JS_SDK_VERSION = "4.42.0"


def js_sdk() -> Path:
    """The folder whose node_modules holds the pinned JS SDK, installed once with npm."""
    if shutil.which("node") is None:
        raise Unavailable("node is not installed (Node.js 20 and npm are needed)")
    npm = shutil.which("npm")
    if npm is None:
        raise Unavailable("npm is not installed (Node.js 20 and npm are needed)")
    cache = cache_dir()
    prefix = cache / f"js-sdk-{JS_SDK_VERSION}"
    with _file_lock(cache / f"js-sdk-{JS_SDK_VERSION}.lock"):
        if (prefix / "installed").is_file():
            return prefix
        shutil.rmtree(prefix, ignore_errors=True)
        prefix.mkdir(parents=True)
        logfile = prefix / "install.log"
        _run(
            [npm, "install", "--no-audit", "--no-fund", "--save-exact", "--prefix", str(prefix),
             f"{JS_SDK}@{JS_SDK_VERSION}"],
            prefix, logfile, dict(os.environ),
        )  # fmt: skip
        (prefix / "installed").write_text(f"{JS_SDK}@{JS_SDK_VERSION}\n")
        return prefix
