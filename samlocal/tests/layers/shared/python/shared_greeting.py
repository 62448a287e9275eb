"""A module of a test layer: reachable because the layer's python/ directory is on the import path."""

GREETING = "hello from the shared layer"
