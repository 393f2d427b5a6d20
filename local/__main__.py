"""`python -m local` is the `lakehouse` command."""

import sys

from local.cli import main

sys.exit(main())
