"""`lambda-vision`: the command line of lambda-vision, for development machines.

Predict on files, folders and URLs with the same library and model registry as the function, invoke the
template's function with an event as `sam local invoke` would (without Docker), manage the model registry
(`models list | describe | check | add`) and print the API's OpenAPI document. The deployed function never
imports it.
"""

__version__ = "0.1.0"
