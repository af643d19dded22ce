"""Generate a Django project with a long, realistic, reversible migration history.

    python -m benchmarks.generate --apps 30 --models 300 --migrations 2000 --seed 1 OUT_DIR

The same arguments always give the same project. Histories mix CreateModel (plain, multi-table
inheritance, proxies, many-to-many with explicit through models), AddField / AlterField /
RenameField / RemoveField, RenameModel, DeleteModel, indexes, constraints, model options,
unique_together, RunPython (with reverse) and RunSQL (with reverse); foreign keys cross apps,
many point to one heavily referenced model and to AUTH_USER_MODEL (a custom user model, so the
swappable dependency is exercised). The models.py files match the final state, so
`makemigrations --check` is clean. Migration files are written by Django's MigrationWriter.
"""

from __future__ import annotations

import argparse
import datetime
import decimal
import functools
import random
import sys
import textwrap
import uuid
from dataclasses import dataclass, field
from pathlib import Path

GENLIB = Path(__file__).resolve().parent / "genlib"

SIZES = {
    "tiny": dict(apps=3, models=12, migrations=40),
    "small": dict(apps=5, models=50, migrations=300),
    "medium": dict(apps=30, models=300, migrations=2000),
    "large": dict(apps=60, models=800, migrations=6000),
}


def _configure() -> None:
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth"],
            DATABASES={},
            USE_TZ=True,
        )
        django.setup()


@dataclass
class FieldSpec:
    kind: str
    args: dict
    target: str | None = None  # "app.Model" for relations
    through: str | None = None
    locked: bool = False  # used by an index/constraint/together: never renamed or removed
    to_field: str | None = None


@dataclass
class ModelSpec:
    app: str
    name: str
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    parent: str | None = None  # multi-table inheritance
    proxy_of: str | None = None
    indexes: list[tuple[str, list[str]]] = field(default_factory=list)
    constraints: list[tuple[str, str, list[str]]] = field(default_factory=list)
    unique_together: list[tuple[str, ...]] = field(default_factory=list)
    ordering: list[str] | None = None
    verbose_name: str | None = None
    is_through: bool = False
    counter: int = 0

    @property
    def label(self) -> str:
        return f"{self.app}.{self.name}"


