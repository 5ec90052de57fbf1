"""Profile on the boards from the laptop: ``edgerec bench BUNDLE --on user@host`` (or ``--inventory hosts.yaml``).

The bundle goes to a scratch folder on the board (``ROOT/bench/.<name>-<version>-<random>/``; never ``models/`` or
``current``), the board verifies it and runs its own ``edgerec bench`` with the same options, and the result records
come back, with the board's own device fingerprint in each, into the local store, so ``edgerec bench compare`` shows
every target side by side. With ``recommend``, the board's deploy profile comes back too. The scratch folder is
removed whatever happens.

>>> from edgerec.devices.ssh import Target, connect
>>> with connect(Target.parse("pi@kitchen.local")) as conn:                            # doctest: +SKIP
...     res = bench_on(conn, "bundles/digits", ["--threads", "1,2,4", "--seconds", "3"])
>>> [(r["artifact"], r["threads"], r["latency_ms"]["p50"]) for r in res.records]       # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..bundle import MANIFEST_NAME, hashed_files, verify_bundle
from ..errors import DeployError

__all__ = ["RemoteBench", "bench_on", "bench_inventory"]

log = logging.getLogger("edgerec.bench")


@dataclass
class RemoteBench:
    target: str
    records: list[dict] = field(default_factory=list)
    deploy_profile: str | None = None  # the board's deploy-profile.yaml text, with recommend
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def bench_on(conn, bundle: str | Path, bench_args: list[str], *, root: str | None = None,
             recommend: bool = False, timeout: float = 3600.0) -> RemoteBench:
    """Run ``edgerec bench`` on the board behind ``conn`` on a scratch copy of ``bundle``; records come back.

    ``bench_args``: the options of the board's ``edgerec bench`` (threads, runs/seconds, backends, artifacts...),
    never a store or a data folder (the records come back here; the check images are the timing input).
    """
    import time

    from ..devices.deploy import DEFAULT_ROOT, Board
    from ..devices.names import check_name
    from ..devices.ssh import q

    t0 = time.perf_counter()
    bundle = Path(bundle)
    m = verify_bundle(bundle)  # a bundle that does not check out here never reaches a board
    name, version = check_name(m.name, "model name"), check_name(m.version, "version")
    board = Board(conn, root or DEFAULT_ROOT)
    python = board.config["python"]  # "not set up" with the fix, before anything is uploaded
    scratch = board.path("bench", f".{name}-{version}-{secrets.token_hex(4)}")
    files = [MANIFEST_NAME, *hashed_files(m)]
    dirs = sorted({str(PurePosixPath(scratch, rel).parent) for rel in files})
    res = RemoteBench(str(conn.target))
    try:
        conn.run("mkdir -p -- " + " ".join(q(d) for d in dirs), what="creating the scratch folder")
        for rel in files:
            conn.put(bundle / rel, f"{scratch}/{rel}")
        store = f"{scratch}/.records.jsonl"
        profile = f"{scratch}/.deploy-profile.yaml"
        args = [*bench_args, "--json", "--store", store] + (["--recommend", profile] if recommend else [])
        # from /: `python -m` puts the working folder first on sys.path (see Board.agent_command)
        cmd = f"( cd / && exec {q(python)} -m edgerec bench {q(scratch)} {' '.join(q(a) for a in args)} )"
        r = conn.run(cmd, check=False, timeout=timeout, what="benchmarking on the board")
        if not r.ok:
            tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
            raise DeployError(f"{conn.target}: edgerec bench failed on the board: {' / '.join(tail) or r.exit_status}",
                              hint="edgerec device doctor TARGET shows what the board is missing")
        out = conn.run(f"cat -- {q(store)}", what="reading the results").stdout
        for line in out.splitlines():
            if line.strip():
                rec = json.loads(line)
                rec["measured_on"] = {"target": str(conn.target), "via": "edgerec bench --on"}
                res.records.append(rec)
        if recommend:
            res.deploy_profile = conn.run(f"cat -- {q(profile)}", what="reading the deploy profile").stdout
    finally:
        try:
            conn.run(f"rm -rf -- {q(scratch)}", check=False, what="removing the scratch folder")
        except DeployError as exc:  # the link is gone: say where the copy is, and let the first error through
            log.warning("%s: could not remove %s (%s); it is safe to delete", conn.target, scratch, exc.message)
        res.seconds = round(time.perf_counter() - t0, 3)
    return res


def bench_inventory(bundle: str | Path, hosts: list, bench_args: list[str], *, concurrency: int = 4,
                    recommend: bool = False) -> list[RemoteBench]:
    """``bench_on`` for every host of an inventory (``edgerec.devices.inventory.Host``), ``concurrency`` at once;
    results in inventory order; a board that fails is reported in its result, the others still run."""
    from concurrent.futures import ThreadPoolExecutor

    from ..devices.ssh import connect
    from ..errors import ConfigError, EdgerecError

    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, not {concurrency}")
    verify_bundle(bundle)  # once, before any host

    def one(h) -> RemoteBench:
        try:
            with connect(h.target, identity=h.identity, known_hosts=h.known_hosts,
                         insecure_accept_new=h.insecure_accept_new) as conn:
                res = bench_on(conn, bundle, bench_args, root=h.root, recommend=recommend)
        except EdgerecError as exc:
            res = RemoteBench(str(h.target), error=exc.message + (f" (fix: {exc.hint})" if exc.hint else ""))
        except Exception as exc:  # one board's surprise must not take the fleet down; it is reported in its result
            res = RemoteBench(str(h.target), error=f"{type(exc).__name__}: {exc}")
        res.target = h.label
        return res

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, hosts))
