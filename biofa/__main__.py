"""``python -m biofa SPEC ...``: the same command line as ``python -m biofa.run``."""

import sys

from biofa.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
