"""CloudFormation templates as data: YAML with short-form intrinsics, and the intrinsics resolved locally.

Only what a local run needs is resolved: parameters (defaults or overrides), pseudo parameters, mappings,
conditions, `Fn::Sub`/`Join`/`Select`/`Split`/`If`/`FindInMap`/`Base64`, `Fn::Length`/`Fn::ToJsonString`
(AWS::LanguageExtensions), `Ref` and `Fn::GetAtt` to resources (a resource created locally resolves to its
physical name, URL or ARN; any other to a stable placeholder: its logical id, or a fake ARN naming it) and the
`AWS::Include` transform for local files. `Fn::ImportValue`, `Fn::GetAZs` and `Fn::Cidr` have no local value:
they become their JSON text, and each use is recorded in `unresolved` so the emulator can say so.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
PSEUDO_PARAMETERS = {
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "local",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/local/00000000-0000-0000-0000-000000000000",
    "AWS::NotificationARNs": [],
}


class TemplateError(Exception):
    """The template cannot be served as written; the message says where and why."""


@dataclass(frozen=True)
class PhysicalResource:
    """What `Ref` and `Fn::GetAtt` of a resource created locally resolve to (a bucket's name, a queue's URL...)."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


class _NoValue:
    """`Ref: AWS::NoValue`: the enclosing property is removed."""


NO_VALUE = _NoValue()


class TemplateLoader(yaml.SafeLoader):
    """YAML loader that reads `!Ref x` as `{"Ref": "x"}`, `!GetAtt a.b` as `{"Fn::GetAtt": ["a", "b"]}`..."""


def _construct_intrinsic(loader: TemplateLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix in {"Ref", "Condition"}:
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{tag_suffix}": value}


def _construct_timestamp_as_text(loader: TemplateLoader, node: yaml.Node) -> str:
    # `AWSTemplateFormatVersion: 2010-09-09` stays a string, as CloudFormation reads it
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


TemplateLoader.add_multi_constructor("!", _construct_intrinsic)
TemplateLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp_as_text)


