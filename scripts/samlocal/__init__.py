"""samlocal: the API Gateway REST API of a SAM template, served locally without Docker.

Requests are turned into API Gateway proxy events and handed to real Lambda runtime workers (the AWS
Lambda Runtime Interface Client, `awslambdaric`) through a local Lambda Runtime API. Run it with
`python -m samlocal --help` (PYTHONPATH=scripts) or `make serve`. A development tool only: deployable
code never imports it.
"""

__version__ = "0.1.0"
