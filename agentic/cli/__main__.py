"""``python -m agentic.cli ...``: the same as the ``agentic`` console script (what torchrun and accelerate launch)."""

import sys

from agentic.cli import main

sys.exit(main())
