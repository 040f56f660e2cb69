import sys

from evals.bench.run import main

sys.exit(main())
