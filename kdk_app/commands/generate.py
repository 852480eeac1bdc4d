"""``kdk generate service NAME``: a service module (schema, hooks, spec) and its test, as
``feathers generate service`` writes them; never over an existing file."""

from __future__ import annotations

import keyword
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

import click

from . import templates

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_-]*")


@dataclass(frozen=True)
class ServiceNames:
    path: str  # the service path: todo-items
    module: str  # services/todo_items.py, and its MongoDB collection
    schema: str  # TodoItemsSchema

    @classmethod
    def of(cls, name: str) -> ServiceNames:
        if not NAME_PATTERN.fullmatch(name):
            raise click.BadParameter(
                "lower-case letters, digits, '-' and '_', starting with a letter (e.g. todo-items)",
                param_hint="NAME",
            )
        module = name.replace("-", "_")
        if keyword.iskeyword(module):
            raise click.BadParameter(f"'{module}' is a Python keyword, not a module name", param_hint="NAME")
        schema = "".join(part.capitalize() for part in re.split(r"[-_]+", name) if part) + "Schema"
        return cls(path=name, module=module, schema=schema)


def service_files(names: ServiceNames, adapter: str) -> dict[str, str]:
    """Relative path -> text of each file for the service ``names`` on ``adapter``."""
    values = {"path": names.path, "module": names.module, "schema": names.schema, "collection": names.module}
    mongodb = adapter == "mongodb"
    options = Template(templates.MONGODB_OPTIONS if mongodb else templates.MEMORY_OPTIONS)
    fixtures = Template(templates.MONGODB_FIXTURES if mongodb else templates.MEMORY_FIXTURES)
    module_path = f"services/{names.module}.py"
    test_path = f"tests/test_{names.module}_service.py"
    return {
        module_path: templates.SERVICE_MODULE.substitute(values, adapter_options=options.substitute(values)),
        test_path: templates.SERVICE_TEST.substitute(
            values,
            test_path=test_path,
            id="_id" if mongodb else "id",
            imports=templates.MONGODB_IMPORTS if mongodb else templates.MEMORY_IMPORTS,
            fixtures=fixtures.substitute(values),
            database_note=templates.MONGODB_NOTE if mongodb else "",
        ),
    }


def registration_text(names: ServiceNames, test_path: str) -> str:
    return (
        "\nRegister it in config/default.py:\n\n"
        f"    from services import {names.module}\n\n"
        f'    services["{names.path}"] = {names.module}.service()\n\n'
        f"Run its test: python -m pytest {test_path}\n"
    )


@click.group("generate")
def generate() -> None:
    """Write the files of a new part of the app."""


@generate.command("service")
@click.argument("name")
@click.option("--adapter", type=click.Choice(["mongodb", "memory"]), default="mongodb", show_default=True)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="the project folder: services/NAME.py and tests/ go there",
)
def generate_service(name: str, adapter: str, directory: Path) -> None:
    """Write services/NAME.py (schema, hooks, spec) and tests/test_NAME_service.py."""
    names = ServiceNames.of(name)
    files = service_files(names, adapter)
    existing = [relative for relative in files if (directory / relative).exists()]
    if existing:
        raise click.ClickException(f"not overwriting {', '.join(str(directory / p) for p in existing)}")
    package_init = directory / "services" / "__init__.py"
    if not package_init.exists():
        files = {"services/__init__.py": templates.PACKAGE_INIT, **files}
    for relative, text in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "x", encoding="utf-8") as handle:  # "x": never over a file made meanwhile
            handle.write(text)
        click.echo(f"wrote {target}")
    test_path = next(path for path in files if path.startswith("tests/"))
    click.echo(registration_text(names, str(directory / test_path)), nl=False)
