"""The runtime process of an execution environment: awslambdaric's own loop and Runtime API client.

`python -m samlocal.runtime <handler>` is `python -m awslambdaric <handler>` with one difference: the runtime
asks for the next invocation on its main thread. On python3.12 and later awslambdaric asks from a new thread
for every invocation, so that the main thread can take signals while it waits; starting and joining that
thread costs about 0.3 ms per request, a third of the emulator's whole overhead. The emulator never signals
a waiting environment (it stops one with SIGKILL, as Lambda does after its shutdown phase), so nothing a
function can see changes: the handler's import, its init errors, the event and context, the response and
error posts are all awslambdaric's (`bootstrap.run`), as on python3.11.
"""

from __future__ import annotations

import os
import sys

from awslambdaric import bootstrap
from awslambdaric.lambda_runtime_client import LambdaRuntimeClient


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m samlocal.runtime <handler>")
    client = LambdaRuntimeClient(os.environ["AWS_LAMBDA_RUNTIME_API"], use_thread_for_polling_next=False)
    bootstrap.run(argv[1], client)


if __name__ == "__main__":
    main(sys.argv)
