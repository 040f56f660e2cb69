"""`python -m evals.bench`: the same run as `coursepilot bench`, with every knob (settings from env/.env)."""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from evals.bench.command import main

sys.exit(main())
