from zmake.cli.main import main

raise SystemExit(main())
