"""``make run`` keeps the stack up: the keepalive wrapper's restart policy, the wrapper as a
process, the Procfile honcho is given, and the whole ``manage.py runstack`` (a killed worker is
restarted while the page and Flower keep answering; Ctrl-C stops every process).

(Over ~350 lines: make run from the inside out: the restart policy, the wrapper as a process,
the Procfile, the whole stack.)
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import yaml
from celery import Celery
from dotenv import dotenv_values
from honcho.environ import parse_procfile

from proj.keepalive import SCRIPT, Restart, RestartPolicy, describe_exit, shell_line
from proj.localredis import answers, free_port
from tasks_app.management.commands.runstack import keepalive_procfile, prepare_metrics_dir
from tests import processes
from tests.integration.stack import procfile_commands
from tests.processes import http_status
from tests.scrape import parse, value
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[1]
SIGTERM_STATUS = 128 + signal.SIGTERM
#: Seconds for the whole stack to answer after ``manage.py runstack`` starts (migrations included).
STACK_READY_S = 120.0
#: Seconds for every process of the stack to exit after Ctrl-C (honcho: 5 s, then SIGKILL).
STACK_STOP_S = 20.0
RESTART_LINE = re.compile(r"keepalive: (\S+) exited \((.+?)\) after ([\d.]+) s; restart (\d+) in (\d+) s")


# The restart policy, on an injected clock.


class FakeClock:
    """A monotonic clock that moves only when told (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def runs(policy: RestartPolicy, clock: FakeClock, *uptimes_s: float) -> list[Restart]:
    """The restarts after runs of the given lengths."""
    restarts = []
    for uptime_s in uptimes_s:
        policy.started()
        clock.advance(uptime_s)
        restarts.append(policy.exited())
    return restarts


def test_the_delay_doubles_from_1_s_up_to_30_s():
    clock = FakeClock()
    restarts = runs(RestartPolicy(clock), clock, *[0.5] * 8)
    assert [r.delay_s for r in restarts] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert [r.number for r in restarts] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert {r.uptime_s for r in restarts} == {0.5}


def test_a_run_of_60_s_resets_the_delay_and_restarts_keep_counting():
    clock = FakeClock()
    restarts = runs(RestartPolicy(clock), clock, 1, 1, 1, 59.9, 60, 1, 3600)
    assert [r.delay_s for r in restarts] == [1, 2, 4, 8, 1, 2, 1]
    assert [r.number for r in restarts] == [1, 2, 3, 4, 5, 6, 7]
    assert [r.uptime_s for r in restarts] == pytest.approx([1, 1, 1, 59.9, 60, 1, 3600])


def test_the_policy_takes_other_limits_and_refuses_nonsense():
    clock = FakeClock()
    restarts = runs(RestartPolicy(clock, first_delay_s=0.25, max_delay_s=1, reset_after_s=5), clock, 0, 0, 0, 0, 5)
    assert [r.delay_s for r in restarts] == [0.25, 0.5, 1, 1, 0.25]
    for bad in ({"first_delay_s": 0}, {"max_delay_s": 0.5}, {"reset_after_s": 0}):
        with pytest.raises(ValueError, match="need 0 < first_delay_s"):
            RestartPolicy(clock, **bad)
    with pytest.raises(RuntimeError, match="before started"):
        RestartPolicy(clock).exited()


@pytest.mark.parametrize(
    ("returncode", "text"),
    [
        (-9, "signal SIGKILL"),
        (-15, "signal SIGTERM"),
        (137, "exit code 137 = 128 + SIGKILL"),
        (3, "exit code 3"),
        (0, "exit code 0"),
        (255, "exit code 255"),
    ],
)
def test_describe_exit(returncode, text):
    assert describe_exit(returncode) == text


# The Procfile runstack hands honcho.


def test_honcho_runs_every_procfile_command_word_for_word_under_keepalive():
    generated = parse_procfile(keepalive_procfile((ROOT / "Procfile").read_text(), 8123, "/venv/bin/python"))
    commands = procfile_commands()
    assert list(generated.processes) == list(commands)
    for name, command in commands.items():
        keepalive = ["/venv/bin/python", "-P", SCRIPT, name, "--", "/bin/sh", "-c", command]
        assert shlex.split(generated.processes[name]) == ["PORT=8123", "exec", *keepalive], name


def test_the_metrics_folder_is_made_or_emptied_of_an_earlier_runs_values(tmp_path):
    assert prepare_metrics_dir(tmp_path / "new" / "prometheus").is_dir()
    for name in ("counter_123.db", "gauge_livesum_456.db", "histogram_789.db", "README"):
        (tmp_path / name).write_bytes(b"x")
    assert prepare_metrics_dir(tmp_path) == tmp_path
    assert sorted(path.name for path in tmp_path.iterdir()) == ["README", "new"]


def test_the_shell_passes_a_command_with_quotes_and_variables_on_unexpanded():
    command = """X="${HOME:-none}" echo 'it'"'"'s' $X `date` \\ ; exit 3"""
    words = ["exec", "py", "-P", SCRIPT, "odd", "--", "/bin/sh", "-c", command]
    assert shlex.split(shell_line("odd", command, "py")) == words


# The wrapper as a process: it restarts, forwards stop signals, and dies with its parent.


def gone(process: psutil.Process) -> bool:
    """Exited (a zombie counts: this machine's init may never reap orphans)."""
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def tree(pid: int) -> list[psutil.Process]:
    """``pid`` and its descendants, parents first (empty when it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_all(processes: list[psutil.Process]) -> None:
    """SIGKILL every process still running, parents first (a keepalive before its child)."""
    for process in processes:
        if not gone(process):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    wait_for(lambda: all(gone(p) for p in processes), 10, desc="the killed processes to exit")


def restart_lines(log: Path) -> list[tuple[str, ...]]:
    return [m.groups() for m in RESTART_LINE.finditer(log.read_text(errors="replace"))]


@dataclass
class Started:
    proc: subprocess.Popen[bytes]
    log: Path

    def children(self) -> list[psutil.Process]:
        try:
            return [c for c in psutil.Process(self.proc.pid).children() if not gone(c)]
        except psutil.NoSuchProcess:
            return []


@pytest.fixture
def leftovers() -> Iterator[list[psutil.Process]]:
    """Processes a test started (and descendants it found): killed on teardown if still running."""
    processes: list[psutil.Process] = []
    try:
        yield processes
    finally:
        kill_all(processes)


@pytest.fixture
def keepalive(tmp_path: Path, leftovers: list[psutil.Process]) -> Iterator[Callable[..., Started]]:
    """Starts ``python -P proj/keepalive.py [OPTIONS] demo -- COMMAND`` in a session of its own,
    output in a log file; on teardown kills whatever of it is left."""
    started: list[Started] = []

    def start(*command: str, options: tuple[str, ...] = ()) -> Started:
        log = tmp_path / f"keepalive-{len(started)}.log"
        argv = [sys.executable, "-P", SCRIPT, *options, "demo", "--", *command]
        proc = processes.spawn(argv, env=os.environ, log_path=log, cwd=ROOT)
        started.append(Started(proc, log))
        return started[-1]

    try:
        yield start
    finally:
        for s in started:
            leftovers.extend(tree(s.proc.pid))
        kill_all(leftovers)
        for s in started:
            s.proc.wait(5)


def test_keepalive_restarts_a_killed_command_with_one_log_line_and_stops_on_sigterm(keepalive):
    started = keepalive("sleep", "60")
    first = wait_for(started.children, 10, desc="the command to start")[0]
    first.kill()
    second = wait_for(
        lambda: [c for c in started.children() if c.pid != first.pid], 10, desc="the command to start again"
    )[0]
    [(name, how, uptime_s, number, delay_s)] = restart_lines(started.log)
    assert (name, how, number, delay_s) == ("demo", "signal SIGKILL", "1", "1")
    assert float(uptime_s) < 10
    started.proc.send_signal(signal.SIGTERM)
    assert started.proc.wait(5) == SIGTERM_STATUS
    assert gone(second)
    assert len(restart_lines(started.log)) == 1, "no restart after the stop signal"


def test_keepalive_forwards_a_stop_signal_to_the_whole_tree_of_its_command(keepalive):
    # sh and both sleeps are in the command's process group; SIGTERM to the group ends all three
    # at once, so the wrapper exits well before its 4 s grace would send SIGKILL.
    started = keepalive("/bin/sh", "-c", "sleep 60 & sleep 61 & wait")
    shell = wait_for(started.children, 10, desc="the shell to start")[0]

    def both_sleeps() -> list[psutil.Process]:
        children = shell.children()
        return children if len(children) == 2 else []

    sleeps = wait_for(both_sleeps, 10, desc="both sleeps")
    started.proc.send_signal(signal.SIGTERM)
    assert started.proc.wait(2) == SIGTERM_STATUS
    assert all(gone(p) for p in [shell, *sleeps])
    assert "SIGKILL" not in started.log.read_text()


def test_keepalive_kills_a_command_that_ignores_the_stop_signal_after_the_grace(keepalive):
    started = keepalive("/bin/sh", "-c", "trap '' TERM; sleep 60", options=("--stop-grace-s", "0.5"))
    shell = wait_for(started.children, 10, desc="the shell to start")[0]
    sleep = wait_for(shell.children, 10, desc="the sleep")[0]
    started.proc.send_signal(signal.SIGTERM)
    assert started.proc.wait(5) == SIGTERM_STATUS
    assert gone(shell)
    assert gone(sleep)
    assert "demo still running 0.5 s after a stop signal; sending SIGKILL" in started.log.read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent death signal: prctl(2), Linux only")
def test_keepalive_stops_its_command_when_its_parent_dies(leftovers):
    # The parent (honcho's process runner, say) starts the wrapper, tells its pid, and is SIGKILLed.
    script = "import subprocess, sys; p = subprocess.Popen(sys.argv[1:]); print(p.pid, flush=True); p.wait()"
    parent = subprocess.Popen(
        [sys.executable, "-c", script, sys.executable, "-P", SCRIPT, "orphan", "--", "sleep", "60"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert parent.stdout is not None
        wrapper = psutil.Process(int(parent.stdout.readline()))
        leftovers.append(wrapper)
        sleep = wait_for(wrapper.children, 10, desc="the wrapper's command")[0]
        leftovers.append(sleep)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    wait_for(lambda: gone(wrapper) and gone(sleep), 5, desc="the orphaned wrapper and its command to stop")


# The whole stack: ``manage.py runstack`` as ``make run`` runs it.

BANNER_REDIS = re.compile(r"Redis: +(redis://\S+) \(embedded redis-server\)")
DEMO_PASSWORD = "runstack-demo-password"


@dataclass
class RunningStack:
    """``manage.py runstack`` in a session of its own, in a copy of the clone (``clone``), with
    a private environment."""

    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    log: Path
    clone: Path
    redis_url: str = ""
    seen: list[psutil.Process] = field(default_factory=list)

    @property
    def login_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PORT']}/accounts/login/"

    @property
    def flower_url(self) -> str:
        return f"http://127.0.0.1:{self.env['FLOWER_PORT']}/healthcheck"

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def processes(self) -> list[psutil.Process]:
        """runstack and its descendants now (remembered for the teardown)."""
        now = tree(self.proc.pid)
        self.seen.extend(now)
        return now

    def running(self) -> None:
        """Raises AssertionError (with the log's tail) when runstack has exited."""
        assert self.proc.poll() is None, f"runstack exited with {self.proc.returncode}:\n{self.tail()}"

    def answering(self) -> tuple[int, int]:
        """HTTP statuses of the login page and of Flower's health check (0: no answer)."""
        return http_status(self.login_url), http_status(self.flower_url)


def private_environment(workdir: Path) -> dict[str, str]:
    """Free ports; REDIS_URL where nothing listens, so runstack starts its embedded redis-server."""
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    port, flower_port, demo_service_port, redis_port = sorted(ports)
    assert not answers(f"redis://127.0.0.1:{redis_port}/0")
    return {
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_DEBUG": "1",
        "DJANGO_ENV_FILE": "",  # as make run sets it
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "MEDIA_ROOT": str(workdir / "media"),
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "BIND_ADDRESS": "127.0.0.1",
        "PORT": str(port),
        "FLOWER_PORT": str(flower_port),
        "DEMO_SERVICE_PORT": str(demo_service_port),
        "DEMO_USERNAME": "demo",
        "DEMO_PASSWORD": DEMO_PASSWORD,
    }


def worker_main(stack: RunningStack, queue: str) -> psutil.Process | None:
    """The Celery worker main process consuming ``queue`` (its pool children share its command
    line; the main one is the one whose parent is not a worker), or None."""

    def consumes(process: psutil.Process) -> bool:
        try:
            args = process.cmdline()
        except psutil.Error:
            return False
        return "worker" in args and any(args[i : i + 2] == ["-Q", queue] for i in range(len(args)))

    workers = [p for p in stack.processes() if not gone(p) and consumes(p)]
    pids = {p.pid for p in workers}
    mains = [p for p in workers if p.ppid() not in pids]
    return mains[0] if len(mains) == 1 else None


def replies(app: Celery, node: str) -> bool:
    return bool(app.control.ping(destination=[node], timeout=1.0))


def copy_of_the_clone(target: Path) -> Path:
    """The clone's tracked files, as they are in the work tree, copied to ``target``, with its
    ``.venv`` linked: a fresh clone after ``make venv``, where runstack may write its ``.env``."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():  # a deleted file not yet committed is listed too
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(Path(sys.executable).parents[1])
    return target


@pytest.fixture(scope="module")
def runstack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The stack, up (page, Flower, demo service, both workers answer), run from a copy of the
    clone; on teardown every process it ever had is killed, whatever the tests did."""
    workdir = tmp_path_factory.mktemp("runstack")
    clone = copy_of_the_clone(tmp_path_factory.mktemp("clone"))
    env = private_environment(workdir)
    log = workdir / "runstack.log"
    proc = processes.spawn([sys.executable, "manage.py", "runstack"], env=env, log_path=log, cwd=clone)
    stack = RunningStack(proc=proc, env=env, log=log, clone=clone)
    try:
        with Celery(broker=env["REDIS_URL"]) as app:
            host = socket.gethostname()

            def up() -> bool:
                stack.running()
                return (
                    stack.answering() == (200, 200)
                    and http_status(f"http://127.0.0.1:{env['DEMO_SERVICE_PORT']}/health") == 200
                    and replies(app, f"jobs@{host}")
                    and replies(app, f"progress@{host}")
                )

            wait_for(up, STACK_READY_S, 0.5, desc="page, Flower, demo service and both workers")
        match = BANNER_REDIS.search(log.read_text())
        assert match, stack.tail()
        stack.redis_url = match[1]
        assert stack.redis_url == env["REDIS_URL"]
        stack.processes()
        yield stack
    finally:
        stack.processes()
        kill_all(stack.seen)
        proc.wait(10)


def compose_check(test: list[str]) -> list[str]:
    """A compose health check's ``test`` as the command it runs (``$$`` → ``$``)."""
    kind, *rest = (word.replace("$$", "$") for word in test)
    assert kind in {"CMD", "CMD-SHELL"}, test
    return rest if kind == "CMD" else ["/bin/sh", "-c", *rest]


@pytest.mark.integration
def test_the_compose_health_checks_pass_against_the_running_processes(runstack):
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    env = {**runstack.env, "HOSTNAME": socket.gethostname()}  # Docker sets HOSTNAME in containers
    checks = {
        name: subprocess.Popen(
            compose_check(services[name]["healthcheck"]["test"]),
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name in procfile_commands()
    }
    outputs = {name: check.communicate(timeout=60)[0].decode(errors="replace") for name, check in checks.items()}
    failed = {name: outputs[name] for name, check in checks.items() if check.returncode != 0}
    assert not failed, failed


#: A new terminal: none of make run's variables, the system's PATH (no venv activated).
def new_shell(home: str) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8"}


def typed(stack: RunningStack, line: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``line`` run as typed in a new terminal at the clone's root."""
    shell = new_shell(stack.env["HOME"])
    run = subprocess.run
    return run(shlex.split(line), cwd=stack.clone, env=shell, capture_output=True, text=True, timeout=timeout)


@pytest.mark.integration
def test_the_readme_commands_work_in_a_second_shell_of_the_clone(runstack):
    env_file = runstack.clone / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    written = dotenv_values(env_file)
    assert written["REDIS_URL"] == runstack.redis_url
    assert written["DJANGO_DEBUG"] == "1"
    assert written["DATABASE_URL"] == runstack.env["DATABASE_URL"]
    assert "DJANGO_ENV_FILE" not in written

    created = typed(runstack, ".venv/bin/python manage.py api_token create demo")
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    api = f"http://127.0.0.1:{runstack.env['PORT']}/api/jobs/"
    assert http_status(api, {"Authorization": f"Bearer {token}"}) == 200

    start = "jobs start simulated --param step=25 --param interval_ms=100 --watch"
    watched = typed(runstack, f".venv/bin/python manage.py {start}")
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert watched.stdout.splitlines()[-1].startswith('result: {"steps": 4, "step": 25'), watched.stdout
    assert "Traceback" not in watched.stderr
    assert " INFO " not in watched.stderr, "logs stay off the bar unless -v 2"


def process_running(stack: RunningStack, program: str, word: str) -> psutil.Process:
    """The one process of the stack running ``program`` (not the shell or the wrapper around it)
    with ``word`` in its command line; the main one for a Celery worker."""
    found = []
    for process in stack.processes():
        with contextlib.suppress(psutil.Error):
            args = process.cmdline()
            if any(Path(arg).name == program for arg in args[:2]) and word in args and "/bin/sh" not in args:
                found.append(process)
    pids = {p.pid for p in found}
    mains = [p for p in found if p.ppid() not in pids]
    assert len(mains) == 1, [p.cmdline() for p in found]
    return mains[0]


@pytest.mark.integration
def test_make_run_gives_every_process_but_flower_one_fresh_metrics_folder(runstack):
    web = process_running(runstack, "daphne", "proj.asgi:application")
    progress = process_running(runstack, "celery", "progress")
    flower = process_running(runstack, "celery", "flower")
    folder = Path(web.environ()["PROMETHEUS_MULTIPROC_DIR"])
    assert folder.name == "prometheus"
    assert folder.parent.name.startswith("runstack-")  # the run's temporary folder: gone after it
    assert progress.environ()["PROMETHEUS_MULTIPROC_DIR"] == str(folder)
    assert "PROMETHEUS_MULTIPROC_DIR" not in flower.environ()  # Flower keeps its own /metrics
    # The web and worker-progress wrote their series there (counters of each pid: values.py:94-96).
    assert {f"counter_{web.pid}.db", f"counter_{progress.pid}.db"} <= {path.name for path in folder.iterdir()}
    with urllib.request.urlopen(f"http://127.0.0.1:{runstack.env['PORT']}/metrics", timeout=10) as response:
        samples = parse(response.read().decode())
    assert value(samples, "jobs_supervisor_repairs_total", repair="rearmed") is not None
    assert value(samples, "process_cpu_seconds_total") is None  # the folder's series, not one process's


@pytest.mark.integration
def test_a_killed_worker_is_restarted_while_the_rest_answers_and_ctrl_c_stops_everything(runstack):
    host = socket.gethostname()
    old = worker_main(runstack, "progress")
    assert old is not None, runstack.tail()
    answers_seen: list[tuple[int, int]] = []

    with Celery(broker=runstack.redis_url) as app:

        def restarted() -> psutil.Process | None:
            runstack.running()
            answers_seen.append(runstack.answering())
            new = worker_main(runstack, "progress")
            return new if new is not None and new.pid != old.pid and replies(app, f"progress@{host}") else None

        old.kill()  # SIGKILL: the worker dies at once, as in an OOM kill
        new = wait_for(restarted, 60, 0.25, desc="a new worker-progress main process that answers a ping")

    assert new.pid != old.pid
    assert gone(old)
    assert set(answers_seen) == {(200, 200)}, f"page and Flower must answer all along: {answers_seen}"
    restarts = restart_lines(runstack.log)
    assert len(restarts) == 1, runstack.tail()
    name, how, _, number, delay_s = restarts[0]
    # sh -c reports its child's SIGKILL as exit code 137.
    assert (name, how, number, delay_s) == ("worker-progress", "exit code 137 = 128 + SIGKILL", "1", "1")

    # Ctrl-C: the terminal sends SIGINT to the foreground process group (runstack, honcho).
    processes = runstack.processes()
    assert len(processes) > 6 * 2, [p.info for p in processes]
    os.killpg(runstack.proc.pid, signal.SIGINT)

    def survivors() -> list[str]:
        left = []
        for p in processes:
            if not gone(p):
                with contextlib.suppress(psutil.Error):
                    left.append(f"{p.pid} {shlex.join(p.cmdline())[:100]}")
        return left

    try:
        wait_for(lambda: not survivors(), STACK_STOP_S, 0.2, desc="every process of the stack to exit")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; still running: {survivors()}\n{runstack.tail()}") from None
    assert runstack.proc.wait(5) == 0, runstack.tail()
    assert not answers(runstack.redis_url), "the embedded redis-server must stop too"
    assert len(restart_lines(runstack.log)) == 1, "nothing is restarted while the stack stops"
