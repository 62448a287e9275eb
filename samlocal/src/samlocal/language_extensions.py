"""The `AWS::LanguageExtensions` transform's `Fn::ForEach`: loops expanded before the template is read.

    Resources:
      Fn::ForEach::Handlers:
        - Name                      # the identifier
        - [Hello, Goodbye]          # the collection (a list, or a Ref to a CommaDelimitedList parameter)
        - ${Name}Function:          # the output keys: ${Name} is the value, &{Name} its alphanumeric characters
            Type: AWS::Serverless::Function
            Properties: {Handler: !Sub "${Name}.handler", Environment: {Variables: {NAME: !Ref Name}}}

A loop may sit wherever a mapping's keys are (Resources, Conditions, Outputs, properties) and may contain loops.
`Fn::Length` and `Fn::ToJsonString`, the transform's other functions, are resolved with the other intrinsics.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from samlocal.intrinsics import TemplateError

TRANSFORM = "AWS::LanguageExtensions"
FOR_EACH = "Fn::ForEach::"
_NOT_ALPHANUMERIC = re.compile(r"[^A-Za-z0-9]")


def uses_language_extensions(document: Mapping[str, Any]) -> bool:
    transform = document.get("Transform")
    names = transform if isinstance(transform, list) else [transform]
    return TRANSFORM in names


def expand_for_each(value: Any, collection: Callable[[Any], Any]) -> Any:
    """`value` with every Fn::ForEach loop replaced by its expansion; `collection` resolves a loop's collection."""
    if isinstance(value, list):
        return [expand_for_each(item, collection) for item in value]
    if not isinstance(value, Mapping):
        return value
    expanded: dict[str, Any] = {}
    for key, item in value.items():
        if not (isinstance(key, str) and key.startswith(FOR_EACH)):
            expanded[key] = expand_for_each(item, collection)
            continue
        if not isinstance(item, list) or len(item) != 3 or not isinstance(item[2], Mapping):
            raise TemplateError(f"{key} needs [Identifier, Collection, {{OutputKey: OutputValue}}], got {item!r}")
        identifier, items, outputs = item
        values = collection(items)
        if not isinstance(values, list):
            raise TemplateError(f"{key}: the collection must be a list, got {values!r}")
        for element in values:
            substituted = _substitute(outputs, str(identifier), str(element))
            for output_key, output in expand_for_each(substituted, collection).items():
                if output_key in expanded:
                    raise TemplateError(f"{key}: {output_key} is produced twice")
                expanded[output_key] = output
    return expanded


def _substitute(value: Any, identifier: str, element: str) -> Any:
    if isinstance(value, str):
        return value.replace("${" + identifier + "}", element).replace(
            "&{" + identifier + "}", _NOT_ALPHANUMERIC.sub("", element)
        )
    if isinstance(value, list):
        return [_substitute(item, identifier, element) for item in value]
    if isinstance(value, Mapping):
        if len(value) == 1 and value.get("Ref") == identifier:
            return element
        return {
            _substitute(key, identifier, element): _substitute(item, identifier, element) for key, item in value.items()
        }
    return value
