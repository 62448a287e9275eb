"""What CloudFormation makes of a transformed template for given parameter values: conditions evaluated,
resources of false conditions dropped, `Fn::If` branches chosen, `Ref`s to parameters replaced by their values
and parameters substituted in `Fn::Sub` strings (references to resources are left as they are)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

NO_VALUE = {"Ref": "AWS::NoValue"}
_SUB_VARIABLE = re.compile(r"\$\{([A-Za-z0-9:._]+)\}")


class Stack:
    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        self.template = template
        self.parameters = {
            name: str(parameters.get(name, spec.get("Default", "")))
            for name, spec in (template.get("Parameters") or {}).items()
        }
        self.pseudo = {
            "AWS::Region": "us-east-1",
            "AWS::Partition": "aws",
            "AWS::AccountId": "123456789012",
            "AWS::StackName": "lambda-vision",
            "AWS::URLSuffix": "amazonaws.com",
        }
        self._conditions = template.get("Conditions") or {}
        self._evaluated: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._evaluated:
            self._evaluated[name] = bool(self._value(self._conditions[name]))
        return self._evaluated[name]

    def _value(self, node: Any) -> Any:
        """A condition expression's value."""
        if isinstance(node, dict) and len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Fn::Equals":
                left, right = (self.resolve(item) for item in argument)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self._value(argument[0])
            if key == "Fn::And":
                return all(self._value(item) for item in argument)
            if key == "Fn::Or":
                return any(self._value(item) for item in argument)
            if key == "Condition":
                return self.condition(argument)
        return self.resolve(node)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [value for value in (self.resolve(item) for item in node) if value != NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            if key == "Fn::If":
                name, when_true, when_false = argument
                return self.resolve(when_true if self.condition(name) else when_false)
            if key == "Ref" and argument in self.parameters:
                return self.parameters[argument]
            if key == "Ref" and argument in self.pseudo:
                return self.pseudo[argument]
            if key == "Fn::Sub" and isinstance(argument, str):
                text = _SUB_VARIABLE.sub(self._substitute, argument)
                return text if "${" not in text else {"Fn::Sub": text}
        values = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in values.items() if value != NO_VALUE}

    def _substitute(self, match: re.Match[str]) -> str:
        name = match.group(1)
        if name in self.parameters:
            return self.parameters[name]
        return self.pseudo.get(name, match.group(0))

    def resources(self) -> dict[str, Any]:
        """The resources CloudFormation creates, with their intrinsic functions resolved as far as possible."""
        created = {}
        for logical_id, resource in (self.template.get("Resources") or {}).items():
            condition = resource.get("Condition")
            if condition is not None and not self.condition(condition):
                continue
            created[logical_id] = self.resolve(resource)
        return created

    def outputs(self) -> dict[str, Any]:
        return {
            name: self.resolve(output["Value"])
            for name, output in (self.template.get("Outputs") or {}).items()
            if output.get("Condition") is None or self.condition(output["Condition"])
        }
