import sys

from jitctl.cli import main

sys.exit(main())
