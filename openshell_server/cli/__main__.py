"""``python -m openshell_server.cli``: the same as the ``openshell`` command."""

import sys

from openshell_server.cli.main import main

sys.exit(main())
