"""The loop side of the soak (tests/runtime/test_soak.py), in its own runtime-only process.

argv: bundle, video, seconds, idle timeout, folder for outputs. Writes ``port`` once the preview listens and
``result.json`` at the end: the summary, RSS samples of this process once a second, the preview's thread count
after the churn settled, and the threads left at shutdown.
"""

import json
import resource
import sys
import threading
import time
from pathlib import Path


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _preview_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def main(bundle: str, video: str, seconds: float, idle: float, out: str) -> None:
    from edgerec import limits
    from edgerec.runtime import load_pipeline, open_source
    from edgerec.runtime.loop import run_loop
    from edgerec.runtime.sinks import open_sink

    limits.HTTP_IDLE_TIMEOUT_S = idle
    out_dir = Path(out)
    threads_before = {t.ident for t in threading.enumerate()}
    stop = threading.Event()
    samples: list[tuple[float, float]] = []
    settled: list[int] = []

    def sample():
        t0 = time.monotonic()
        while not stop.wait(1.0):
            samples.append((time.monotonic() - t0, _rss_mb()))

    http = open_sink("http", 0)
    sinks = [open_sink("jsonl", str(out_dir / "r.jsonl")), open_sink("csv", str(out_dir / "r.csv")),
             http, open_sink("video", str(out_dir / "out.avi"), fps=30)]
    (out_dir / "port.tmp").write_text(str(http.port))
    (out_dir / "port.tmp").rename(out_dir / "port")
    sampler = threading.Thread(target=sample, daemon=True)
    timers = [threading.Timer(seconds, stop.set),
              threading.Timer(seconds * 0.7 + idle + 3, lambda: settled.append(_preview_threads()))]
    src = open_source(video, loop=True)
    with load_pipeline(bundle, threads=1, smoothing=5) as pipe, src:
        sampler.start()
        for t in timers:
            t.start()
        summary = run_loop(pipe, src, sinks, stop=stop, status=False)
    for s in sinks:
        s.close()
    for t in timers:
        t.cancel()
    sampler.join(5)
    time.sleep(0.5)
    res = {"frames": summary.frames, "fps": summary.fps, "seconds": summary.seconds, "stopped_by": summary.stopped_by,
           "dropped": summary.source["dropped"], "source_alive": src.alive, "rss_mb": samples, "settled": settled,
           # the runtime's own threads (edgerec-*, the preview's per-client ones); a backend's library may keep its own
           "threads_left": [t.name for t in threading.enumerate() if t.ident not in threads_before
                            and (t.name.startswith("edgerec-") or "process_request_thread" in t.name)]}
    (out_dir / "result.json").write_text(json.dumps(res))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
