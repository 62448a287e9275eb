"""A digest of a stack's parameter values, secrets included, for the function version's description.

A Lambda version keeps the configuration it was published with, and SAM publishes a new one only when the
template's text changes: scripts/deploy passes this digest as the ConfigurationDigest parameter, which the
template writes into the version's description, so that changing any value (a secret too, which must not be
written there itself) replaces the version, and the alias the API invokes follows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

PARAMETER = "ConfigurationDigest"
LENGTH = 16


def configuration_digest(values: Mapping[str, str]) -> str:
    settings = {name: str(value) for name, value in values.items() if name != PARAMETER}
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:LENGTH]
