"""Start the whole application: ``python startup.py -a`` (see --help)."""

import sys

from kb_server.cli.startup import main

if __name__ == "__main__":
    sys.exit(main())
