"""environment.yml (conda-forge) lists exactly the dependencies of pyproject.toml."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        wanted.update({_name(r): r for r in extra})
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    listed = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for r in dep.get("pip", []):
                if not r.startswith("-e"):
                    listed[_name(r)] = r
        elif not dep.startswith(("python", "pip")) or dep.startswith("python-"):
            listed[_name(dep)] = dep
    assert set(listed) == set(wanted), (
        f"only in pyproject: {sorted(set(wanted) - set(listed))}; only in environment.yml: "
        f"{sorted(set(listed) - set(wanted))}"
    )
    for name, req in wanted.items():
        spec = req[len(name):].strip()
        assert listed[name].replace(" ", "").endswith(spec.replace(" ", "")), f"{name}: {req} vs {listed[name]}"


def test_readme_opens_with_the_two_commands():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```\w*\n(.*?)```", text, re.S).group(1).split()
    assert block == ["make", "run", "make", "test"]


def test_cli_demo_runs_and_fails_cleanly(tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "survey.cli", "demo", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "estimates.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
