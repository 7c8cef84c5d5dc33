"""`python -m data_pipelines` = `ocr2-data`."""

import sys

from data_pipelines.cli import main

sys.exit(main())
