"""The test matrix.

    nox                       lint, every (Django, Python) pair, the servers, Django's suites
    nox -s tests              the matrix only
    nox -s "tests(django-6.1-py3.13)"
    nox -s servers            the differential tests on PostgreSQL and MariaDB (needs
                              STATECACHE_TEST_POSTGRES and STATECACHE_TEST_MARIADB)
    nox -s django_suite       Django's own migration suites, without and with statecache
    nox -s realworld          the differential runs on the real-world corpus (tests/realworld/:
                              popular third-party packages, pinned), Django 5.2 and 6.1; not
                              in the default sessions (.ci/run runs it on its own)

Every (Django, Python) pair runs the test suite; the `slow` differential runs of generated
projects run on the oldest and the newest Django, each on its main Python (they exercise Django
and statecache, not the interpreter, and this keeps CI under 30 minutes). Pythons are found on
PATH, and in pyenv's versions when pyenv is there.
"""

from __future__ import annotations

import glob
import os

import nox

nox.options.sessions = ["lint", "tests", "servers", "django_suite"]
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = True

DJANGO = {
    "4.2": "Django>=4.2,<5.0",
    "5.2": "Django>=5.2,<5.3",
    "6.0": "Django>=6.0,<6.1",
    "6.1": "Django>=6.1,<6.2",
}
# (Django, Python) pairs; the first Python of each Django is its main one.
MATRIX = [
    ("4.2", "3.11"),
    ("4.2", "3.10"),
    ("5.2", "3.12"),
    ("5.2", "3.11"),
    ("6.0", "3.12"),
    ("6.1", "3.13"),
    ("6.1", "3.12"),
]
MAIN = {django: python for django, python in reversed(MATRIX)}
# The slow differential runs of generated projects and the generator's own test: on every
# Django, on its main Python, which keeps CI under 30 minutes. The other pairs run everything
# else, and every Django runs Django's own suites.
SLOW_ON = set(MAIN.items())
SERVERS = ("STATECACHE_TEST_POSTGRES", "STATECACHE_TEST_MARIADB")
# The real-world corpus: each Django its own pins (tests/realworld/requirements-*.txt).
REALWORLD = [("5.2", "3.12"), ("6.1", "3.13")]


def _pyenv_pythons_on_path() -> None:
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin")))
    if found:
        os.environ["PATH"] = os.pathsep.join([*found, os.environ.get("PATH", "")])


_pyenv_pythons_on_path()


def install(session: nox.Session, django: str, extras: str = "test") -> None:
    session.install("-e", f".[{extras}]" if extras else ".", DJANGO[django])


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
@nox.parametrize("django,python", MATRIX, ids=[f"django-{d}-py{p}" for d, p in MATRIX])
def tests(session: nox.Session, django: str) -> None:
    install(session, django)
    args = session.posargs or ["-n", "2"]
    # The corpus's runs need its packages: the realworld session.
    marks = "not realworld" if (django, session.python) in SLOW_ON else "not slow and not realworld"
    args = [*args, "-m", marks]
    # The servers have their own session; here their tests show as skipped, with the reason.
    env = dict.fromkeys(SERVERS, "")
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *args, env=env)


@nox.session(python=MAIN["6.1"])
def servers(session: nox.Session) -> None:
    """The differential tests on PostgreSQL and MariaDB, newest Django."""
    missing = [name for name in SERVERS if not os.environ.get(name)]
    if missing:
        session.skip(f"set {' and '.join(missing)} (see docs/testing.md) to test on the servers")
    install(session, "6.1", "test,servers")
    args = session.posargs or ["-n", "2"]
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "tests/test_differential.py",
        "-k",
        "postgresql or mariadb",
        *args,
    )


@nox.session
@nox.parametrize("django,python", REALWORLD, ids=[f"django-{d}-py{p}" for d, p in REALWORLD])
def realworld(session: nox.Session, django: str) -> None:
    """The differential runs on the real-world corpus, its pinned packages installed. One
    pytest process: the fully migrated database is built once per process (a worker each
    with -n 2 would build it twice); each run's two variants go side by side."""
    session.install("-e", ".[test]", "-r", f"tests/realworld/requirements-{django}.txt")
    session.run(
        "python",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-m",
        "realworld",
        "tests/test_realworld.py",
        *session.posargs,
    )


@nox.session
@nox.parametrize("django,python", [(d, MAIN[d]) for d in DJANGO], ids=list(DJANGO))
def django_suite(session: nox.Session, django: str) -> None:
    install(session, django)
    session.run("python", "tests/django_suite/run.py", *session.posargs)


@nox.session(python=MAIN["6.1"])
def benchmark(session: nox.Session) -> None:
    """The benchmark end to end on a small generated project (one run of each scenario)."""
    install(session, "6.1", "")
    work = os.path.abspath(session.create_tmp())  # the runner works from the project directory
    session.run(
        "python",
        "-m",
        "benchmarks.run",
        "--project",
        "small",
        "--seed",
        "2",
        "--runs",
        "1",
        "--variants",
        "vanilla,cold,warm",
        "--timeout",
        "600",
        "--work",
        work,
        "--json",
        os.path.join(work, "small.json"),
        *session.posargs,
    )
