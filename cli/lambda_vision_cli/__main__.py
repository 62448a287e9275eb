"""`python -m lambda_vision_cli`: the `lambda-vision` command."""

from lambda_vision_cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
