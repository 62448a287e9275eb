"""The local AWS endpoint of `make serve` from a shell, without the AWS CLI: the jobs bucket's name, a folder
uploaded under a prefix, and the JSON Lines under a prefix printed.

    .venv/bin/python scripts/local_s3.py bucket                          # the stack's jobs bucket
    .venv/bin/python scripts/local_s3.py upload DIR s3://BUCKET/PREFIX/  # every file of DIR
    .venv/bin/python scripts/local_s3.py cat s3://BUCKET/PREFIX/         # the .jsonl and .json objects

AWS_ENDPOINT_URL (default http://127.0.0.1:4566, where `make serve` starts it) says where the endpoint is.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import boto3


def client() -> Any:
    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:4566"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )


def split(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise SystemExit(f"{uri}: give an s3://bucket/prefix/ URI")
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("bucket", help="print the name of the stack's jobs bucket")
    upload = commands.add_parser("upload", help="upload every file of a folder under a prefix")
    upload.add_argument("folder", type=Path)
    upload.add_argument("uri")
    show = commands.add_parser("cat", help="print the .jsonl and .json objects under a prefix")
    show.add_argument("uri")
    args = parser.parse_args()
    s3 = client()
    if args.command == "bucket":
        names = [bucket["Name"] for bucket in s3.list_buckets()["Buckets"] if "jobsbucket" in bucket["Name"]]
        if not names:
            raise SystemExit("no jobs bucket: is `make serve` running?")
        print(names[0])
    elif args.command == "upload":
        bucket, prefix = split(args.uri)
        prefix = prefix if not prefix or prefix.endswith("/") else f"{prefix}/"
        for path in sorted(p for p in args.folder.rglob("*") if p.is_file()):
            key = prefix + path.relative_to(args.folder).as_posix()
            s3.upload_file(str(path), bucket, key)
            print(f"s3://{bucket}/{key}")
    else:
        bucket, prefix = split(args.uri)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                if entry["Key"].endswith((".jsonl", ".json")):
                    sys.stdout.write(s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read().decode())
                    sys.stdout.write("" if entry["Key"].endswith(".jsonl") else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
