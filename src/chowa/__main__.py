"""Run as: python -m chowa --help"""

from chowa.cli import main

raise SystemExit(main())
