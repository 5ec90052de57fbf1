"""Each runtime extra on the emulated Raspberry Pi 4 (devices/emulated-pi: arm64 Debian Bookworm under qemu-user).

EVERY TIMING HERE IS EMULATED (qemu-user on an x86-64 host, niced on a shared machine): it says how long the board
tests take, never how fast a Raspberry Pi is. What carries over to a real board is the yes/no and the numbers
that are not times: which extras install from aarch64 wheels, and whether the check images give the same top-1 and
the same output vectors on aarch64 as at export.

1. the cached root (built once; time of this run's build, or "cached") and a fresh board's start;
2. a 32 px digits MobileNetV3-small exported to TFLite, ONNX and OpenVINO, fp32 and int8, with its check images;
3. per extra (litert, onnx, openvino): `pip install edgerec-<wheel>[extra]` into its own venv on the board; then on
   the board, per artifact of that extra's format: import and load seconds, the top-1 of the check images against
   the top-1 recorded at export (``reference.artifact_check_top1``), and max |delta| of the output vectors against
   the outputs the bundle recorded at export (``reference.artifact_check_outputs``, with its tolerance);
4. per installed extra: `device setup --venv` for it, deploy v1 -> healthy (the real `edgerec run` on a video),
   deploy v2, rollback -> healthy.

JSON to benchmarks/results/emulated_board.json (figures under "emulated_qemu").

    sudo nice -n 19 .venv/bin/python benchmarks/emulated_board.py
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _fixtures.emulated_board import board_ssh, load_emulated_pi  # noqa: E402

BOARD_ROOT = "/root/.edgerec"
EXTRAS = {"litert": ("tflite", "litert"), "onnx": ("onnx", "onnxruntime"), "openvino": ("openvino", "openvino")}
LABEL = "EMULATED (qemu-user on x86-64, niced, shared 2-core host): not board figures"

# Runs on the board with the extra's venv python: import, load and run each artifact of one format on the check images
PROBE = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from edgerec.bundle import load_manifest
from edgerec.runtime.adapters import from_model_output, to_model_input
from edgerec.runtime.backends import open_backend
from edgerec.runtime.image import model_image, read_image_bgr
import_s = time.perf_counter() - t0
root, fmt = sys.argv[1], sys.argv[2]
m = load_manifest(root)
imgs = np.stack([model_image(read_image_bgr(f"{root}/{r}"), m.input) for r in m.check_images])
if m.input.color_order.upper() == "RGB":
    imgs = np.ascontiguousarray(imgs[..., ::-1])
out = {"import_s": import_s, "artifacts": {}}
for art in m.ok_artifacts():
    if art.format != fmt:
        continue
    t = time.perf_counter()
    with open_backend(f"{root}/{art.file}", art, threads=2) as be:
        load_s = time.perf_counter() - t
        step = len(imgs) if be.name in ("onnxruntime", "openvino") else 1
        scores = np.concatenate([from_model_output(be.invoke(to_model_input(imgs[i:i + step], m.input, art)), art)
                                 for i in range(0, len(imgs), step)]).reshape(len(imgs), -1)
    out["artifacts"][art.key] = {"load_s": load_s, "backend": be.name, "scores": scores.tolist()}
print("PROBE " + json.dumps(out))
"""


def export_bundle(work: Path) -> Path:
    from _fixtures.export import export_run, make_digits_run

    run = make_digits_run(work, per_class=30, steps=25)
    return export_run(run, work / "bundle", formats=("tflite", "onnx", "openvino"), precisions=("fp32", "int8"),
                      max_int8_drop=10.0, calib=32, max_eval=100).dir


def host_scores(bundle: Path) -> dict:
    """Each ok artifact's scores on the check images on this (exporting) machine."""
    import numpy as np

    from edgerec.bundle import load_manifest
    from edgerec.export.verify import run_artifact
    from edgerec.runtime.image import model_image, read_image_bgr

    m = load_manifest(bundle)
    imgs = np.stack([model_image(read_image_bgr(bundle / r), m.input) for r in m.check_images])
    if m.input.color_order.upper() == "RGB":
        imgs = np.ascontiguousarray(imgs[..., ::-1])
    return {a.key: run_artifact(bundle / a.file, a, imgs, m.input, threads=2) for a in m.ok_artifacts()}


