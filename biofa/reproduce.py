"""``python -m biofa.reproduce NAME ...``: run a published table (:mod:`biofa.cli.reproduce`)."""

import sys

from biofa.cli.reproduce import main, reproduce

__all__ = ["main", "reproduce"]

if __name__ == "__main__":
    sys.exit(main())
