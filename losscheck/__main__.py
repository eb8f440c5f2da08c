"""`python -m losscheck`."""

from losscheck.cli import main

if __name__ == "__main__":
    main()
