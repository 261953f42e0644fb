"""``python -m cama``: the ``cama`` command, for environments where the console script is not on PATH."""

import sys

from cama.cli import main

sys.exit(main())
