from detect.cli import main

raise SystemExit(main())
