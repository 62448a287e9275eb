"""What the function does first in its init phase: settings, the model registry, and the default models loading
in a thread of their own while the rest of the function (Powertools, the project's modules) is imported.

ONNX Runtime builds a session without holding the GIL, so the sessions and the imports overlap; app.py waits
for the models at the end of its own import, so the init phase still ends with every default model loaded.

The init creates thousands of long-lived objects (modules, classes) and frees almost none, so the cyclic garbage
collector, which would run dozens of times for nothing, is paused until `finish` and the init's objects are then
frozen out of every later collection.
"""

from __future__ import annotations

import gc
import threading

gc.disable()

# isort: split

from lambda_vision.errors import ApiError  # noqa: E402 - after the collector is paused
from lambda_vision.models import ModelStore  # noqa: E402
from lambda_vision.registry import ModelConfigError, ModelRegistry  # noqa: E402
from lambda_vision.settings import Settings  # noqa: E402

settings = Settings.from_env()
try:
    registry: ModelRegistry | None = ModelRegistry.load(settings.models_config_path)
    registry_error: str | None = None
except ModelConfigError as error:
    registry, registry_error = None, str(error)
store = ModelStore(registry, settings) if registry is not None else None


class Preload:
    """The default models of a store, loaded in a background thread; `wait` gives what went wrong, if anything."""

    def __init__(self, models: ModelStore | None) -> None:
        self._models = models
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="preload-models", daemon=True)

    def start(self) -> Preload:
        if self._models is not None:
            self._thread.start()
        return self

    def _run(self) -> None:
        assert self._models is not None
        try:
            for name in self._models.registry.defaults.values():
                self._models.get(self._models.registry.get(name))
        except BaseException as failure:  # noqa: BLE001 - handed to the main thread, where init reports it
            self._failure = failure

    def wait(self) -> ApiError | None:
        """Block until the models are loaded; a model that could not load is returned, anything else raised."""
        if self._thread.is_alive() or self._thread.ident is not None:
            self._thread.join()
        if isinstance(self._failure, ApiError):
            return self._failure
        if self._failure is not None:
            raise self._failure
        return None


preload = Preload(store if settings.preload_models else None).start()


def finish() -> ApiError | None:
    """The end of the init phase: the default models loaded (what went wrong, if anything) and the collector on."""
    try:
        return preload.wait()
    finally:
        gc.freeze()
        gc.enable()
