"""The direction of imports (README "Layout", "Imports run one way"), read from the source with ``ast``.

Every ``import`` and ``from … import`` counts, also those inside functions and under
``TYPE_CHECKING``: a rule that holds only at module level is a rule dodged.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("proj", "tasks_app", "realtime")

#: The one module of realtime that tasks_app may use: the port into the channel layer.
REALTIME_PORT = "realtime.messaging"
#: What a job kind never imports: the services and their adapters (they call the kinds).
NOT_FOR_KINDS = (
    "tasks_app.services",
    "tasks_app.attempts",
    "tasks_app.items",
    "tasks_app.supervisor",
    "tasks_app.selectors",
    "tasks_app.tasks",
    "tasks_app.work",
    "tasks_app.api",
    "tasks_app.views",
    "tasks_app.admin",
)
#: Modules that are pure declarations: the protocol's job object and the states.
PURE = ("tasks_app.jobobject", "tasks_app.states")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, absolute (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            # "from tasks_app import services" imports the module tasks_app.services.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def modules() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found[module_name(path)] = set(imported(path))
    return found


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


IMPORTS = modules()


def test_the_reader_sees_the_imports_it_checks():
    assert "realtime.messaging" in IMPORTS["tasks_app.services"]
    assert "tasks_app.services" in IMPORTS["realtime.consumers"]
    assert "tasks_app.kinds.port" in IMPORTS["tasks_app.kinds.task_kind"]
    assert {"proj.demo_service.app", "tasks_app.csv.reader", "tasks_app.jobobject"} <= set(IMPORTS)
    assert "csv" in IMPORTS["tasks_app.csv.reader"]
    assert len(IMPORTS) > 50


def offenders(package: str, forbidden: Callable[[str], bool]) -> list[str]:
    """``"<module> imports <target>"`` for each import of a module of ``package`` that
    ``forbidden`` refuses."""
    return [
        f"{module} imports {target}"
        for module, targets in IMPORTS.items()
        if within(module, package)
        for target in sorted(targets)
        if forbidden(target)
    ]


def any_of(*prefixes: str) -> Callable[[str], bool]:
    return lambda target: any(within(target, prefix) for prefix in prefixes)


def test_tasks_app_reaches_realtime_only_through_its_port():
    assert offenders("tasks_app", lambda t: within(t, "realtime") and t not in ("realtime", REALTIME_PORT)) == []


def test_the_port_imports_nothing_of_tasks_app():
    assert offenders(REALTIME_PORT, any_of("tasks_app")) == []


def test_kinds_never_import_services():
    assert offenders("tasks_app.kinds", any_of(*NOT_FOR_KINDS)) == []


def test_only_the_routing_imports_the_consumers():
    importers = {m for m, targets in IMPORTS.items() if "realtime.consumers" in targets}
    assert importers == {"realtime.routing"}


def test_realtime_never_imports_celery_tasks():
    tasks = any_of("tasks_app.tasks", "tasks_app.work", "tasks_app.supervisor", "celery")
    assert offenders("realtime", tasks) == []


@pytest.mark.parametrize("module", PURE)
def test_declarations_import_no_model_channels_or_celery(module):
    def forbidden(target: str) -> bool:
        local = within(target, "tasks_app") and target != "tasks_app" and not any_of(*PURE)(target)
        return local or any_of("channels", "celery", "realtime", "django.db.models.base")(target)

    assert offenders(module, forbidden) == []


def test_the_demo_service_is_a_program_apart():
    """``proj.demo_service`` (the stand-in external service) speaks HTTP only: nothing of the
    job system, no Django."""
    assert offenders("proj.demo_service", any_of("tasks_app", "realtime", "django", "channels")) == []


def test_the_csv_profiler_is_pure_python():
    """``tasks_app.csv`` reads files and counts: the standard library and itself only."""

    def forbidden(target: str) -> bool:
        if target.split(".")[0] not in ("tasks_app", "__future__", *sys.stdlib_module_names):
            return True
        return within(target, "tasks_app") and target != "tasks_app" and not within(target, "tasks_app.csv")

    assert offenders("tasks_app.csv", forbidden) == []
