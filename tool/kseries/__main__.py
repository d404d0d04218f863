from kseries.cli import main

raise SystemExit(main())
