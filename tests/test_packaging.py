"""Packaging metadata: the MIT LICENSE ships (SPDX string, license-files), and the Keras/TensorFlow
pins are the tested range: the installed versions satisfy them, each has an upper bound below the
next major, and requires-python admits no Python the pinned Keras cannot install on."""

from __future__ import annotations

import importlib.metadata as md
import re
import tomllib

import pytest

from tests.conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _pin(name: str) -> tuple[str, str]:
    spec = next(d for d in PROJECT["dependencies"] if re.match(rf"{name}\b", d))
    low = re.search(r">=\s*([\d.]+)", spec)
    high = re.search(r"<\s*([\d.]+)", spec)
    assert low and high, f"{name} needs a tested lower bound and an upper bound: {spec}"
    return low.group(1), high.group(1)


def test_license_is_mit_and_listed_for_the_wheel():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "WITHOUT WARRANTY OF ANY KIND" in text
    assert PROJECT["license"] == "MIT"  # SPDX expression, not the deprecated table
    assert "LICENSE" in PROJECT["license-files"]
    assert not any(c.startswith("License ::") for c in PROJECT["classifiers"])  # SPDX replaces these


@pytest.mark.parametrize("name", ["keras", "tensorflow"])
def test_pins_are_the_tested_range(name):
    low, high = _pin(name)
    installed = _version(md.version(name))
    assert _version(low) <= installed < _version(high)
    assert _version(low)[:2] == installed[:2], "the lower bound is the tested (installed) minor version"
    assert _version(high) == (installed[0] + 1,), "the upper bound is the next major version"


def test_requires_python_is_what_the_pinned_keras_needs():
    ours = _version(PROJECT["requires-python"])
    keras_needs = _version(md.metadata("keras")["Requires-Python"] or "3")
    assert ours >= keras_needs
    assert f"Programming Language :: Python :: {ours[0]}.{ours[1]}" in PROJECT["classifiers"]