def load_document(path: Path) -> Any:
    """A YAML or JSON document with CloudFormation short-form tags."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise TemplateError(f"cannot read {path}: {error.strerror}") from error
    try:
        return yaml.load(text, Loader=TemplateLoader)  # a SafeLoader subclass
    except yaml.YAMLError as error:
        raise TemplateError(f"{path} is not valid YAML: {error}") from error


_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Resolves intrinsic functions of one template for a local run."""

    def __init__(
        self,
        template: Mapping[str, Any],
        base_dir: Path,
        parameter_overrides: Mapping[str, str] | None = None,
        attribute: Callable[[str, str], str] | None = None,
        physical: Mapping[str, PhysicalResource] | None = None,
    ) -> None:
        self.template = template
        self.physical: Mapping[str, PhysicalResource] = physical or {}
        self.base_dir = base_dir
        self.resources: Mapping[str, Any] = template.get("Resources") or {}
        self.mappings: Mapping[str, Any] = template.get("Mappings") or {}
        self.warnings: list[str] = []
        # Intrinsics without a local value, as "Fn::ImportValue SharedVpc": what the start-up listing reports.
        self.unresolved: set[str] = set()
        self.included: list[Path] = []  # files read through AWS::Include
        self.parameters = self._parameter_values(template.get("Parameters") or {}, parameter_overrides or {})
        self._attribute = attribute or self.placeholder_attribute
        self._conditions: dict[str, bool] = {}
        self._condition_definitions: Mapping[str, Any] = template.get("Conditions") or {}

    def _parameter_values(self, declared: Mapping[str, Any], overrides: Mapping[str, str]) -> dict[str, Any]:
        unknown = set(overrides) - set(declared)
        if unknown:  # SAM CLI ignores them too
            self.warnings.append(
                f"parameter overrides for undeclared parameters are ignored: {', '.join(sorted(unknown))}"
            )
        values: dict[str, Any] = {}
        for name, declaration in declared.items():
            spec = declaration if isinstance(declaration, Mapping) else {}
            value: Any = overrides.get(name, spec.get("Default"))
            if value is None:
                continue  # unresolvable: a Ref to it stays a placeholder
            if str(spec.get("Type", "String")).startswith("List<") or spec.get("Type") == "CommaDelimitedList":
                value = [item.strip() for item in str(value).split(",")] if isinstance(value, str) else value
            values[name] = value
        return values

    @staticmethod
    def placeholder_attribute(logical_id: str, attribute: str) -> str:
        return f"{logical_id}.{attribute}"

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            if name not in self._condition_definitions:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions[name] = bool(self.resolve(self._condition_definitions[name]))
        return self._conditions[name]

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.physical:
            return self.physical[name].ref
        if name in self.resources:
            properties = (self.resources[name] or {}).get("Properties") or {}
            function_name = properties.get("FunctionName")
            return function_name if isinstance(function_name, str) else name
        return name

    def attribute(self, logical_id: str, attribute: str) -> Any:
        physical = self.physical.get(logical_id)
        if physical is not None and attribute in physical.attributes:
            return physical.attributes[attribute]
        return self._attribute(logical_id, attribute)

    def resolve(self, value: Any) -> Any:
        """`value` with every intrinsic function it contains replaced by its local value."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), *_ = value.items()
            handler = self._functions.get(key)
            if handler is not None:
                return handler(self, argument)
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}

    # Intrinsic functions -------------------------------------------------------------------------

    def _fn_ref(self, argument: Any) -> Any:
        return self.ref(str(self.resolve(argument)))

    def _fn_get_att(self, argument: Any) -> Any:
        argument = self.resolve(argument)
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        if not isinstance(argument, list) or len(argument) != 2:
            raise TemplateError(f"Fn::GetAtt needs [resource, attribute], got {argument!r}")
        return self.attribute(str(argument[0]), str(argument[1]))

    def _fn_sub(self, argument: Any) -> Any:
        variables: Mapping[str, Any] = {}
        if isinstance(argument, list):
            if len(argument) != 2:
                raise TemplateError(f"Fn::Sub needs a string or [string, variables], got {argument!r}")
            argument, variables = argument[0], self.resolve(argument[1])
        if not isinstance(argument, str):
            raise TemplateError(f"Fn::Sub needs a string, got {argument!r}")

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and name.split(".", 1)[0] in self.resources:
                resource, attribute = name.split(".", 1)
                return str(self.attribute(resource, attribute))
            return str(self.ref(name))

        return _SUB_VARIABLE.sub(substitute, argument)

    def _fn_join(self, argument: Any) -> Any:
        delimiter, items = self.resolve(argument)
        return str(delimiter).join(str(item) for item in items)

    def _fn_select(self, argument: Any) -> Any:
        index, items = self.resolve(argument)
        return items[int(index)]

    def _fn_split(self, argument: Any) -> Any:
        delimiter, text = self.resolve(argument)
        return str(text).split(str(delimiter))

    def _fn_if(self, argument: Any) -> Any:
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(str(name)) else when_false)

    def _fn_equals(self, argument: Any) -> Any:
        left, right = self.resolve(argument)
        return str(left) == str(right)

    def _fn_not(self, argument: Any) -> Any:
        (value,) = self.resolve(argument) if isinstance(argument, list) else [self.resolve(argument)]
        return not value

    def _fn_and(self, argument: Any) -> Any:
        return all(self.resolve(argument))

    def _fn_or(self, argument: Any) -> Any:
        return any(self.resolve(argument))

    def _fn_condition(self, argument: Any) -> Any:
        return self.condition(str(argument))

    def _fn_find_in_map(self, argument: Any) -> Any:
        resolved = self.resolve(argument)
        name, first, second = resolved[:3]
        try:
            return self.mappings[name][first][second]
        except (KeyError, TypeError) as error:
            # AWS::LanguageExtensions adds a fourth argument: {DefaultValue: ...}
            if len(resolved) > 3 and isinstance(resolved[3], Mapping) and "DefaultValue" in resolved[3]:
                return resolved[3]["DefaultValue"]
            raise TemplateError(f"Fn::FindInMap: no {name}/{first}/{second} in Mappings") from error

    def _fn_length(self, argument: Any) -> Any:
        items = self.resolve(argument)
        if not isinstance(items, list):
            raise TemplateError(f"Fn::Length needs a list, got {items!r}")
        return len(items)

    def _fn_to_json_string(self, argument: Any) -> Any:
        return json.dumps(self.resolve(argument), separators=(",", ":"), default=str)

    def _fn_base64(self, argument: Any) -> Any:
        return base64.b64encode(str(self.resolve(argument)).encode()).decode()

    def _fn_transform(self, argument: Any) -> Any:
        argument = self.resolve(argument)
        if not isinstance(argument, Mapping) or argument.get("Name") != "AWS::Include":
            return {"Fn::Transform": argument}
        location = str((argument.get("Parameters") or {}).get("Location", ""))
        if location.startswith("s3://") or not location:
            raise TemplateError(f"AWS::Include from {location or '(no Location)'}: only local files can be served")
        self.included.append((self.base_dir / location).resolve())
        return self.resolve(load_document(self.base_dir / location))

    def _unresolved(self, function: str, argument: Any) -> Any:
        shown = argument if isinstance(argument, str) else json.dumps(argument, default=str)
        self.unresolved.add(f"{function} {shown}")
        return json.dumps({function: argument}, default=str)

    def _fn_import_value(self, argument: Any) -> Any:
        return self._unresolved("Fn::ImportValue", self.resolve(argument))

    def _fn_get_azs(self, argument: Any) -> Any:
        return self._unresolved("Fn::GetAZs", self.resolve(argument))

    def _fn_cidr(self, argument: Any) -> Any:
        return self._unresolved("Fn::Cidr", self.resolve(argument))

    _functions: Mapping[str, Callable[[Resolver, Any], Any]] = {
        "Ref": _fn_ref,
        "Fn::GetAtt": _fn_get_att,
        "Fn::Sub": _fn_sub,
        "Fn::Join": _fn_join,
        "Fn::Select": _fn_select,
        "Fn::Split": _fn_split,
        "Fn::If": _fn_if,
        "Fn::Equals": _fn_equals,
        "Fn::Not": _fn_not,
        "Fn::And": _fn_and,
        "Fn::Or": _fn_or,
        "Condition": _fn_condition,
        "Fn::FindInMap": _fn_find_in_map,
        "Fn::Base64": _fn_base64,
        "Fn::Transform": _fn_transform,
        "Fn::Length": _fn_length,
        "Fn::ToJsonString": _fn_to_json_string,
        "Fn::ImportValue": _fn_import_value,
        "Fn::GetAZs": _fn_get_azs,
        "Fn::Cidr": _fn_cidr,
    }
