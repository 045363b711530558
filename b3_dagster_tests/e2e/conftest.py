"""The real production parts for the end-to-end tests: a PostgreSQL 15 server on 127.0.0.1 (Debian's binaries, run
as a non-root user), the B3 replay, an alert receiver, and the three Dagster processes started with
``deploy/start.sh`` and the shipped ``deploy/dagster.yaml`` / ``deploy/workspace.yaml`` (templated only by the
environment).

The fixtures are module-scoped: one deployment serves a module, like a real one (test_production.py runs it as one
scenario of named steps, so no test depends on another having run first).
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from b3_dagster.replay.b3_api import SHUTDOWN_POLL_SECONDS, Recording, answer
from b3_dagster.sources.b3_portfolio import ENDPOINT_PATH
from b3_dagster_tests.helpers import (
    b3_dagster_command,
    free_port,
    new_user_environment,
    start_code_server,
    start_webserver_and_daemon,
)

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
PG_BIN = Path(os.environ.get("B3_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_OS_USER = "postgres"  # initdb refuses root; Debian's postgresql package creates this user


# ---- small helpers ---------------------------------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first found first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def process_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# ---- PostgreSQL ------------------------------------------------------------------------------------------------
@dataclass
class Postgres:
    host: str
    port: int
    user: str
    password: str
    db: str

    def env(self) -> dict[str, str]:
        return {"DAGSTER_PG_HOST": self.host, "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": self.db,
                "DAGSTER_PG_USERNAME": self.user, "DAGSTER_PG_PASSWORD": self.password}


def _as_pg_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", PG_OS_USER, "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def postgres():
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL server binaries not found in {PG_BIN}: run scripts/install_system_deps.sh")
    base = Path(tempfile.mkdtemp(prefix="b3-e2e-pg-"))
    password = "e2e-" + os.urandom(8).hex()
    (base / "pwfile").write_text(password + "\n")
    if os.geteuid() == 0:
        account = pwd.getpwnam(PG_OS_USER)
        for path in (base, base / "pwfile"):
            os.chown(path, account.pw_uid, account.pw_gid)
    data, log, port = base / "data", base / "server.log", free_port()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "check": True, "cwd": base}
    subprocess.run(_as_pg_user([str(PG_BIN / "initdb"), "-D", str(data), "-U", "dagster", "--pwfile",
                                str(base / "pwfile"), "--auth", "scram-sha-256", "-E", "UTF8", "--no-locale"]),
                   **quiet)
    subprocess.run(_as_pg_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                                "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {base}", "start"]), **quiet)
    try:
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", password=password,
                                      dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE dagster")
        connection.close()
        yield Postgres("127.0.0.1", port, "dagster", password, "dagster")
    finally:
        subprocess.run(_as_pg_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=base)
        shutil.rmtree(base, ignore_errors=True)


# ---- the B3 replay, with a switch that stalls an answer half-way ---------------------------------------------
class StallableReplay:
    """Recorded B3 answers over HTTP on 127.0.0.1 (``b3_dagster.replay.b3_api.answer``). After ``stall_next()``, the next
    answer sends its headers and half its body, then waits until ``release()``: a run asking then is
    deterministically in the middle of its B3 step."""

    def __init__(self, recording: Recording):
        self.recording = recording
        self.stalled = threading.Event()
        self._armed = False
        self._release = threading.Event()
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if not self.path.startswith(ENDPOINT_PATH):
                    status, body = 404, b'{"message":"not found"}'
                else:
                    status, body = answer(replay.recording, self.path[len(ENDPOINT_PATH):])
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if replay._take_stall():
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    replay.stalled.set()
                    replay._release.wait(300)
                    body = body[len(body) // 2:]
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client died while stalled

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._lock = threading.Lock()
        threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True).start()

    def _take_stall(self) -> bool:
        with self._lock:
            armed, self._armed = self._armed, False
            return armed

    def stall_next(self) -> None:
        self._release.clear()
        self.stalled.clear()
        with self._lock:
            self._armed = True

    def release(self) -> None:
        self._release.set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


# ---- alert receiver --------------------------------------------------------------------------------------------
class AlertReceiver:
    """A Slack-like incoming webhook on 127.0.0.1 that keeps every JSON message it gets."""

    def __init__(self):
        self.messages: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.messages.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL_SECONDS,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ---- the Dagster processes -------------------------------------------------------------------------------------
@dataclass
class Process:
    role: str  # code-server | daemon | webserver
    env: dict
    log_dir: Path
    popen: subprocess.Popen | None = None
    starts: int = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"{self.role}.{self.starts}.log", "wb")
        self.popen = subprocess.Popen([str(DEPLOY / "start.sh"), self.role], env=self.env, cwd=self.log_dir,
                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def stop(self, timeout: float = 30) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_tree()
        for pid in descendants(self.popen.pid):  # nothing of it may outlive the test
            _kill(pid)

    def kill_tree(self) -> list[int]:
        """SIGKILL the process and everything below it (the code server's gRPC child, run workers, steps):
        what an OOM kill or a host crash does."""
        if self.popen is None:
            return []
        victims = [self.popen.pid, *descendants(self.popen.pid)]
        for pid in victims:
            _kill(pid)
        self.popen.wait(30)
        return victims

    def log_tail(self, chars: int = 3000) -> str:
        path = self.log_dir / f"{self.role}.{self.starts}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass
class Deployment:
    home: Path
    lake: Path
    webserver_url: str
    replay: StallableReplay
    receiver: AlertReceiver
    processes: dict[str, Process] = field(default_factory=dict)

    # GraphQL over plain HTTP, as any client of the webserver would
    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        answer = requests.post(f"{self.webserver_url}/graphql", json={"query": query, "variables": variables or {}},
                               timeout=timeout)
        if answer.status_code != 200:
            raise AssertionError(f"GraphQL HTTP {answer.status_code}: {answer.text[:500]}")
        document = answer.json()
        if document.get("errors"):
            raise AssertionError(f"GraphQL errors: {document['errors']}")
        return document["data"]

    def logs(self) -> str:
        return "\n".join(f"--- {p.role} (start {p.starts}) ---\n{p.log_tail()}" for p in self.processes.values())


@pytest.fixture(scope="module")
def deployment(postgres, recordings, tmp_path_factory, e2e_settings):
    """The production deployment: code server, daemon and webserver on PostgreSQL, with the shipped config."""
    root = tmp_path_factory.mktemp("production")
    home, lake, logs = root / "dagster_home", root / "lake", root / "logs"
    for folder in (home, lake, logs):
        folder.mkdir()
    shutil.copyfile(DEPLOY / "dagster.yaml", home / "dagster.yaml")  # the shipped file, byte for byte
    replay = StallableReplay(recordings["2022-12-08"])  # pt-br, the language the code location asks for
    receiver = AlertReceiver()
    webserver_port = free_port()
    venv_bin = str(Path(sys.executable).parent)
    env = {
        **new_user_environment(home),
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        **postgres.env(),
        "DAGSTER_MAX_CONCURRENT_RUNS": "2",  # two cores
        "B3_CODE_SERVER_HOST": "127.0.0.1",
        "B3_CODE_SERVER_PORT": str(free_port()),
        "B3_WEBSERVER_HOST": "127.0.0.1",
        "B3_WEBSERVER_PORT": str(webserver_port),
        "B3_LAKE_ROOT": str(lake),
        "B3_CATALOG": "duckdb",
        "B3_BASE_URL": replay.base_url,
        "B3_YAHOO_BASE_URL": "http://127.0.0.1:9",  # the index assets are not run here
        "B3_ALERT_WEBHOOK_URL": receiver.url,
        "B3_DAGSTER_UI_URL": f"http://127.0.0.1:{webserver_port}",
        **e2e_settings,
    }
    deployment = Deployment(home, lake, f"http://127.0.0.1:{webserver_port}", replay, receiver)
    deployment.processes = {role: Process(role, env, logs) for role in ("code-server", "daemon", "webserver")}
    try:
        start_code_server(deployment)
        start_webserver_and_daemon(deployment)
        yield deployment
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        # No graceful stop at the end (the restart step asserts that one): SIGTERM waited up to 30 s per process
        # for Dagster's shutdown. The daemon goes first, so that no run is launched while the others go.
        for role in ("daemon", "webserver", "code-server"):
            deployment.processes[role].kill_tree()
        replay.close()
        receiver.close()


# ---- the demo, run once for the tests that read what it leaves (test_demo.py, test_ui_after_demo.py) ----------------
@dataclass
class DemoRun:
    """``b3-dagster --lake <root>/data demo`` with DAGSTER_HOME=<root>/home, as a new user runs it (no B3_* or
    DAGSTER_* variable of the test's own environment)."""
    root: Path
    lake: Path
    home: Path
    env: dict
    done: subprocess.CompletedProcess


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """The demo runs once per test session (~35-60 s on 2 cores) for every test that reads its lake and instance;
    the tests assert its exit status themselves. Both its users are slow tests, so they share one xdist worker
    (b3_dagster_tests/conftest.py) and so this one run."""
    root = tmp_path_factory.mktemp("demo")
    lake, home = root / "data", root / "home"
    home.mkdir()
    env = new_user_environment(home)
    done = subprocess.run([*b3_dagster_command(), "--lake", str(lake), "demo"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)
    return DemoRun(root=root, lake=lake, home=home, env=env, done=done)
