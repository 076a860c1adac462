"""Build and maintain knowledge bases: ``python init_database.py --recreate-vs`` (see --help)."""

import sys

from kb_server.cli.init_database import main

if __name__ == "__main__":
    sys.exit(main())
