"""Deploy one bundle to many boards: an inventory file, a concurrency limit, a per-host summary.

``hosts.yaml``::

    defaults:            # optional; every key of a host may be set here
      user: pi
      root: ~/.edgerec
    hosts:
      - host: 192.168.1.20
        name: kitchen
      - host: pi@192.168.1.21:2222
        identity: ~/.ssh/fleet_ed25519

A failed host never stops the others and is never hidden: the summary lists every host with
its result, and ``edgerec deploy --inventory`` exits 1 when any host failed.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from .._config import from_mapping, load_yaml
from ..bundle import verify_bundle
from ..errors import ConfigError, EdgerecError
from .deploy import DEFAULT_ROOT, DeployResult, deploy
from .ssh import Target, connect

__all__ = ["Host", "load_inventory", "deploy_inventory", "summary_table"]


@dataclass(frozen=True)
class Host:
    host: str
    name: str | None = None
    user: str | None = None
    port: int | None = None
    identity: str | None = None
    known_hosts: str | None = None
    insecure_accept_new: bool = False
    root: str = DEFAULT_ROOT

    @property
    def target(self) -> Target:
        t = Target.parse(self.host, port=self.port)
        return replace(t, user=t.user or self.user)

    @property
    def label(self) -> str:
        return self.name or str(self.target)


def load_inventory(path: str | Path, *, identity: str | None = None, known_hosts: str | None = None,
                   insecure_accept_new: bool = False, root: str | None = None) -> list[Host]:
    """Read ``hosts.yaml``; unknown keys fail with a suggestion, duplicate hosts are refused."""
    data = load_yaml(path)
    unknown = set(data) - {"defaults", "hosts"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)}", hint="use 'defaults' and 'hosts'")
    defaults = dict(data.get("defaults") or {})
    cli = {"identity": identity, "known_hosts": known_hosts, "root": root if root != DEFAULT_ROOT else None}
    if insecure_accept_new:
        cli["insecure_accept_new"] = True
    hosts = []
    raw = data.get("hosts")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{path}: 'hosts' must be a non-empty list", hint="hosts:\n  - host: pi@192.168.1.20")
    for i, entry in enumerate(raw):
        if isinstance(entry, str):
            entry = {"host": entry}
        merged = {**defaults, **{k: v for k, v in cli.items() if v is not None}, **entry}
        h = from_mapping(Host, merged, where=f"{path}: hosts[{i}]")
        h.target  # parse now: a bad address fails before any deploy starts
        hosts.append(h)
    labels = [h.label for h in hosts]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ConfigError(f"{path}: host(s) listed twice: {', '.join(dupes)}", hint="give each board once (or a distinct name)")
    return hosts


def _one(bundle: Path, host: Host, kw: dict, manifest) -> DeployResult:
    t0 = time.perf_counter()
    try:
        with connect(host.target, identity=host.identity, known_hosts=host.known_hosts,
                     insecure_accept_new=host.insecure_accept_new) as conn:
            res = deploy(conn, bundle, root=host.root, **kw)
    except EdgerecError as exc:
        res = DeployResult(host.label, manifest.name, manifest.version, ok=False, error=exc.message + (f" (fix: {exc.hint})" if exc.hint else ""))
        res.seconds["total"] = round(time.perf_counter() - t0, 3)
    except Exception as exc:  # one board's surprise must not take the fleet down; it is reported in the table
        res = DeployResult(host.label, manifest.name, manifest.version, ok=False, error=f"{type(exc).__name__}: {exc}")
        res.seconds["total"] = round(time.perf_counter() - t0, 3)
    prefix = f"{host.target}: "
    if res.error and res.error.startswith(prefix):  # the table already names the host
        res.error = res.error[len(prefix):]
    res.target = host.label
    return res


def deploy_inventory(bundle: str | Path, hosts: list[Host], *, concurrency: int = 4, progress: bool = True,
                     **kw) -> list[DeployResult]:
    """Deploy to every host, at most ``concurrency`` at once; results in inventory order."""
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, not {concurrency}")
    manifest = verify_bundle(bundle)  # once, before any host: a bad bundle reaches no board
    bar = None
    if progress:
        try:
            from tqdm import tqdm
        except ImportError:  # no bar without tqdm; the summary table still says everything
            tqdm = None
    if progress and tqdm is not None:
        bar = tqdm(total=len(hosts), unit="board", desc=f"deploy {manifest.name} {manifest.version}")
    lock = threading.Lock()

    def run(h: Host) -> DeployResult:
        r = _one(Path(bundle), h, kw, manifest)
        if bar is not None:
            with lock:
                bar.update(1)
                bar.set_postfix_str(f"{h.label}: {'ok' if r.ok else 'FAILED'}")
        return r

    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(run, hosts))
    finally:
        if bar is not None:
            bar.close()


def summary_table(results: list[DeployResult]) -> str:
    """One line per host: result, version, previous, health, time, error."""
    rows = [("host", "result", "version", "was", "health", "seconds", "error")]
    for r in results:
        h = r.health or {}
        health = "-" if not h else (f"ok {h.get('seconds', 0):.2f} s" if h.get("healthy") else "FAILED")
        result = "ok" if r.ok else ("rolled back" if r.rolled_back else "FAILED")
        rows.append((r.target, result, r.version or "-", r.previous or "-", health,
                     f"{r.seconds.get('total', 0):.1f}", (r.error or "").split("\n")[0][:160]))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    ok = sum(r.ok for r in results)
    lines.append(f"\n{ok}/{len(results)} boards ok" + ("" if ok == len(results) else f", {len(results) - ok} FAILED"))
    return "\n".join(lines)
