"""Run one `migrate` in a project and record everything a user could observe.

    python tests/harness.py PROJECT_DIR OUT.json -- migrate app 0003 ...

Run in a fresh process per command, as `manage.py migrate` is. Records: the command's output,
the states handed to `pre_migrate` and `post_migrate` (the registries, read back into model
states) and the state `MigrationExecutor.migrate` returned, each written out with Django's own
migration serializer (so the comparison does not trust statecache's codec); then the schema as
the database's catalog shows it and the rows of django_migrations, django_content_type and
auth_permission.

Values that migrations compute at import time (`default=timezone.now()`, `uuid.uuid4()`) differ
from one process to the next, so they cannot be compared across processes by value. What must
hold is that a state holds *this process's* value, the very object its loaded migrations hold,
as vanilla Django's states do: such a value is written as "<this process's import-time value>"
when it is that object, and by value (which then differs from vanilla's record) when it is not.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import sys
from pathlib import Path

LIVE = "'<this process's import-time value>'"
# Random strings computed at import time by the test projects start with this, so that they can
# be compared for what they are like dates, times and UUIDs (a string has no type to tell).
RANDOM = "rnd-"
# Found once per command (each `migrate` loads, and so imports, the migration modules again).
_live: dict[int, object] = {}


def _live_values() -> dict[int, object]:
    """The date, time and UUID values held by the operations of the loaded migration modules."""
    import datetime
    import uuid

    found: dict[int, object] = {}
    stack: list = []
    for name, module in list(sys.modules.items()):
        if ".migrations." in name and hasattr(module, "Migration"):
            stack.extend(getattr(module.Migration, "operations", []))
    seen: set[int] = set()
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, (datetime.date, datetime.time, uuid.UUID)) or (
            isinstance(value, str) and value.startswith(RANDOM)
        ):
            found[id(value)] = value
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple)):
            stack.extend(value)
        elif hasattr(value, "_constructor_args"):
            stack.extend(value._constructor_args[0])
            stack.extend(value._constructor_args[1].values())
        elif hasattr(value, "deconstruct") and not isinstance(value, type):
            try:
                stack.extend(value.deconstruct()[-1].values())
            except Exception:
                pass
    return found


def install_live_serializers() -> None:
    import datetime
    import uuid

    from django.db.migrations import serializer
    from django.db.migrations.writer import MigrationWriter

    live = _live

    def marking(base):
        class Marking(base):
            def serialize(self):
                if not live:
                    live.update(_live_values())
                if live.get(id(self.value)) is self.value:
                    return LIVE, set()
                return super().serialize()

        return Marking

    MigrationWriter.register_serializer(
        datetime.datetime, marking(serializer.DatetimeDatetimeSerializer)
    )
    MigrationWriter.register_serializer(
        (datetime.date, datetime.timedelta, datetime.time),
        marking(serializer.DateTimeSerializer),
    )
    MigrationWriter.register_serializer(uuid.UUID, marking(serializer.UUIDSerializer))
    simple = marking(serializer.BaseSimpleSerializer)

    class Simple(simple):
        def serialize(self):
            if isinstance(self.value, str) and self.value.startswith(RANDOM):
                return super().serialize()
            return serializer.BaseSimpleSerializer.serialize(self)

    # The key Django registers these types under, so that this one replaces it in place.
    MigrationWriter.register_serializer((bool, int, type(None), bytes, str, range), Simple)


def dump_state(state) -> list:
    from django.db.migrations.writer import MigrationWriter

    def text(value):
        try:
            return MigrationWriter.serialize(value)[0]
        except ValueError:
            return unwritable(value, text)

    models = []
    for key, model_state in state.models.items():
        models.append(
            [
                list(key),
                [[name, text(field)] for name, field in model_state.fields.items()],
                text(model_state.options),
                text(tuple(model_state.bases)),
                [[name, text(manager)] for name, manager in model_state.managers],
            ]
        )
    return [sorted(state.real_apps), models]


def unwritable(value, text) -> str:
    """What Django's writer cannot write (a closure, a lambda: hand-written migrations hold
    them), described by what is the same in every process: a deconstructible value by its
    deconstruction, a function by its module and qualified name, anything else by its type."""
    if hasattr(value, "deconstruct") and not isinstance(value, type):
        deconstructed = value.deconstruct()
        path, args, kwargs = deconstructed[-3:]
        arguments = [text(arg) for arg in args]
        arguments += [f"{name}={text(kwargs[name])}" for name in sorted(kwargs)]
        return f"{path}({', '.join(arguments)})"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [text(item) for item in value]
        if isinstance(value, (set, frozenset)):
            items.sort()
        return f"{type(value).__name__}({', '.join(items)})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{text(k)}: {text(v)}" for k, v in value.items()) + "}"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"<function {value.__module__}.{value.__qualname__}>"
    return f"<{type(value).__module__}.{type(value).__qualname__}>"


def pristine_copy(migration):
    """A migration whose operations are copies (for replaying twice in one process)."""
    clone = copy.copy(migration)
    clone.operations = copy.deepcopy(migration.operations)
    return clone


def dump_apps(apps) -> list:
    """A registry read back into model states, in registration order."""
    from django.db.migrations.state import ModelState, ProjectState

    models = {}
    for model in apps.get_models(include_swapped=True, include_auto_created=True):
        models[(model._meta.app_label, model._meta.model_name)] = ModelState.from_model(model)
    return dump_state(ProjectState(models=models))[1]


def schema(connection) -> dict:
    vendor = connection.vendor
    with connection.cursor() as cursor:
        if vendor == "sqlite":
            cursor.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master "
                "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name"
            )
            master = [list(row) for row in cursor.fetchall()]
            tables = {}
            for kind, name, _, _ in master:
                if kind != "table":
                    continue
                quoted = connection.ops.quote_name(name)
                info = {}
                for pragma in ("table_info", "foreign_key_list", "index_list"):
                    cursor.execute(f"PRAGMA {pragma}({quoted})")
                    info[pragma] = [list(row) for row in cursor.fetchall()]
                indexes = {}
                for row in info["index_list"]:
                    cursor.execute(f"PRAGMA index_info({connection.ops.quote_name(row[1])})")
                    indexes[row[1]] = [list(r) for r in cursor.fetchall()]
                info["index_info"] = indexes
                tables[name] = info
            return {"master": master, "tables": tables}
        introspection = connection.introspection
        result = {}
        for name in sorted(introspection.table_names(cursor)):
            description = [
                [c.name, c.type_code, c.null_ok, str(c.default)]
                for c in introspection.get_table_description(cursor, name)
            ]
            constraints = introspection.get_constraints(cursor, name)
            result[name] = {
                "columns": description,
                "constraints": {
                    k: {
                        kk: (
                            sorted(map(str, vv)) if isinstance(vv, (list, set, tuple)) else str(vv)
                        )
                        for kk, vv in v.items()
                    }
                    for k, v in sorted(constraints.items())
                },
            }
        return result


def rows(connection) -> dict:
    out = {}
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        for table, columns in (
            ("django_migrations", "id, app, name"),
            ("django_content_type", "id, app_label, model"),
            ("auth_permission", "id, content_type_id, codename, name"),
        ):
            if table in tables:
                cursor.execute(f"SELECT {columns} FROM {table} ORDER BY id")
                out[table] = [list(row) for row in cursor.fetchall()]
    return out


def split_commands(argv: list[str]) -> list[list[str]]:
    """`-- migrate a 0001 -- migrate` -> [["migrate", "a", "0001"], ["migrate"]]."""
    commands: list[list[str]] = []
    for word in argv:
        if word == "--":
            commands.append([])
        else:
            commands[-1].append(word)
    return [c for c in commands if c]


def main() -> None:
    project, out = Path(sys.argv[1]), Path(sys.argv[2])
    commands = split_commands(sys.argv[3:])
    sys.path.insert(0, str(project))
    os.chdir(project)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genproject.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor
    from django.db.models.signals import post_migrate, pre_migrate

    from statecache import conf, snapshots

    install_live_serializers()
    record: dict = {}

    def on_signal(name):
        def receiver(sender, apps=None, **kwargs):
            # One app config is enough: the apps registry is the same for every sender.
            if name not in record["signals"] and apps is not None:
                record["signals"][name] = dump_apps(apps)

        return receiver

    pre_migrate.connect(on_signal("pre_migrate"), weak=False)
    post_migrate.connect(on_signal("post_migrate"), weak=False)
    migrate = MigrationExecutor.migrate

    def recording_migrate(self, *args, **kwargs):
        state = migrate(self, *args, **kwargs)
        record["returned"].append(dump_state(state))
        return state

    MigrationExecutor.migrate = recording_migrate
    records = []
    for command in commands:
        record = {"command": command, "signals": {}, "returned": []}
        _live.clear()
        stats = snapshots.current().stats if conf.enabled() else None
        before = (stats.hits, stats.misses) if stats else (0, 0)
        stdout = io.StringIO()
        error = None
        try:
            call_command(*command, stdout=stdout, no_color=True)
        except Exception as exc:  # recorded: both variants must fail the same way
            # Server errors name the database, which differs between the variants.
            database = str(connection.settings_dict["NAME"])
            error = f"{type(exc).__name__}: {exc}".replace(database, "<database>")
            # Reprs of functions (an IrreversibleError names its RunPython's) carry addresses.
            error = re.sub(r" at 0x[0-9a-f]+>", " at 0x...>", error)
        record["stdout"] = stdout.getvalue()
        record["error"] = error
        record["statecache"] = (
            None
            if stats is None
            else {"hits": stats.hits - before[0], "misses": stats.misses - before[1]}
        )
        record["schema"] = schema(connection)
        record["rows"] = rows(connection)
        records.append(record)
    out.write_text(json.dumps(records, indent=1, default=str))


if __name__ == "__main__":
    main()
