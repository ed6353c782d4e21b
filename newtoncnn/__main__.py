"""``python -m newtoncnn``: the command line (see :mod:`newtoncnn.cli`)."""
import sys

from newtoncnn.cli import main

if __name__ == "__main__":
    sys.exit(main())
