"""`python -m samlocal`: serve the API of a SAM template locally."""

from samlocal.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
