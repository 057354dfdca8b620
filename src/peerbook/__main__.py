"""`python -m peerbook` runs the command line."""

from peerbook.cli import main

raise SystemExit(main())
