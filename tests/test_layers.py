"""Import layers: imports run one way (ways in above the apps, the apps above core), and fal's
protocol and the simulator stand without Django and without the studio.

The contracts live in `.importlinter` (run by `make test` as `lint-imports`, and here, so a plain
pytest run holds them too); the second test imports every module of the two packages in a fresh
interpreter without settings, which is what `python -m falsim`, bench and chaos rely on. Both run
in a child process: import-linter configures logging when it runs, which would disable the
loggers of the tests that come after.
"""
import json
import os
import subprocess
import sys

import pytest

from tests.processes import ROOT

CLEAN_PACKAGES = ("fal_protocol", "falsim")
STUDIO_APPS = ("accounts", "api", "core", "gateway", "generations", "moderation", "storage", "studio", "web",
               "webhooks")


def test_the_import_contracts_are_kept():
    command = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    done = subprocess.run([sys.executable, "-c", command, "--no-cache", "--config", str(ROOT / ".importlinter")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)

    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "Ways in above the apps, the apps above the shared core KEPT" in report
    assert "fal_protocol and falsim import nothing from Django or the studio's code KEPT" in report
    assert "fal_protocol does not import falsim KEPT" in report


def test_fal_protocol_and_falsim_import_without_django_or_settings():
    script = f"""
import importlib, json, pkgutil, sys
names = []
for package in {CLEAN_PACKAGES!r}:
    module = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(module.__path__, package + "."):
        if not info.name.endswith(".__main__"):  # running it would start a simulator
            importlib.import_module(info.name)
            names.append(info.name)
print(json.dumps({{"imported": names, "loaded": sorted(sys.modules)}}))
"""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    forbidden = [name for name in result["loaded"]
                 if name.split(".")[0] in ("django", "rest_framework", "django_q") + STUDIO_APPS]
    assert forbidden == []
    expected = {"fal_protocol.client", "fal_protocol.signature", "falsim.simulator", "falsim.cli"}
    assert expected <= set(result["imported"])


@pytest.mark.parametrize("program", ["chaos", "bench"])
def test_the_make_targets_programs_start_before_django_is_set_up(program):
    """`make chaos` and `make bench` import their modules first and call django.setup() after
    parsing arguments: a module-level model import in them (AppRegistryNotReady) breaks the target."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-m", program, "--help"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: make {program}")
