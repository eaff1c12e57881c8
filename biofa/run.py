"""``python -m biofa.run SPEC ...``: the command line (:mod:`biofa.cli.main`)."""

import sys

from biofa.cli.main import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    sys.exit(main())
