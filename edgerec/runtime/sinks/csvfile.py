"""CSV, one row per frame: timestamp, frame, name, label, score, top-k (``a:0.9;b:0.1``), latency per step;
for pipelines one label/score/ran column triple per stage."""

from __future__ import annotations

import csv

from ._base import Sink

__all__ = ["CsvSink"]

_STEPS = ("capture", "preprocess", "inference", "postprocess")


class CsvSink(Sink):
    def __init__(self, path: str):
        self.path = path
        self._f = open(path, "w", newline="")
        self._w = csv.writer(self._f)
        self._header: list[str] | None = None

    def write(self, image, record):
        stages = record.get("stages", [])
        stages = stages if len(stages) > 1 else []  # one model: its answer is the row's; columns per stage for cascades
        if self._header is None:
            self._header = ["timestamp", "frame", "name", "label", "score", "top_k"]
            self._header += [f"{s['name']}_{k}" for s in stages for k in ("ran", "label", "score")]
            self._header += [f"{k}_ms" for k in _STEPS]
            self._w.writerow(self._header)
        top = ";".join(f"{lab}:{s}" for lab, s in record.get("top_k", []))
        row = [record["timestamp"], record["frame"], record.get("name") or "", record["label"], record["score"], top]
        for s in stages:
            row += [int(s["ran"]), s.get("label") or "", "" if s.get("score") is None else s["score"]]
        lat = record.get("latency_ms", {})
        row += [lat.get(k, "") for k in _STEPS]
        self._w.writerow(row)
        self._f.flush()

    def close(self):
        self._f.close()
