"""`python -m sendguard` is the same as the `sendguard` command."""

from sendguard.cli.main import main

raise SystemExit(main())
