"""The house rules, enforced: each package of scoring/ imports only packages below it, nothing in
scoring/ imports Airflow, and DAGs and the CLI use only public names of the library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCORING = REPO / "scoring"
# Bottom to top; the top level (pipeline, cli, bench, …) may import everything.
LAYERS = (
    "common",
    "history",
    "intake",
    "quality",
    "evaluation",
    "publication",
    "reporting",
    "audit",
    "sampling",
    "calibration",
    "world",
)
TOP = len(LAYERS)


def rank(module: str) -> int:
    """Layer of a dotted module inside scoring (TOP for top-level modules such as scoring.pipeline)."""
    parts = module.split(".")
    if module == "scoring":  # the root package holds only __version__
        return -1
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else TOP


def imported_modules(source: str, module: str) -> list[tuple[int, str, list[str]]]:
    """(line, imported module, names) for every import in the source, relative ones resolved."""
    out = []
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [a.name for a in node.names]
            if base == "scoring":  # `from scoring import evaluation` names a package or module
                out += [
                    (node.lineno, "scoring" if n.startswith("__") else f"scoring.{n}", [])
                    for n in names
                ]
            else:
                out.append((node.lineno, base, names))
    return out


def upward_imports(source: str, module: str) -> list[str]:
    """Imports that point above the module's own layer, or at Airflow."""
    bad = []
    own = rank(module)
    for line, target, _ in imported_modules(source, module):
        if target.split(".")[0] == "airflow":
            bad.append(f"{module}:{line} imports {target} (scoring must stay orchestration-free)")
        elif target.startswith("scoring.") and rank(target) > own:
            bad.append(f"{module}:{line} imports {target} (layer {rank(target)} above {own})")
    return bad


def library_modules():
    for path in sorted(SCORING.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        yield ".".join(rel.parts).removesuffix(".__init__"), path


def test_every_package_is_a_known_layer_with_a_docstring():
    packages = sorted(
        p.name for p in SCORING.iterdir() if (p / "__init__.py").exists() and p.name != "migrations"
    )
    assert set(packages) == set(LAYERS)
    for name in packages:
        doc = ast.get_docstring(
            ast.parse((SCORING / name / "__init__.py").read_text(encoding="utf-8"))
        )
        assert doc and len(doc) > 40, (
            f"scoring/{name}/__init__.py needs a docstring saying what it owns"
        )


def test_packages_import_only_downward_and_never_airflow():
    problems = []
    for module, path in library_modules():
        problems += upward_imports(path.read_text(encoding="utf-8"), module)
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    "source, module, expected",
    [
        ("from scoring.publication.publish import publish_run\n", "scoring.evaluation.evaluate", 1),
        ("from ..world import province\n", "scoring.quality.gates", 1),
        ("from scoring import sampling\n", "scoring.history.store", 1),
        ("import airflow.sdk\n", "scoring.common.codes", 1),
        (
            "from scoring.common.codes import make_uscc\nfrom .validate import GateResult\n",
            "scoring.quality.gates",
            0,
        ),
        ("from scoring.world.province import build_world\n", "scoring.pipeline", 0),
    ],
)
def test_the_direction_check_catches_an_upward_import(source, module, expected):
    """Self-check: the rule above would fail if someone added an upward import."""
    assert len(upward_imports(source, module)) == expected


def test_dags_and_cli_use_only_public_names():
    callers = sorted((REPO / "dags").glob("*.py")) + [SCORING / "cli.py"]
    private = []
    for path in callers:
        for line, target, names in imported_modules(
            path.read_text(encoding="utf-8"), "scoring.cli"
        ):
            if target.startswith("scoring"):
                private += [f"{path.name}:{line} {target}.{n}" for n in names if n.startswith("_")]
    assert private == []
