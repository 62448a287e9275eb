"""Print template.yaml as CloudFormation would deploy it: AWS::Include first, then the SAM transform.

Usage: `python sam_transform.py TEMPLATE [Name=value...]` (parameter values; the defaults otherwise).

CloudFormation processes the macros nested in the template (the AWS::Include of swagger.yaml) before the
template-level AWS::Serverless transform; `sam validate` cannot (it does not read the included file). This
does both, offline, with the SAM translator of SAM CLI's own environment:

    .venv-sam/bin/python tests/deploy/sam_transform.py template.yaml > transformed.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# SAM CLI's environment (.venv-sam) has these; the development environment does not.
from samcli.yamlhelper import yaml_parse  # type: ignore[import-not-found]
from samtranslator.parser.parser import Parser  # type: ignore[import-not-found]
from samtranslator.translator.translator import Translator  # type: ignore[import-not-found]

PSEUDO_PARAMETERS = {
    "AWS::Region": "us-east-1",
    "AWS::Partition": "aws",
    "AWS::AccountId": "123456789012",
    "AWS::StackName": "lambda-vision",
    "AWS::URLSuffix": "amazonaws.com",
}


def include(node: Any, base: Path) -> Any:
    if isinstance(node, list):
        return [include(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    transform = node.get("Fn::Transform")
    if isinstance(transform, dict) and transform.get("Name") == "AWS::Include":
        return yaml_parse((base / transform["Parameters"]["Location"]).read_text())
    return {key: include(value, base) for key, value in node.items()}


def as_packaged(template: dict[str, Any]) -> dict[str, Any]:
    """Local code and layer folders replaced by S3 URIs, as `sam package` leaves them."""
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
                properties[key] = f"s3://artifacts/{name}.zip"
    return template


def main() -> None:
    path = Path(sys.argv[1])
    template = as_packaged(include(yaml_parse(path.read_text()), path.parent))
    parameters = dict(PSEUDO_PARAMETERS)
    parameters.update(arg.partition("=")[::2] for arg in sys.argv[2:])
    translated = Translator({}, Parser()).translate(template, parameter_values=parameters)
    json.dump(translated, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
