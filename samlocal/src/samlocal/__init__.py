"""samlocal: `sam local start-api` without Docker.

The API Gateway APIs of a SAM (or CloudFormation) template, served locally: requests become API Gateway proxy
events handed to real Lambda runtime workers (the AWS Lambda Runtime Interface Client, `awslambdaric`) through a
local Lambda Runtime API. Run `samlocal start-api --help` (or `python -m samlocal`). A development tool only:
deployable code never imports it.
"""

__version__ = "0.2.0"
