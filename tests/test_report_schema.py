"""The shipped JSON Schema (losscheck/schema/report.schema.json) pins the contract's fields; the JSON
renderer's output on hand-built reports validates, and the schema rejects what breaks the contract.
The same schema is checked against every command's real output in tests/test_cli_keras.py."""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import pytest

jsonschema = pytest.importorskip("jsonschema")

from losscheck.core.codes import CODES  # noqa: E402
from losscheck.core.figures import FIGURE_ORDER  # noqa: E402
from losscheck.core.gate import Gate  # noqa: E402
from losscheck.report.json import load_schema, render_json, report_dict  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.test_report_render import clean_report, compare_report, inspect_report  # noqa: E402


def validate(doc: dict) -> None:
    """Raise jsonschema.ValidationError unless doc follows the schema, and check what a schema cannot:
    the report names this schema (`$schema` is its `$id`) and every finding code is in the registry."""
    schema = load_schema()
    assert doc.get("$schema") == schema["$id"], f"the report names schema {doc.get('$schema')!r}"
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)
    unknown = [f["code"] for f in doc["findings"] if f["code"] not in CODES]
    assert not unknown, f"finding codes not in the registry: {unknown}"


def errors(doc: dict) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(load_schema()).iter_errors(doc)]


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_schema_ships_with_the_package():
    """package-data includes it, and load_schema reads it through importlib.resources."""
    tomllib = pytest.importorskip("tomllib")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["losscheck"]
    assert "schema/*.json" in patterns
    assert (ROOT / "losscheck" / "schema" / "report.schema.json").is_file()
    assert load_schema()["properties"]["schema_version"] == {"const": 1}
    extras = " ".join(data["project"]["optional-dependencies"]["test"])
    assert "jsonschema" in extras and "pyyaml" in extras


@pytest.mark.parametrize("factory", [compare_report, inspect_report, clean_report])
@pytest.mark.parametrize("gate", [{}, {"fail_on": "never", "max_gap": 0.01}, {"fail_on": "info"}])
def test_rendered_json_validates(factory, gate):
    report = Gate(**gate).apply(factory())
    doc = json.loads(render_json(report))
    validate(doc)
    assert doc["exit_code"] == report.exit_code()
    assert doc["gate"]["fail_on"] == report.fail_on


def test_nan_figures_are_written_as_null_and_validate():
    report = compare_report()
    report.figures["manual"].value = float("nan")
    report.findings[0] = dataclasses.replace(report.findings[0], magnitude=float("inf"))
    doc = report_dict(report)
    assert doc["figures"]["manual"]["value"] is None and doc["findings"][0]["magnitude"] is None
    validate(doc)


def test_contract_example_fields_are_required():
    """Every field of the contract's example is pinned: dropping any one fails validation."""
    doc = report_dict(compare_report())
    for key in ("schema_version", "command", "losscheck_version", "keras_version", "backend", "model", "data",
                "figures", "findings", "exit_code"):
        broken = {k: v for k, v in doc.items() if k != key}
        assert errors(broken), f"the schema accepts a compare report without {key!r}"
    for key in ("path", "format", "saved_by", "outputs", "losses", "loss_weights"):
        broken = copy.deepcopy(doc)
        del broken["model"][key]
        assert errors(broken), key
    for key in ("path", "samples", "batch_size"):
        broken = copy.deepcopy(doc)
        del broken["data"][key]
        assert errors(broken), key
    for key in ("code", "severity", "message", "magnitude", "subject", "between", "advice"):
        broken = copy.deepcopy(doc)
        del broken["findings"][0][key]
        assert errors(broken), key


@pytest.mark.parametrize("path, value", [
    (("schema_version",), 2),
    (("command",), "explain"),
    (("exit_code",), 2),
    (("model", "format"), "pt"),
    (("data", "samples"), -1),
    (("data", "batch_size"), 0),
    (("figures", "evaluate", "value"), "6.9"),
    (("figures", "evaluate"), 6.9),
    (("findings", 0, "severity"), "fatal"),
    (("findings", 0, "code"), "Not A Code"),
    (("findings", 0, "between"), ["evaluate"]),
    (("findings", 0, "magnitude"), "big"),
])
def test_schema_rejects_contract_breaks(path, value):
    doc = report_dict(compare_report())
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert errors(doc)


def test_compare_needs_figures_and_breakdown_needs_its_rows():
    doc = report_dict(compare_report())
    del doc["figures"]["evaluate"]  # a model whose own evaluate gives no loss: the figure is omitted
    assert not errors(doc)
    del doc["figures"]
    assert errors(doc)
    doc = report_dict(compare_report())
    doc["command"] = "breakdown"
    assert errors(doc)  # no total, no per_* rows
    doc["total"] = 6.88
    doc["per_class"] = [{"class": 0, "loss": 1.0, "count": 3, "share": 0.4}]
    assert not errors(doc)
    doc["per_class"][0].pop("share")
    assert errors(doc)


def test_extra_sections_are_allowed():
    """Commands add their own top-level sections (decomposition, reduction traces, ...)."""
    report = compare_report()
    report.sections["reduction_trace"] = {"out": [{"step": "mean over last axis", "value": 1.0}]}
    validate(report_dict(report))


def test_every_figure_name_and_code_fits_the_schema_patterns():
    schema = load_schema()
    name = schema["properties"]["figures"]["propertyNames"]["pattern"]
    code = schema["$defs"]["finding"]["properties"]["code"]["pattern"]
    assert all(re.match(name, f) for f in FIGURE_ORDER)
    assert all(re.match(code, c) for c in CODES)


def test_code_examples_list_the_registry():
    code = load_schema()["$defs"]["finding"]["properties"]["code"]
    assert code["examples"] == list(CODES)


def test_reports_name_the_schema_they_follow():
    """`$schema` is the schema's `$id`, first in every report, and the schema pins it."""
    schema = load_schema()
    assert schema["properties"]["$schema"]["const"] == schema["$id"]
    for factory in (compare_report, inspect_report, clean_report):
        doc = json.loads(render_json(factory()))
        assert next(iter(doc)) == "$schema" and doc["$schema"] == schema["$id"]
    doc = report_dict(compare_report())
    doc["$schema"] = "https://example.invalid/other.json"
    assert errors(doc)
    del doc["$schema"]
    assert not errors(doc)  # optional in the schema; tests' validate() requires it of losscheck's own reports


def test_validate_catches_unregistered_codes():
    doc = report_dict(compare_report())
    doc["findings"][0]["code"] = "made-up"
    with pytest.raises(AssertionError, match="made-up"):
        validate(doc)

