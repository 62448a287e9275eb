"""`python -m samlocal`: the `samlocal` command."""

from samlocal.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