class Generator:
    def __init__(
        self, apps: int, models: int, migrations: int, seed: int, stress: bool = False
    ) -> None:
        self.rng = random.Random(seed)
        # stress: far more of the operations that reach into other models (primary key and
        # referenced-column changes, renames), for tests; the default mix is for benchmarks.
        self.stress = stress
        self.n_apps = max(apps, 1)
        self.n_models = max(models, self.n_apps)
        self.n_migrations = max(migrations, self.n_models // 2 + self.n_apps + 1)
        self.apps = [f"app{i:02d}" for i in range(self.n_apps)]
        self.models: dict[str, ModelSpec] = {}
        self.history: dict[str, list] = {app: [] for app in ["accounts", *self.apps]}
        self.created = 0
        self.hub: str | None = None
        self.names = 0
        self.pending_deps: set[tuple[str, str]] = set()
        self.ref_apps: dict[str, set[str]] = {}  # model label -> apps that ever pointed at it
        # lower-cased model label -> the last migration whose DDL wrote its table
        self.last_write: dict[str, tuple[str, str]] = {}
        # lower-cased model label -> (model, to_field) of every foreign key that ever pointed at
        # it: in the plan, a migration of another app can run while a since-removed one exists
        self.pointers: dict[str, set[tuple[str, str | None]]] = {}

    # -- helpers -------------------------------------------------------------------------------

    def fresh(self, prefix: str) -> str:
        self.names += 1
        return f"{prefix}{self.names}"

    def app_models(self, app: str, concrete: bool = True) -> list[ModelSpec]:
        return [
            m
            for m in self.models.values()
            if m.app == app and (not concrete or (m.proxy_of is None))
        ]

    def referenced(self, label: str) -> bool:
        for model in self.models.values():
            if model.parent == label or model.proxy_of == label:
                return True
            for spec in model.fields.values():
                if spec.target == label or spec.through == label:
                    return True
        return False

    def depend_on_referrers(self, label: str) -> None:
        """As the autodetector does: renaming or deleting a model depends on the migrations of
        the apps whose fields pointed at it (they may have removed those fields since)."""
        for app in self.ref_apps.get(label, ()):
            last = self.last_migration(app)
            if last:
                self.pending_deps.add(last)

    def record_pointers(self, app: str, ops: list) -> None:
        from django.db import migrations

        for op in ops:
            if isinstance(op, migrations.RenameModel):
                old, new = f"{app}.{op.old_name}".lower(), f"{app}.{op.new_name}".lower()
                self.pointers.setdefault(new, set()).update(self.pointers.get(old, ()))
                for refs in self.pointers.values():
                    for _, to_field in [r for r in refs if r[0] == old]:
                        refs.add((new, to_field))
                continue
            if isinstance(op, migrations.CreateModel):
                owner, fields = op.name, [f for _, f in op.fields]
            elif isinstance(op, (migrations.AddField, migrations.AlterField)):
                owner, fields = op.model_name, [op.field]
            else:
                continue
            for relation in fields:
                remote = getattr(relation, "remote_field", None)
                if remote is not None:
                    to_field = next(iter(getattr(relation, "to_fields", None) or [None]))
                    self.pointers.setdefault(str(remote.model).lower(), set()).add(
                        (f"{app}.{owner}".lower(), to_field)
                    )

    def referrers(self, label: str, to_field: str | None = None) -> set[str]:
        """The models whose tables point, or ever pointed, at `label` (at its column `to_field`
        only, if given)."""
        found = {
            model
            for model, column in self.pointers.get(label.lower(), ())
            if to_field is None or column == to_field
        }
        # Foreign keys are in `pointers`; a multi-table child and a many-to-many field through
        # the model point at it without one:
        for model in self.models.values():
            if model.parent == label or any(s.through == label for s in model.fields.values()):
                found.add(model.label.lower())
        return found

    def written_tables(self, app: str, ops: list) -> set[str]:
        """The models whose tables the migration's DDL can write, in either direction: the ones
        it names and, where SQLite rebuilds the tables that point at a model (a renamed model, a
        primary key or a referenced column changing type), those too."""
        from django.db import migrations

        written = set()
        for op in ops:
            if isinstance(op, migrations.RunSQL):
                continue
            if isinstance(op, migrations.RunPython):
                name = op.code.args[1]
            elif isinstance(op, migrations.RenameModel):
                name = op.new_name
            else:
                name = getattr(op, "model_name", None) or op.name
            label = f"{app}.{name}".lower()
            written.add(label)
            if isinstance(op, migrations.RenameModel):  # the same table under its old name
                written.add(f"{app}.{op.old_name}".lower())
            model = next((m for m in self.models.values() if m.label.lower() == label), None)
            if model is None:
                continue
            if isinstance(op, migrations.RenameModel):
                written |= self.referrers(model.label)
            elif isinstance(op, migrations.AlterField):
                to_field = None if op.name == "id" else op.name
                written |= self.referrers(model.label, to_field)
        return written

    def last_migration(self, app: str) -> tuple[str, str] | None:
        return (app, self.history[app][-1]["name"]) if self.history[app] else None

    # -- fields --------------------------------------------------------------------------------

    def scalar_field(self) -> FieldSpec:
        kind = self.rng.choice(
            [
                "char",
                "char",
                "int",
                "int",
                "bool",
                "dec",
                "dt",
                "date",
                "upper",
                "uuid",
                "text",
                "code",
            ]
        )
        args = {
            "char": {"max_length": self.rng.choice([20, 50, 100]), "default": ""},
            "upper": {"max_length": 40, "default": "", "blank": True},
            "int": {"default": self.rng.choice([0, 1, 10])},
            "bool": {"default": self.rng.choice([True, False])},
            "dec": {"max_digits": 10, "decimal_places": 2, "default": decimal.Decimal("0.00")},
            "dt": {"default": "now"},
            "date": {"default": datetime.date(2020, 1, 1)},
            "uuid": {"default": "uuid4", "editable": False},
            "text": {"blank": True, "default": ""},
            "code": {"max_length": 20, "unique": True, "null": True},
        }[kind]
        return FieldSpec(kind, dict(args))

    def relation_field(self, source_app: str) -> FieldSpec | None:
        candidates = [m for m in self.models.values() if m.proxy_of is None and not m.is_through]
        roll = self.rng.random()
        if roll < 0.2:
            return FieldSpec("fk", {"null": True, "on_delete": "SET_NULL"}, target="__user__")
        if roll < 0.45 and self.hub:
            return FieldSpec("fk", {"on_delete": "CASCADE", "null": True}, target=self.hub)
        if not candidates:
            return None
        target = self.rng.choice(candidates)
        codes = [n for n, f in target.fields.items() if f.kind == "code"]
        if roll < (0.85 if self.stress else 0.55) and codes:
            # A foreign key to a unique non-primary-key column.
            name = self.rng.choice(codes)
            target.fields[name].locked = True
            return FieldSpec(
                "fk", {"null": True, "on_delete": "CASCADE"}, target=target.label, to_field=name
            )
        if roll < 0.85:
            kind = self.rng.choice(["fk", "fk", "fk", "o2o"])
            on_delete = self.rng.choice(["CASCADE", "PROTECT", "SET_NULL"])
            return FieldSpec(kind, {"null": True, "on_delete": on_delete}, target=target.label)
        return FieldSpec("m2m", {"blank": True}, target=target.label)

    # -- Django objects ------------------------------------------------------------------------

    def django_field(self, name: str, spec: FieldSpec, owner: ModelSpec):
        from django.conf import settings
        from django.db import models
        from django.utils import timezone
        from genlib import fields as custom_fields

        if spec.kind in ("fk", "o2o", "m2m"):
            # Fixed when the field is created: later renames of its model keep it.
            spec.args.setdefault("related_name", f"{owner.app}_{owner.name.lower()}_{name}")
        args = dict(spec.args)
        related_name = args.pop("related_name", None)
        if args.get("default") == "now":
            args["default"] = timezone.now
        if args.get("default") == "uuid4":
            args["default"] = uuid.uuid4
        target = spec.target
        for label in (target, spec.through):
            if label and label != "__user__":
                self.ref_apps.setdefault(label, set()).add(owner.app)
        if target == "__user__":
            target = settings.AUTH_USER_MODEL
        if spec.kind in ("fk", "o2o"):
            on_delete = getattr(models, args.pop("on_delete"))
            if on_delete is not models.SET_NULL:
                args.pop("null", None)
                args["null"] = True
            cls = models.ForeignKey if spec.kind == "fk" else models.OneToOneField
            if spec.to_field:
                args["to_field"] = spec.to_field
            return cls(to=target, on_delete=on_delete, related_name=related_name, **args)
        if spec.kind == "m2m":
            if spec.through:
                args["through"] = spec.through
            return models.ManyToManyField(to=target, related_name=related_name, **args)
        if spec.kind == "ptr":
            return models.OneToOneField(
                to=target,
                on_delete=models.CASCADE,
                parent_link=True,
                auto_created=True,
                primary_key=True,
                serialize=False,
            )
        if spec.kind in ("id", "id32"):
            cls = models.BigAutoField if spec.kind == "id" else models.AutoField
            return cls(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")
        cls = {
            "char": models.CharField,
            "upper": custom_fields.UpperCharField,
            "int": models.IntegerField,
            "bool": models.BooleanField,
            "dec": models.DecimalField,
            "dt": models.DateTimeField,
            "date": models.DateField,
            "uuid": models.UUIDField,
            "text": models.TextField,
            "code": models.CharField,
        }[spec.kind]
        return cls(**args)

    # -- steps ---------------------------------------------------------------------------------

    def op_create_model(self, app: str) -> list:
        from django.db import migrations, models

        name = self.fresh("Model")
        spec = ModelSpec(app, name)
        # Bases from the same app only: cross-app bases make models.py imports circular.
        candidates = [
            m
            for m in self.app_models(app)
            if m.proxy_of is None and not m.is_through and m.parent is None
        ]
        roll = self.rng.random()
        ops = []
        if roll < 0.06 and candidates:
            base = self.rng.choice(candidates)
            spec.proxy_of = base.label
            self.models[spec.label] = spec
            return [
                migrations.CreateModel(
                    name=name,
                    fields=[],
                    options={"proxy": True, "indexes": [], "constraints": []},
                    bases=(base.label.lower(),),
                )
            ]
        if roll < 0.12 and candidates:
            base = self.rng.choice(candidates)
            spec.parent = base.label
            ptr = f"{base.name.lower()}_ptr"
            spec.fields[ptr] = FieldSpec("ptr", {}, target=base.label, locked=True)
        else:
            spec.fields["id"] = FieldSpec("id", {}, locked=True)
        # Benchmark models are the size of real ones (a dozen fields, a few relations); the
        # stress mix keeps them small so that tests stay fast.
        scalars = self.rng.randint(1, 5) if self.stress else self.rng.randint(4, 14)
        for _ in range(scalars):
            spec.fields[self.fresh("f")] = self.scalar_field()
        if self.stress and self.rng.random() < 0.6:
            spec.fields[self.fresh("code")] = FieldSpec(
                "code", {"max_length": 20, "unique": True, "null": True}
            )
        relations = int(self.rng.random() < 0.5) if self.stress else self.rng.randint(0, 3)
        for _ in range(relations):
            relation = self.relation_field(app)
            if relation:
                spec.fields[self.fresh("rel")] = relation
        fields = [(n, self.django_field(n, s, spec)) for n, s in spec.fields.items()]
        options: dict = {}
        if self.rng.random() < 0.2:
            spec.verbose_name = f"{name} record"
            options["verbose_name"] = spec.verbose_name
        bases = (spec.parent.lower(),) if spec.parent else (models.Model,)
        ops.append(migrations.CreateModel(name=name, fields=fields, options=options, bases=bases))
        self.models[spec.label] = spec
        if self.hub is None:
            self.hub = spec.label
        # Sometimes a many-to-many with an explicit through model.
        others = [
            m
            for m in self.models.values()
            if m.proxy_of is None and m.label != spec.label and not m.is_through
        ]
        if self.rng.random() < 0.08 and others:
            other = self.rng.choice(others)
            through = ModelSpec(app, self.fresh("Link"), is_through=True)
            through.fields["id"] = FieldSpec("id", {}, locked=True)
            through.fields["left"] = FieldSpec(
                "fk", {"on_delete": "CASCADE"}, target=spec.label, locked=True
            )
            through.fields["right"] = FieldSpec(
                "fk", {"on_delete": "CASCADE"}, target=other.label, locked=True
            )
            through.fields["weight"] = FieldSpec("int", {"default": 0})
            self.models[through.label] = through
            ops.append(
                migrations.CreateModel(
                    name=through.name,
                    fields=[
                        (n, self.django_field(n, s, through)) for n, s in through.fields.items()
                    ],
                )
            )
            m2m = FieldSpec(
                "m2m", {"blank": True}, target=other.label, through=through.label, locked=True
            )
            m2m_name = self.fresh("links")
            spec.fields[m2m_name] = m2m
            ops.append(
                migrations.AddField(
                    model_name=name.lower(),
                    name=m2m_name,
                    field=self.django_field(m2m_name, m2m, spec),
                )
            )
        return ops

    def pick_model(self, app: str, concrete: bool = True) -> ModelSpec | None:
        choices = [m for m in self.app_models(app, concrete) if not m.is_through]
        return self.rng.choice(choices) if choices else None

    def free_fields(self, model: ModelSpec, kinds: tuple[str, ...] | None = None) -> list[str]:
        return [
            n
            for n, s in model.fields.items()
            if not s.locked and (kinds is None or s.kind in kinds)
        ]

    def op_add_field(self, app: str) -> list:
        from django.db import migrations

        model = self.pick_model(app)
        if model is None:
            return []
        spec = self.relation_field(app) if self.rng.random() < 0.35 else self.scalar_field()
        if spec is None:
            spec = self.scalar_field()
        name = self.fresh("f")
        model.fields[name] = spec
        return [
            migrations.AddField(
                model_name=model.name.lower(),
                name=name,
                field=self.django_field(name, spec, model),
            )
        ]

    def op_alter_field(self, app: str) -> list:
        from django.db import migrations

        model = self.pick_model(app)
        if model is None:
            return []
        names = [n for n, f in model.fields.items() if f.kind == "code"]
        names += self.free_fields(model, ("char", "int", "text", "upper", "fk"))
        if not names:
            return []
        name = self.rng.choice(names)
        spec = model.fields[name]
        if spec.kind in ("char", "code"):
            spec.args["max_length"] = self.rng.choice([30, 60, 120, 200])
        elif spec.kind == "int":
            spec.args["default"] = self.rng.randint(0, 99)
            spec.args["db_index"] = not spec.args.get("db_index", False)
        elif spec.kind in ("text", "upper"):
            spec.args["blank"] = not spec.args.get("blank", False)
        elif spec.kind == "fk":
            spec.args["db_index"] = not spec.args.get("db_index", True)
        return [
            migrations.AlterField(
                model_name=model.name.lower(),
                name=name,
                field=self.django_field(name, spec, model),
            )
        ]

    def op_alter_pk(self, app: str) -> list:
        """Switch a primary key between AutoField and BigAutoField (DEFAULT_AUTO_FIELD changes
        do this): every column that references it changes too."""
        from django.db import migrations

        # Not a model that an auto-created many-to-many table points to (its target, or the
        # model the field is on): on MySQL and MariaDB, Django then fails to change the primary
        # key's type ("used in a foreign key constraint"), without statecache alike.
        auto_m2m = [
            (m.label, f.target)
            for m in self.models.values()
            for f in m.fields.values()
            if f.kind == "m2m" and not f.through
        ]
        in_m2m = {label for pair in auto_m2m for label in pair}
        models_with_id = [
            m
            for m in self.app_models(app)
            if m.fields.get("id") and not m.is_through and m.label not in in_m2m
        ]
        if not models_with_id:
            return []
        referenced = [m for m in models_with_id if self.referenced(m.label)]
        model = self.rng.choice(referenced or models_with_id)
        spec = model.fields["id"]
        spec.kind = "id32" if spec.kind == "id" else "id"
        return [
            migrations.AlterField(
                model_name=model.name.lower(),
                name="id",
                field=self.django_field("id", spec, model),
            )
        ]

    def op_rename_field(self, app: str) -> list:
        from django.db import migrations

        model = self.pick_model(app)
        names = self.free_fields(model, ("char", "int", "bool", "dec", "text")) if model else []
        if not names:
            return []
        old = self.rng.choice(names)
        new = self.fresh("renamed")
        model.fields = {(new if n == old else n): s for n, s in model.fields.items()}
        return [migrations.RenameField(model_name=model.name.lower(), old_name=old, new_name=new)]

    def op_remove_field(self, app: str) -> list:
        from django.db import migrations

        model = self.pick_model(app)
        names = self.free_fields(model) if model else []
        if len(names) < 2:
            return []
        name = self.rng.choice(names)
        del model.fields[name]
        return [migrations.RemoveField(model_name=model.name.lower(), name=name)]

    def op_index(self, app: str) -> list:
        from django.db import migrations, models

        model = self.pick_model(app)
        if model is None:
            return []
        if model.indexes and self.rng.random() < 0.4:
            index_name, columns = model.indexes.pop()
            return [migrations.RemoveIndex(model_name=model.name.lower(), name=index_name)]
        names = self.free_fields(model, ("char", "int", "date", "bool"))
        if not names:
            return []
        column = self.rng.choice(names)
        model.fields[column].locked = True
        index_name = f"ix_{self.fresh('i')}"
        model.indexes.append((index_name, [column]))
        return [
            migrations.AddIndex(
                model_name=model.name.lower(),
                index=models.Index(fields=[column], name=index_name),
            )
        ]

    def op_constraint(self, app: str) -> list:
        from django.db import migrations, models

        model = self.pick_model(app)
        if model is None:
            return []
        if model.constraints and self.rng.random() < 0.4:
            name, _, _ = model.constraints.pop()
            return [migrations.RemoveConstraint(model_name=model.name.lower(), name=name)]
        ints = self.free_fields(model, ("int",))
        chars = self.free_fields(model, ("char",))
        name = f"ck_{self.fresh('c')}"
        if ints and (not chars or self.rng.random() < 0.5):
            column = self.rng.choice(ints)
            model.fields[column].locked = True
            model.constraints.append((name, "check", [column]))
            return [
                migrations.AddConstraint(
                    model_name=model.name.lower(),
                    constraint=_check_constraint(models.Q(**{f"{column}__gte": 0}), name),
                )
            ]
        if chars:
            column = self.rng.choice(chars)
            model.fields[column].locked = True
            model.constraints.append((name, "unique", [column]))
            return [
                migrations.AddConstraint(
                    model_name=model.name.lower(),
                    constraint=models.UniqueConstraint(fields=[column], name=name),
                )
            ]
        return []

    def op_options(self, app: str) -> list:
        from django.db import migrations

        model = self.pick_model(app)
        if model is None:
            return []
        if self.rng.random() < 0.5:
            names = self.free_fields(model, ("char", "int"))
            if len(names) >= 2 and not model.unique_together:
                pair = tuple(sorted(self.rng.sample(names, 2)))
                for n in pair:
                    model.fields[n].locked = True
                model.unique_together = [pair]
                return [
                    migrations.AlterUniqueTogether(name=model.name.lower(), unique_together={pair})
                ]
        ordering_fields = [n for n, s in model.fields.items() if s.kind in ("int", "char", "id")]
        model.ordering = [self.rng.choice(ordering_fields)] if ordering_fields else None
        if model.ordering:
            model.fields[model.ordering[0]].locked = True
        model.verbose_name = f"{model.name} v{self.fresh('')}"
        options = {"verbose_name": model.verbose_name}
        if model.ordering:
            options["ordering"] = model.ordering
        return [migrations.AlterModelOptions(name=model.name.lower(), options=options)]

    def op_rename_model(self, app: str) -> list:
        from django.db import migrations

        model = self.pick_model(app)
        if model is None or model.proxy_of or model.is_through or model.label == self.hub:
            return []
        if any(m.parent == model.label or m.proxy_of == model.label for m in self.models.values()):
            return []
        if any(
            m.is_through and any(s.target == model.label for s in m.fields.values())
            for m in self.models.values()
        ):
            return []
        if any(
            s.through and s.target == model.label
            for m in self.models.values()
            for s in m.fields.values()
        ):
            return []
        old_label = model.label
        self.depend_on_referrers(old_label)
        del self.models[old_label]
        old_name = model.name
        model.name = self.fresh("Renamed")
        self.models[model.label] = model
        self.ref_apps[model.label] = self.ref_apps.pop(old_label, set())
        for other in self.models.values():
            for spec in other.fields.values():
                if spec.target == old_label:
                    spec.target = model.label
        return [migrations.RenameModel(old_name=old_name, new_name=model.name)]

    def op_delete_model(self, app: str) -> list:
        from django.db import migrations

        model = self.pick_model(app, concrete=False)
        if model is None or model.label == self.hub or self.referenced(model.label):
            return []
        if model.is_through:
            return []
        self.depend_on_referrers(model.label)
        del self.models[model.label]
        return [migrations.DeleteModel(name=model.name)]

    def op_run_python(self, app: str) -> list:
        from django.db import migrations
        from genlib import data

        model = self.pick_model(app)
        if model is None:
            return []
        return [
            migrations.RunPython(
                functools.partial(data.touch, app, model.name),
                functools.partial(data.touch, app, model.name),
            )
        ]

    def op_run_sql(self, app: str) -> list:
        from django.db import migrations

        table = f"{app}_raw{self.fresh('')}"
        return [
            migrations.RunSQL(
                f"CREATE TABLE {table} (id integer PRIMARY KEY)",
                f"DROP TABLE {table}",
            )
        ]

    # -- the history ---------------------------------------------------------------------------

    def dependencies(self, app: str, name: str, ops: list) -> list:
        from django.conf import settings
        from django.db import migrations

        deps = set(self.pending_deps)
        self.pending_deps.clear()
        previous = self.last_migration(app)
        if previous:
            deps.add(previous)
        # Two migrations that write the same table must be ordered by a dependency: Django
        # unapplies in the graph's backwards order but computes each migration's state in plan
        # order, and where those disagree a table is rebuilt from a state that does not match it.
        self.record_pointers(app, ops)
        for label in self.written_tables(app, ops):
            last = self.last_write.get(label)
            if last and last[0] != app:
                deps.add(last)
            self.last_write[label] = (app, name)
        labels = set()
        for op in ops:
            fields = []
            if hasattr(op, "fields"):
                fields = [f for _, f in op.fields]
            if hasattr(op, "field"):
                fields = [op.field]
            for f in fields:
                remote = getattr(f, "remote_field", None)
                if remote is not None:
                    labels.add(str(remote.model))
                    if getattr(remote, "through", None):
                        labels.add(str(remote.through))
            for base in getattr(op, "bases", ()) or ():
                if isinstance(base, str):
                    labels.add(base)
        swappable = False
        for label in labels:
            if label == settings.AUTH_USER_MODEL:
                swappable = True
                continue
            other_app = label.split(".")[0]
            if other_app != app:
                last = self.last_migration(other_app)
                if last:
                    deps.add(last)
        deps = sorted(deps)
        if swappable:
            deps.insert(0, migrations.swappable_dependency(settings.AUTH_USER_MODEL))
        return deps

    def add_migration(self, app: str, ops: list) -> None:
        number = len(self.history[app]) + 1
        name = f"{number:04d}_{'initial' if number == 1 else 'auto'}"
        self.history[app].append(
            {
                "name": name,
                "ops": ops,
                "deps": self.dependencies(app, name, ops),
                "initial": number == 1,
            }
        )

    def build(self) -> None:
        from django.db import migrations

        self.history["accounts"].append(
            {
                "name": "0001_initial",
                "ops": _user_operations(),
                "deps": [("auth", "0012_alter_user_first_name_max_length")],
                "initial": True,
            }
        )
        # Every app starts with a model, so that every app has something to migrate.
        for app in self.apps:
            self.add_migration(app, self.op_create_model(app))
            self.created += 1
        steps = [
            (self.op_add_field, 20),
            (self.op_alter_field, 14),
            (self.op_rename_field, 5),
            (self.op_alter_pk, 12 if self.stress else 2),
            (self.op_remove_field, 5),
            (self.op_index, 6),
            (self.op_constraint, 5),
            (self.op_options, 5),
            (self.op_rename_model, 6 if self.stress else 1),
            (self.op_delete_model, 1),
            (self.op_run_python, 4),
            (self.op_run_sql, 2),
        ]
        functions = [f for f, _ in steps]
        weights = [w for _, w in steps]
        total = sum(len(h) for h in self.history.values())
        while total < self.n_migrations:
            app = self.rng.choice(self.apps)
            remaining_models = self.n_models - self.created
            remaining_migrations = self.n_migrations - total
            if remaining_models > 0 and self.rng.random() < remaining_models / remaining_migrations:
                ops = self.op_create_model(app)
                self.created += 1
            else:
                ops = []
                for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
                    ops += self.rng.choices(functions, weights)[0](app)
            if not ops:
                self.pending_deps.clear()
                continue
            self.add_migration(app, ops)
            total += 1
        _ = migrations

    # -- files ---------------------------------------------------------------------------------

    def write(self, out: Path, squash: bool = True) -> None:
        from django.db import migrations
        from django.db.migrations.writer import MigrationWriter

        out.mkdir(parents=True, exist_ok=True)
        (out / "manage.py").write_text(MANAGE_PY)
        project = out / "genproject"
        project.mkdir(exist_ok=True)
        (project / "__init__.py").write_text("")
        (project / "settings.py").write_text(
            SETTINGS_PY.format(apps="".join(f'    "{a}",\n' for a in ["accounts", *self.apps]))
        )
        genlib = out / "genlib"
        genlib.mkdir(exist_ok=True)
        for name in ("__init__.py", "fields.py", "data.py"):
            (genlib / name).write_text((GENLIB / name).read_text())
        for app, history in self.history.items():
            app_dir = out / app
            (app_dir / "migrations").mkdir(parents=True, exist_ok=True)
            (app_dir / "__init__.py").write_text("")
            (app_dir / "migrations" / "__init__.py").write_text("")
            (app_dir / "models.py").write_text(self.models_py(app))
            for entry in history:
                migration = migrations.Migration(entry["name"], app)
                migration.operations = entry["ops"]
                migration.dependencies = entry["deps"]
                migration.initial = entry["initial"]
                writer = MigrationWriter(migration, include_header=False)
                (app_dir / "migrations" / f"{entry['name']}.py").write_text(writer.as_string())
        if squash:
            # Squash the start of one app whose first migrations depend on no other generated
            # app (squashing across apps can make dependency cycles, as squashmigrations can).
            for app in self.apps:
                history = self.history[app]
                own = {(app, entry["name"]) for entry in history[:4]}
                external = {d for entry in history[:4] for d in entry["deps"] if d not in own}
                if len(history) >= 8 and all(d[0] in ("__setting__", "accounts") for d in external):
                    self.write_squashed(out / app, app, history[:4])
                    break

    def write_squashed(self, app_dir: Path, app: str, replaced: list) -> None:
        from django.db import migrations
        from django.db.migrations.writer import MigrationWriter

        names = {(app, entry["name"]) for entry in replaced}
        deps = sorted(
            {
                d
                for entry in replaced
                for d in entry["deps"]
                if d not in names and d[0] != "__setting__"
            }
        )
        if any(d[0] == "__setting__" for entry in replaced for d in entry["deps"]):
            from django.conf import settings

            deps.insert(0, migrations.swappable_dependency(settings.AUTH_USER_MODEL))
        migration = migrations.Migration(f"0001_squashed_{replaced[-1]['name']}", app)
        migration.operations = [op for entry in replaced for op in entry["ops"]]
        migration.dependencies = deps
        migration.replaces = sorted(names)
        migration.initial = True
        writer = MigrationWriter(migration, include_header=False)
        (app_dir / "migrations" / f"{migration.name}.py").write_text(writer.as_string())

    def models_py(self, app: str) -> str:
        from django.db.migrations.writer import MigrationWriter

        if app == "accounts":
            return USER_MODELS_PY
        lines = ["from django.conf import settings", "from django.db import models", ""]
        imports: set[str] = set()
        ordered = self.ordered_models(app)
        for model in ordered:
            if model.proxy_of:
                base = self._class_ref(model.proxy_of, app, imports)
                lines += [f"class {model.name}({base}):", "    class Meta:", "        proxy = True"]
                if model.verbose_name:
                    lines.append(f"        verbose_name = {model.verbose_name!r}")
                lines.append("")
                continue
            base = self._class_ref(model.parent, app, imports) if model.parent else "models.Model"
            lines.append(f"class {model.name}({base}):")
            for name, spec in model.fields.items():
                if spec.kind in ("ptr", "id"):
                    continue
                if spec.kind == "id32":
                    lines.append(
                        "    id = models.AutoField(auto_created=True, primary_key=True, "
                        "serialize=False, verbose_name='ID')"
                    )
                    continue
                text, field_imports = MigrationWriter.serialize(
                    self.django_field(name, spec, model)
                )
                imports |= field_imports
                lines.append(f"    {name} = {text}")
            meta = []
            if model.verbose_name:
                meta.append(f"verbose_name = {model.verbose_name!r}")
            if model.ordering:
                meta.append(f"ordering = {model.ordering!r}")
            if model.unique_together:
                meta.append(f"unique_together = {[tuple(p) for p in model.unique_together]!r}")
            if model.indexes:
                meta.append(
                    "indexes = ["
                    + ", ".join(f"models.Index(fields={c!r}, name={n!r})" for n, c in model.indexes)
                    + "]"
                )
            if model.constraints:
                parts = []
                for name, kind, columns in model.constraints:
                    if kind == "check":
                        parts.append(_check_source(columns[0], name))
                    else:
                        parts.append(f"models.UniqueConstraint(fields={columns!r}, name={name!r})")
                meta.append("constraints = [" + ", ".join(parts) + "]")
            if meta:
                lines.append("    class Meta:")
                lines += [f"        {m}" for m in meta]
            if len(lines) and lines[-1].endswith(":"):
                lines.append("    pass")
            lines.append("")
        header = sorted(i for i in imports if i not in ("from django.db import models",))
        return "\n".join(header + lines) + "\n"

    def _class_ref(self, label: str, app: str, imports: set[str]) -> str:
        other_app, name = label.split(".")
        if other_app != app:
            imports.add(f"from {other_app}.models import {name}")
        return name

    def ordered_models(self, app: str) -> list[ModelSpec]:
        # Bases first (parents and proxied models of the same app).
        pending = [m for m in self.models.values() if m.app == app]
        done: list[ModelSpec] = []
        labels: set[str] = set()
        while pending:
            progressed = False
            for model in list(pending):
                base = model.parent or model.proxy_of
                if base is None or base.split(".")[0] != app or base in labels:
                    done.append(model)
                    labels.add(model.label)
                    pending.remove(model)
                    progressed = True
            if not progressed:
                raise RuntimeError(f"cycle in bases of {app}")
        return done


def _check_constraint(q, name):
    import django
    from django.db import models

    if django.VERSION >= (5, 1):
        return models.CheckConstraint(condition=q, name=name)
    return models.CheckConstraint(check=q, name=name)


def _check_source(column: str, name: str) -> str:
    import django

    keyword = "condition" if django.VERSION >= (5, 1) else "check"
    return f"models.CheckConstraint({keyword}=models.Q(('{column}__gte', 0)), name={name!r})"


def _user_operations() -> list:
    import django.contrib.auth.models
    import django.contrib.auth.validators
    import django.utils.timezone
    from django.db import migrations, models

    return [
        migrations.CreateModel(
            name="User",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("password", models.CharField(max_length=128, verbose_name="password")),
                (
                    "last_login",
                    models.DateTimeField(blank=True, null=True, verbose_name="last login"),
                ),
                (
                    "is_superuser",
                    models.BooleanField(
                        default=False,
                        help_text="Designates that this user has all permissions without "
                        "explicitly assigning them.",
                        verbose_name="superuser status",
                    ),
                ),
                (
                    "username",
                    models.CharField(
                        error_messages={"unique": "A user with that username already exists."},
                        help_text="Required. 150 characters or fewer. Letters, digits and "
                        "@/./+/-/_ only.",
                        max_length=150,
                        unique=True,
                        validators=[django.contrib.auth.validators.UnicodeUsernameValidator()],
                        verbose_name="username",
                    ),
                ),
                (
                    "first_name",
                    models.CharField(blank=True, max_length=150, verbose_name="first name"),
                ),
                (
                    "last_name",
                    models.CharField(blank=True, max_length=150, verbose_name="last name"),
                ),
                (
                    "email",
                    models.EmailField(blank=True, max_length=254, verbose_name="email address"),
                ),
                (
                    "is_staff",
                    models.BooleanField(
                        default=False,
                        help_text="Designates whether the user can log into this admin site.",
                        verbose_name="staff status",
                    ),
                ),
                (
                    "is_active",
                    models.BooleanField(
                        default=True,
                        help_text="Designates whether this user should be treated as active. "
                        "Unselect this instead of deleting accounts.",
                        verbose_name="active",
                    ),
                ),
                (
                    "date_joined",
                    models.DateTimeField(
                        default=django.utils.timezone.now, verbose_name="date joined"
                    ),
                ),
                (
                    "groups",
                    models.ManyToManyField(
                        blank=True,
                        help_text="The groups this user belongs to. A user will get all "
                        "permissions granted to each of their groups.",
                        related_name="user_set",
                        related_query_name="user",
                        to="auth.group",
                        verbose_name="groups",
                    ),
                ),
                (
                    "user_permissions",
                    models.ManyToManyField(
                        blank=True,
                        help_text="Specific permissions for this user.",
                        related_name="user_set",
                        related_query_name="user",
                        to="auth.permission",
                        verbose_name="user permissions",
                    ),
                ),
            ],
            options={"verbose_name": "user", "verbose_name_plural": "users", "abstract": False},
            managers=[("objects", django.contrib.auth.models.UserManager())],
        )
    ]


MANAGE_PY = """#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "genproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
"""

SETTINGS_PY = textwrap.dedent("""\
    import os
    from pathlib import Path

    BASE_DIR = Path(__file__).resolve().parent.parent
    SECRET_KEY = "generated"
    DEBUG = False
    USE_TZ = True
    INSTALLED_APPS = [
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "statecache",
    {apps}]
    AUTH_USER_MODEL = "accounts.User"
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
    DATABASES = {{
        "default": {{
            "ENGINE": os.environ.get("GEN_DB_ENGINE", "django.db.backends.sqlite3"),
            "NAME": os.environ.get("GEN_DB", str(BASE_DIR / "db.sqlite3")),
            "HOST": os.environ.get("GEN_DB_HOST", ""),
            "PORT": os.environ.get("GEN_DB_PORT", ""),
            "USER": os.environ.get("GEN_DB_USER", ""),
            "PASSWORD": os.environ.get("GEN_DB_PASSWORD", ""),
        }}
    }}
    STATECACHE_ENABLED = True
    STATECACHE_DIR = os.environ.get("STATECACHE_DIR", str(BASE_DIR / ".statecache"))
""")

USER_MODELS_PY = """from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    pass
"""


def generate(
    out: Path,
    apps: int,
    models: int,
    migrations: int,
    seed: int,
    squash: bool = True,
    stress: bool = False,
):
    _configure()
    # genlib is imported as a top-level package, as the generated project imports it.
    if str(GENLIB.parent) not in sys.path:
        sys.path.insert(0, str(GENLIB.parent))
    gen = Generator(apps, models, migrations, seed, stress=stress)
    gen.build()
    gen.write(Path(out), squash=squash)
    return gen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES))
    parser.add_argument("--apps", type=int)
    parser.add_argument("--models", type=int)
    parser.add_argument("--migrations", type=int)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-squash", action="store_true")
    parser.add_argument("--stress", action="store_true", help="more cross-model operations")
    args = parser.parse_args(argv)
    size = dict(SIZES[args.size or "small"])
    for name in ("apps", "models", "migrations"):
        if getattr(args, name):
            size[name] = getattr(args, name)
    gen = generate(args.out, seed=args.seed, squash=not args.no_squash, stress=args.stress, **size)
    total = sum(len(h) for h in gen.history.values())
    print(
        f"generated {len(gen.apps) + 1} apps, {len(gen.models) + 1} models, "
        f"{total} migrations in {args.out}"
    )


if __name__ == "__main__":
    main()
