"""A test function whose import fails: its init error must reach the console and answer 502."""

raise ImportError("this module cannot be imported, on purpose")


def handler(event: object, context: object) -> None:  # pragma: no cover - never reached
    return None
