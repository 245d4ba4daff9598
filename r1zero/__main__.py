from r1zero.cli import main

raise SystemExit(main())
