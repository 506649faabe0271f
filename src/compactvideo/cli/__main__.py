"""``python -m compactvideo.cli``: the same as the ``compactvideo`` console script."""

import sys

from compactvideo.cli import main

sys.exit(main())
