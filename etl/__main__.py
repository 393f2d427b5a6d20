"""`python -m etl` is the `lakehouse` command."""

import sys

from etl.cli import main

sys.exit(main())
