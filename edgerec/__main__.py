"""``python -m edgerec`` (and ``torchrun -m edgerec train ...``) is the ``edgerec`` command."""

import sys

from .cli import main

sys.exit(main())
