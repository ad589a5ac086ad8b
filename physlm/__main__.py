"""``python -m physlm``: see :mod:`physlm.cli`."""

import sys

from physlm.cli import main

sys.exit(main())
