"""`edgerec bench` end to end on a real tiny bundle (a few runs per configuration)."""

import json

import pytest

from edgerec.bench.deploy_profile import load_deploy_profile
from edgerec.bench.store import read_records
from edgerec.cli import main


def _bench(bundle, store, *extra):
    return main(["bench", str(bundle), "--threads", "1,2", "--runs", "15", "--store", str(store), *extra])


def test_bench_measures_every_artifact_backend_and_thread_count(bench_bundle, tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    assert _bench(bench_bundle, store, "--data", str(bench_bundle.parent / "tiny-data")) == 0
    out = capsys.readouterr().out
    assert "tflite-fp32" in out and "p50 ms" in out
    recs = read_records(store)
    got = {(r["artifact"], r["backend"], r["threads"]) for r in recs}
    want = {(a, b, t) for a, b in [("onnx-fp32", "onnxruntime"), ("onnx-fp32", "openvino"), ("tflite-fp32", "litert"),
                                   ("openvino-fp16", "openvino")] for t in (1, 2)}
    assert got == want
    for r in recs:
        lat = r["latency_ms"]
        assert lat["n"] == 15 and 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["load_ms"] > 0 and r["first_inference_ms"] > 0 and r["warmup_runs"] >= 5
        assert r["size_bytes"] > 0 and r["rss_mb"]["peak"] >= r["rss_mb"]["before_load"] > 0
        assert r["input"] == {"source": f"data:{bench_bundle.parent / 'tiny-data'}", "n_images": 12}
        assert r["device"]["python"] and "cores" in r["device"]
    # accuracy is computed from the model's own outputs: identical models agree
    accs = {r["artifact"]: r["accuracy"]["top1"] for r in recs}
    assert accs["onnx-fp32"] == accs["tflite-fp32"] and all(0 <= a <= 1 for a in accs.values())


def test_accuracy_is_top1_of_the_backend_outputs(bench_bundle, tmp_path, capsys):
    import numpy as np

    from edgerec.bench.inputs import load_images, prepare_tensors
    from edgerec.bundle import load_manifest
    from edgerec.runtime.backends import open_backend

    store = tmp_path / "s.jsonl"
    assert main(["bench", str(bench_bundle), "--runs", "3", "--artifact", "onnx", "--backend", "onnxruntime",
                 "--data", str(bench_bundle.parent / "tiny-data"), "--store", str(store)]) == 0
    rec = read_records(store)[0]
    m = load_manifest(bench_bundle)
    art = m.artifact("onnx")
    imgs = load_images(bench_bundle, m, bench_bundle.parent / "tiny-data")
    with open_backend(bench_bundle / art.file, art, backend="onnxruntime") as be:
        preds = [int(np.argmax(be.invoke(x))) for x in prepare_tensors(imgs.frames, m, art)]
    assert rec["accuracy"]["top1"] == pytest.approx(np.mean(np.array(preds) == np.array(imgs.labels)))


def test_budget_exit_codes_and_recommend(bench_bundle, tmp_path, capsys):
    store = tmp_path / "s.jsonl"
    assert _bench(bench_bundle, store, "--budget-ms", "10000", "--recommend", str(tmp_path / "dp.yaml")) == 0
    out = capsys.readouterr().out
    assert "budget met" in out and "recommended" in out
    prof = load_deploy_profile(tmp_path / "dp.yaml")
    recs = {r["id"]: r for r in read_records(store)}
    chosen = recs[prof.measured["record_id"]]
    assert (prof.artifact, prof.backend, prof.threads) == (chosen["artifact"], chosen["backend"], chosen["threads"])
    # the chosen one has the lowest p50 or ties it within its CI
    best = min(r["latency_ms"]["p50"] for r in recs.values())
    assert chosen["latency_ms"]["p50"] <= max(best, min(r["latency_ms"]["p50_ci95"][1] for r in recs.values()))

    assert main(["bench", str(bench_bundle), "--runs", "5", "--artifact", "tflite", "--no-store",
                 "--budget-ms", "0.000001"]) == 1
    err = capsys.readouterr().err
    assert "budget missed" in err and "closest: tflite-fp32 litert" in err


def test_json_output_and_compare_with_chart(bench_bundle, tmp_path, capsys):
    store = tmp_path / "a.jsonl"
    assert main(["bench", str(bench_bundle), "--runs", "5", "--artifact", "tflite-fp32", "--json", "--store", str(store)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["artifact"] == "tflite-fp32"
    # a second "device": same records under another host name
    other = tmp_path / "b.jsonl"
    rec = dict(lines[0], id="other", device=dict(lines[0]["device"], hostname="board-b"))
    other.write_text(json.dumps(rec) + "\n" + "{broken\n")
    png = tmp_path / "cmp.png"
    assert main(["bench", "compare", str(store), str(other), "--png", str(png), "--budget-ms", "10000"]) == 0
    cap = capsys.readouterr()
    assert "board-b" in cap.out and "budget met" in cap.out
    assert f"{other}:2" in cap.err  # the corrupt line is named
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_estimate_cli_labels_and_cites(bench_bundle, tmp_path, capsys):
    assert main(["bench", str(bench_bundle), "--estimate", "rpi4", "--json", "--compare-store"]) == 0
    ests = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {e["artifact"] for e in ests} == {"onnx-fp32", "tflite-fp32", "openvino-fp16"}
    assert all(e["label"] == "ESTIMATE" and e["references"] and e["references"][0]["source"].startswith("http") for e in ests)
    assert main(["bench", str(bench_bundle), "--estimate", "rpi4", "--compare-store"]) == 0
    out = capsys.readouterr().out
    assert "ESTIMATE" in out and "source: https://" in out
    assert main(["bench", str(bench_bundle), "--estimate", "rpi5"]) == 2
    assert "no published reference figures" in capsys.readouterr().err


def test_loop_profile_on_an_image_folder(bench_bundle, tmp_path, capsys):
    pytest.importorskip("edgerec.runtime.sources")
    store = tmp_path / "loop.jsonl"
    assert main(["bench", str(bench_bundle), "--source", str(bench_bundle.parent / "tiny-data"), "--frames", "20",
                 "--artifact", "onnx-fp32", "--store", str(store)]) == 0
    rec = read_records(store, kind="loop")[0]
    assert rec["frames"] == 20 and rec["fps"] > 0 and rec["dropped"] == 0
    st = rec["stages_ms"]
    assert set(st) == {"capture", "wait", "preprocess", "inference", "postprocess", "total"}
    assert st["capture"]["mean"] > 0  # PNG decode on the reader thread
    assert st["total"]["mean"] >= st["inference"]["mean"]


def test_fingerprint_subcommand(capsys):
    assert main(["bench", "fingerprint"]) == 0
    fp = json.loads(capsys.readouterr().out)
    assert fp["python"] and fp["machine"]


def test_bad_flags(bench_bundle, capsys):
    assert main(["bench", str(bench_bundle), "--threads", "x"]) == 2
    assert main(["bench", str(bench_bundle), "--backend", "onnxrt", "--runs", "2", "--no-store"]) == 2
    assert "did you mean 'onnxruntime'" in capsys.readouterr().err


def test_sequential_and_pinned(bench_bundle, tmp_path):
    import os

    before = os.sched_getaffinity(0)
    core = min(before)
    store = tmp_path / "s.jsonl"
    assert main(["bench", str(bench_bundle), "--artifact", "tflite", "--threads", "1", "--runs", "7", "--no-interleave",
                 "--pin", str(core), "--warmup-runs", "2", "--warmup-seconds", "0", "--store", str(store)]) == 0
    rec = read_records(store)[0]
    assert rec["settings"]["pin"] == [core] and rec["settings"]["interleave"] is False
    assert rec["warmup_runs"] == 2 and rec["latency_ms"]["n"] == 7
    assert os.sched_getaffinity(0) == before  # restored afterwards
    assert main(["bench", str(bench_bundle), "--runs", "2", "--pin", "4096", "--no-store"]) == 2
    assert main(["bench", str(bench_bundle), "--runs", "2", "--pin", "auto", "--no-store"]) == 2  # needs --threads
    assert main(["bench", str(bench_bundle), "--artifact", "tflite", "--threads", "1", "--runs", "3", "--pin", "auto",
                 "--store", str(store)]) == 0
    assert read_records(store)[-1]["settings"]["pin"] == [max(before)]


def test_a_configuration_that_cannot_load_is_reported_not_fatal(bench_bundle, tmp_path, capsys):
    import shutil

    from edgerec.bundle import contract_digest, sha256_file

    b = tmp_path / "b"
    shutil.copytree(bench_bundle, b)
    (b / "model_fp32.tflite").write_bytes(b"not a flatbuffer" * 10)
    manifest = json.loads((b / "edgerec.json").read_text())
    for a in manifest["artifacts"]:
        if a["format"] == "tflite":
            a["sha256"] = {a["file"]: sha256_file(b / a["file"])}
    manifest["contract_sha256"], manifest["contract_sections"] = contract_digest(manifest)  # a consistent bundle
    (b / "edgerec.json").write_text(json.dumps(manifest))
    store = tmp_path / "s.jsonl"
    assert main(["bench", str(b), "--artifact", "tflite,onnx", "--backend", "litert,onnxruntime", "--runs", "3",
                 "--store", str(store)]) == 0
    recs = read_records(store)
    assert [r["artifact"] for r in recs] == ["onnx-fp32"]
    assert any("tflite-fp32/litert/tauto not measured" in w for w in recs[0]["warnings"])
    assert "not measured" in capsys.readouterr().err


def test_data_folder_errors_and_pre_split_root(bench_bundle, tmp_path, capsys):
    import shutil

    from edgerec.bench.inputs import load_images
    from edgerec.bundle import load_manifest

    m = load_manifest(bench_bundle)
    split = tmp_path / "ds"
    shutil.copytree(bench_bundle.parent / "tiny-data", split / "test")
    (split / "train" / "circle").mkdir(parents=True)
    imgs = load_images(bench_bundle, m, split)
    assert imgs.source == f"data:{split / 'test'}" and len(imgs) == 12
    bad = tmp_path / "bad"
    (bad / "triangle").mkdir(parents=True)
    assert main(["bench", str(bench_bundle), "--data", str(bad), "--runs", "2", "--no-store"]) == 2
    err = capsys.readouterr().err
    assert "triangle" in err and "circle, square, cross" in err
