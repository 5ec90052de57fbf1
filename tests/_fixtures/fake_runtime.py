"""A stand-in for `edgerec run` in deploy tests: prints JSON-line predictions for a bundle.

usage: fake_runtime.py BUNDLE SOURCE JSONL. The bundle's provenance.test_behaviour picks what it does:
ok (a prediction every 0.1 s), crash (exits at once), silent (runs but never predicts).
"""

import json
import sys
import time
from pathlib import Path

bundle, source, jsonl = sys.argv[1:4]
manifest = json.loads((Path(bundle) / "edgerec.json").read_text())
behaviour = manifest["provenance"].get("test_behaviour", "ok")
print(f"fake runtime: {manifest['name']} {manifest['version']} on {source} ({behaviour})", flush=True)
if behaviour == "crash":
    sys.exit("fake runtime: model failed to load")
with open(jsonl, "a") as f:
    while True:
        if behaviour == "ok":
            f.write(json.dumps({"t": time.time(), "label": manifest["labels"][0], "score": 0.9,
                                "version": manifest["version"]}) + "\n")
            f.flush()
        time.sleep(0.1)
