"""``python -m brickwork`` runs the CLI."""

import sys

from brickwork.cli import main

if __name__ == "__main__":
    sys.exit(main())
