"""`python -m cocode`: the same entry point as the `cocode` console script."""

from cocode.cli import main

if __name__ == "__main__":
    main()
