"""``python -m brickwork`` runs the CLI."""

import sys

from brickwork.cli import main

sys.exit(main())
