"""``python -m relayd`` is the ``relayd`` command."""
import sys

from relayd.cli.main import main

sys.exit(main())
