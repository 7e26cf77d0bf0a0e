"""``python -m anonvma`` is the ``anonvma`` command."""

import sys

from anonvma.cli import main

sys.exit(main())
