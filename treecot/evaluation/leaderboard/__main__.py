"""`python -m treecot.evaluation.leaderboard …`: the same as `treecot leaderboard …`."""

import sys

from treecot.evaluation.leaderboard import leaderboard_main

sys.exit(leaderboard_main())