def timed_cli(argv: list[str]) -> tuple[int, float, str]:
    import contextlib
    import io

    from edgerec.cli import main

    buf = io.StringIO()
    t0 = time.monotonic()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
    return rc, time.monotonic() - t0, buf.getvalue()


def one_extra(board, extra: str, wheel_remote: str, bundle: Path, remote_bundle: str, host: dict,
              v2: Path, deploy_flow: bool) -> dict:
    import numpy as np

    from edgerec.bundle import load_manifest

    fmt = EXTRAS[extra][0]
    venv = f"/root/venv-{extra}"
    row: dict = {"extra": extra}
    t0 = time.monotonic()
    r = board_ssh(board, f"python3 -m venv {venv} && {venv}/bin/python -m pip install -q '{wheel_remote}[{extra}]'",
                  timeout=3600, check=False)
    row["install_s"] = round(time.monotonic() - t0, 1)
    row["installs"] = r.returncode == 0
    if not row["installs"]:
        row["install_error"] = (r.stdout + r.stderr).strip().splitlines()[-3:]
        print(f"  {extra}: pip install failed: {row['install_error']}", flush=True)
        return row
    print(f"  {extra}: installed in {row['install_s']} s (emulated)", flush=True)
    Path(board.root, "root", "probe.py").write_text(PROBE)
    t0 = time.monotonic()
    r = board_ssh(board, f"{venv}/bin/python /root/probe.py {remote_bundle} {fmt}", timeout=1800, check=False)
    row["probe_wall_s"] = round(time.monotonic() - t0, 1)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("PROBE ")), None)
    if line is None:
        row["probe_error"] = (r.stdout + r.stderr)[-1500:]
        print(f"  {extra}: probe failed: {row['probe_error']}", flush=True)
        return row
    probe = json.loads(line[6:])
    row["import_s"] = round(probe["import_s"], 2)
    ref = load_manifest(bundle).reference
    recorded, outputs = ref.get("artifact_check_top1", {}), ref.get("artifact_check_outputs", {})
    tolerance = ref.get("artifact_check_tolerance", {})
    row["artifacts"] = {}
    for key, a in probe["artifacts"].items():
        scores = np.asarray(a["scores"])
        top1 = scores.argmax(1)
        same = int(np.sum(top1 == np.asarray(recorded[key]))) if key in recorded else None
        # against the outputs the bundle recorded at export; older bundles: the artifact re-run on this machine
        expected = np.asarray(outputs[key]) if key in outputs else host[key]
        row["artifacts"][key] = {"backend": a["backend"], "load_s": round(a["load_s"], 2), "n": int(len(top1)),
                                 "same_top1": same, "delta_vs": "bundle reference" if key in outputs else "export machine",
                                 "max_abs_delta": float(np.max(np.abs(scores - expected))),
                                 "tolerance": tolerance.get(key, {}).get("abs")}
    if deploy_flow:
        row.update(deploy_rollback(board, extra, venv, bundle, v2))
    return row


def deploy_rollback(board, extra: str, venv: str, bundle: Path, v2: Path) -> dict:
    fmt, backend = EXTRAS[extra]
    ssh = ["--identity", board.client_key, "--known-hosts", board.known_hosts]
    out: dict = {}
    rc, dt, text = timed_cli(["device", "setup", board.target, "--venv", venv, "--no-os-packages", "--camera",
                              "/root/clip.avi", "--run-args", "--loop --threads 2", *ssh])
    out["setup_venv_s"] = round(dt, 1)
    if rc:
        out["deploy_error"] = text[-800:]
        return out
    pick = ["--format", fmt, "--precision", "int8" if extra == "litert" else "fp32", "--backend", backend]
    for label, argv in (("deploy_to_healthy_s", ["deploy", str(bundle), board.target, *pick]),
                        ("deploy_v2_to_healthy_s", ["deploy", str(v2), board.target, *pick]),
                        ("rollback_to_healthy_s", ["rollback", board.target])):
        rc, dt, text = timed_cli([*argv, "--health-timeout", "900", *ssh])
        if rc:
            out["deploy_error"] = f"{label}: {text[-800:]}"
            print(f"  {extra}: {label} failed: {text[-400:]}", flush=True)
            return out
        out[label] = round(dt, 1)
        print(f"  {extra}: {label} {dt:.1f} s (emulated)", flush=True)
    return out


