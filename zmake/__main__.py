from zmake.cli import main

raise SystemExit(main())
