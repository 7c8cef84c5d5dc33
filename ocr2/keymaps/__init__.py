"""State-dict key maps and config.json conversions between ocr2 and the other layouts: the release's (official.py,
official_config.py) and the transformers port's (port.py, sam.py); each reads them (-> ocr2 names) and writes
them (the inverse maps, for ocr2/layouts.py)."""
