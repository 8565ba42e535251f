"""`python -m ppad_core.cli` (also what torchrun -m runs): the `ppad` command."""

import sys

from ppad_core.cli import main

sys.exit(main())
