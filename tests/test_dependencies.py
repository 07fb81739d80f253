"""Installing the package keeps the PyTorch that is already there, and CI installs one exact set.

Colab ships its own CUDA build of PyTorch. If the package pinned another version, every
chapter's set-up cell (`pip install "reid @ git+..."`) would uninstall it and download
gigabytes of another. The resolver test asks pip itself, offline: a throw-away environment
holds fake installed distributions (only their metadata) of the oldest torch and torchvision
the package supports and of its other dependencies; the package's own metadata comes from
pyproject.toml; newer torch and torchvision "wheels" (metadata only) wait in a local folder,
so a pin that asks for them shows up as a replacement in pip's report instead of as an
unresolvable request.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python 3.11+
Requirement = pytest.importorskip("packaging.requirements").Requirement

# What an older runtime might hold: the oldest torch/torchvision pair pyproject.toml allows.
OLDEST = {"torch": "2.4.0", "torchvision": "0.19.0", "numpy": "1.26.4", "matplotlib": "3.8.0", "tqdm": "4.66.0",
          "pillow": "10.0.0"}
NEWEST = {"torch": "2.14.1", "torchvision": "0.29.1"}  # the versions CI tests (constraints.txt)


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def metadata(name: str, version: str, requires=()) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    return "\n".join(lines + [f"Requires-Dist: {r}" for r in requires]) + "\n"


def fake_wheel(folder: Path, name: str, version: str, requires=()) -> Path:
    """A wheel that holds nothing but its metadata: enough for pip's resolver."""
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{info}/METADATA", metadata(name, version, requires))
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: reid-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


def would_install(tmp: Path, dependencies: list[str], installed: dict[str, str]) -> dict[str, str]:
    """{name: version} that `pip install reid` would install into an environment holding `installed`."""
    env = tmp / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = next(env.glob("lib/python*/site-packages"))
    for name, version in installed.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        requires = [f"torch=={installed['torch']}"] if name == "torchvision" else []  # as torchvision's wheels pin
        (info / "METADATA").write_text(metadata(name, version, requires))
        (info / "INSTALLER").write_text("pip\n")
        (info / "RECORD").write_text("")
    wheels = tmp / "wheels"
    wheels.mkdir()
    fake_wheel(wheels, "reid", "0.1.0", dependencies)
    fake_wheel(wheels, "torch", NEWEST["torch"])
    fake_wheel(wheels, "torchvision", NEWEST["torchvision"], [f"torch=={NEWEST['torch']}"])
    report = tmp / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "--dry-run",
                    "--no-index", "--find-links", str(wheels), "--report", str(report), "--quiet", "reid"],
                   check=True, capture_output=True, text=True)
    items = json.loads(report.read_text())["install"]
    return {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in items}


def test_installing_the_package_keeps_an_older_torch(tmp_path):
    assert would_install(tmp_path, project()["dependencies"], OLDEST) == {"reid": "0.1.0"}


def test_the_resolver_test_fails_with_exact_pins(tmp_path):
    """The pins this project had (torch==2.14.1): pip would replace Colab's torch. The test above catches that."""
    pinned = [re.sub(r"^(torch|torchvision)\b.*", lambda m: f"{m[1]}=={NEWEST[m[1]]}", d) for d in project()["dependencies"]]
    assert "torch==2.14.1" in pinned
    assert would_install(tmp_path, pinned, OLDEST) == {"reid": "0.1.0", "torch": "2.14.1", "torchvision": "0.29.1"}


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin (name==version)"
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_pyproject_states_ranges_and_constraints_pin_versions_inside_them():
    pins = constraints()
    extras = project()["optional-dependencies"]
    assert "reid[export,search,fast]" in extras["book"]  # CI tests the optional extras (chapter 9 uses them)
    for text in project()["dependencies"] + [t for group in extras.values() for t in group]:
        req = Requirement(text)
        if req.name == "reid":
            continue
        assert not any(s.operator == "==" and "*" not in s.version for s in req.specifier), \
            f"pyproject.toml pins {text}: state a range (exact versions go in constraints.txt)"
        name = req.name.lower().replace("_", "-")
        assert name in pins, f"constraints.txt has no pin for {req.name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt's {name}=={pins[name]} is outside {text}"
    assert pins["torch"] == NEWEST["torch"] and pins["torchvision"] == NEWEST["torchvision"]
    for name, version in OLDEST.items():  # the resolver test's "older runtime" is one pyproject.toml allows
        req = next(Requirement(t) for t in project()["dependencies"] if Requirement(t).name.lower() == name)
        assert req.specifier.contains(version), f"{name} {version} is outside pyproject.toml's {req}"


def test_make_ci_and_conda_install_with_the_constraints():
    make = (ROOT / "Makefile").read_text()
    assert '-c constraints.txt -e ".[book]"' in make and ".installed: pyproject.toml constraints.txt" in make
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in (ROOT / "environment.yml").read_text().splitlines()]
    assert "- -c constraints.txt" in lines and "- -e .[book]" in lines
