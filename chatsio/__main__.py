from chatsio.cli import main

raise SystemExit(main())