def table(rows: list[dict]) -> str:
    lines = [f"## {LABEL}", "",
             "| extra | installs (s) | import + load s | artifact | same top-1 as export | max abs delta vs export "
             "(tolerance) | deploy -> healthy s | rollback -> healthy s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        inst = f"yes ({r['install_s']})" if r["installs"] else f"no ({r['install_s']})"
        if not r.get("artifacts"):
            why = r.get("install_error") or r.get("probe_error") or ""
            lines.append(f"| {r['extra']} | {inst} | - | - | - | - | - | - |  {str(why)[-200:]}")
            continue
        for key, a in r["artifacts"].items():
            same = f"{a['same_top1']}/{a['n']}" if a["same_top1"] is not None else "not recorded"
            lines.append(f"| {r['extra']} | {inst} | {r['import_s']} + {a['load_s']} | {key} | {same} "
                         f"| {a['max_abs_delta']:.2e} ({a['tolerance'] if a['tolerance'] is not None else '-'}) "
                         f"| {r.get('deploy_to_healthy_s', 'failed (see JSON)' if 'deploy_error' in r else '-')} "
                         f"| {r.get('rollback_to_healthy_s', '-')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--extras", default="litert,onnx,openvino")
    ap.add_argument("--no-deploy", action="store_true", help="skip the deploy/rollback timings")
    ap.add_argument("--nice", type=int, default=19, help="niceness of the board's processes")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "emulated_board.json"))
    args = ap.parse_args()
    ep = load_emulated_pi()
    why = ep.cannot_run(install=True)
    if why:
        raise SystemExit(f"emulated board: {why}")
    result: dict = {"label": LABEL, "host": {"machine": platform.machine(), "cpus": os.cpu_count(),
                                            "load_avg": os.getloadavg()}, "emulated_qemu": {}}
    emu = result["emulated_qemu"]
    cached = (ep.root_dir() / "etc" / "edgerec-emulated" / "built").exists()
    t0 = time.monotonic()
    ep.build()
    emu["root_build_s"] = "cached" if cached else round(time.monotonic() - t0, 1)
    work = Path(tempfile.mkdtemp(prefix="edgerec-emulated-bench-"))
    board = None
    try:
        print("exporting the digits bundle (host) ...", flush=True)
        bundle = export_bundle(work / "export")
        from edgerec.bundle import load_manifest, write_manifest

        v2 = Path(shutil.copytree(bundle, work / "v2"))
        write_manifest(dataclasses.replace(load_manifest(v2), version="2"), v2)
        host = host_scores(bundle)
        wheel_dir = work / "wheel"
        import subprocess

        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(REPO),
                        "-w", str(wheel_dir)], check=True, capture_output=True)
        wheel = next(wheel_dir.glob("edgerec-*.whl"))
        t0 = time.monotonic()
        board = ep.start(work / "board", nice=args.nice)
        emu["board_start_s"] = round(time.monotonic() - t0, 1)
        print(f"board up in {emu['board_start_s']} s (emulated)", flush=True)
        shutil.copy(wheel, Path(board.root, "root", wheel.name))
        shutil.copytree(bundle, Path(board.root, "root", "bundle"))
        import cv2

        from _fixtures.runtime import colour_frame

        vw = cv2.VideoWriter(str(Path(board.root, "root", "clip.avi")), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
        for i in range(20):
            vw.write(colour_frame("red" if i < 10 else "blue"))
        vw.release()
        rows = []
        for extra in args.extras.split(","):
            rows.append(one_extra(board, extra, f"/root/{wheel.name}", bundle, "/root/bundle", host, v2,
                                  not args.no_deploy))
            emu["extras"] = rows
            Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        emu["table"] = table(rows)
        print(emu["table"])
    finally:
        if board is not None:
            ep.stop(work / "board")
        shutil.rmtree(work, ignore_errors=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
