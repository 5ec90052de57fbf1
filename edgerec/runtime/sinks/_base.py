"""The sink interface and the annotation drawn on frames (video, window, HTTP preview)."""

from __future__ import annotations

import numpy as np

__all__ = ["Sink", "annotate"]


class Sink:
    wants_frames = False  # True: the loop passes the (annotated) image

    def write(self, image: np.ndarray | None, record: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def annotate(image: np.ndarray, record: dict) -> np.ndarray:
    """A copy of ``image`` with the answer (and each stage's, for pipelines) written top-left, and the region
    each stage classified (``roi``) framed in yellow."""
    import cv2  # only sinks that draw need OpenCV: the JSONL and CSV sinks do not

    out = image.copy()
    rois = {tuple(r) for r in [record.get("roi"), *(st.get("roi") for st in record.get("stages", []))] if r}
    thick = max(1, round(min(out.shape[:2]) / 240))
    for x, y, w, h in sorted(rois):
        cv2.rectangle(out, (x, y), (x + w - 1, y + h - 1), (0, 255, 255), thick)
    lines = [f"{record.get('label', '')} {record.get('score', 0.0):.2f}"]
    stages = record.get("stages", [])
    for st in stages if len(stages) > 1 else ():  # a cascade: each stage's answer under the final one
        lines.append(f"{st['name']}: {st.get('label') or '-'} {st.get('score') or 0.0:.2f}" if st["ran"] else f"{st['name']}: skipped")
    scale = max(0.4, min(out.shape[:2]) / 600)
    y = int(22 * scale) + 4
    for text in lines:
        cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        y += int(26 * scale) + 2
    return out
