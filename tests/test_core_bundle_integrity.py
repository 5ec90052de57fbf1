"""One integrity model: every file the runtime opens is inside the bundle, named and hashed; the manifest's
model contract is hashed; bad numbers and shapes are a ``BundleError``, never a traceback (issue #12:
cases 1, 8 and the manifest half of 9), plus a seeded fuzz over the schema."""

import copy
import json
import logging
import math
import random
import time

import numpy as np
import pytest

from edgerec import limits
from edgerec.bundle import (
    Artifact, InputSpec, Manifest, QuantParams, Verification, contract_digest, hashed_files, integrity_notes,
    load_manifest, schema, sha256_file, verify_bundle, write_manifest,
)
from edgerec.cli import main as cli_main
from edgerec.errors import BundleError


def _bundle(root, *, check_image=True):
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_int8.tflite").write_bytes(b"model-bytes" * 10)
    (root / "check").mkdir(exist_ok=True)
    (root / "check" / "0.png").write_bytes(b"png-bytes")
    art = Artifact(
        format="tflite", precision="int8", file="model_int8.tflite", files=("model_int8.tflite",),
        sha256={"model_int8.tflite": sha256_file(root / "model_int8.tflite")}, size_bytes=110,
        layout="NHWC", input_dtype="uint8", output_dtype="uint8",
        input_quant=QuantParams(1.0, 0), output_quant=QuantParams(0.1, 3), normalization_in_model=True,
        verification=Verification(n_images=10, accuracy=0.9, agreement=1.0, max_abs_logit_diff=0.2),
    )
    m = Manifest(name="digits", version="1", task="single_label", labels=tuple("0123456789"),
                 input=InputSpec(32, 32), artifacts=(art,), check_images=("check/0.png",) if check_image else (),
                 provenance={"edgerec_version": "0.1.0", "created": "2026-11-22T00:00:00Z"})
    write_manifest(m, root)
    return root


def _edit(root, change, *, rehash=False):
    """Apply ``change(data)`` to edgerec.json; ``rehash`` recomputes the contract hash too (a careful tamperer)."""
    path = root / "edgerec.json"
    data = json.loads(path.read_text())
    change(data)
    if rehash:
        data["contract_sha256"], data["contract_sections"] = contract_digest(data)
    path.write_text(json.dumps(data))


def _cli(argv, capsys):
    root, handlers = logging.getLogger(), logging.getLogger().handlers[:]
    root.handlers = []  # `edgerec run` sets up logging on this test's stderr, not a closed one of an earlier test
    try:
        rc = cli_main(argv)
    finally:
        root.handlers = handlers
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


# ----------------------------------------------------------------------------------- case 1: integrity


def test_case01_manifest_records_contract_and_every_hash(tmp_path):
    b = _bundle(tmp_path / "b")
    data = json.loads((b / "edgerec.json").read_text())
    assert len(data["contract_sha256"]) == 64 and set(data["contract_sections"]) >= {"input", "labels", "artifacts"}
    assert data["check_images_sha256"] == {"check/0.png": sha256_file(b / "check" / "0.png")}
    m = verify_bundle(b)
    assert set(hashed_files(m)) == {"model_int8.tflite", "check/0.png"}
    assert integrity_notes(m) == []


def test_case01_edited_resize_mode_is_caught_and_named(tmp_path, capsys):
    b = _bundle(tmp_path / "b")
    _edit(b, lambda d: d["input"].update(resize_mode="letterbox"))
    with pytest.raises(BundleError, match=r"changed after export: input no longer matches contract_sha256"):
        verify_bundle(b)
    load_manifest(b)  # reading it (bundle info) still works; verifying does not
    rc, err = _cli(["bundle", "verify", str(b)], capsys)
    assert rc == 2 and "input no longer matches" in err and "fix:" in err


def test_case01_removed_hash_of_the_loaded_file_is_refused(tmp_path):
    b = _bundle(tmp_path / "b")
    _edit(b, lambda d: d["artifacts"][0]["sha256"].clear(), rehash=True)
    with pytest.raises(BundleError, match="'model_int8.tflite' has no sha256"):
        verify_bundle(b)


@pytest.mark.parametrize("target", ["/etc/hostname", "../outside.tflite", "sub/../../outside.tflite"])
def test_case01_file_outside_the_bundle_is_refused_everywhere(tmp_path, target, capsys):
    b = _bundle(tmp_path / "b")
    (tmp_path / "outside.tflite").write_bytes(b"evil")

    def point_out(d):
        a = d["artifacts"][0]
        a["file"] = target
        a["files"] = [target]
        a["sha256"] = {target: sha256_file(tmp_path / "outside.tflite")}

    _edit(b, point_out, rehash=True)
    with pytest.raises(BundleError, match="outside the bundle"):
        verify_bundle(b)
    with pytest.raises(BundleError, match="outside the bundle"):
        load_manifest(b)  # even with --no-verify the runtime never gets the path
    from edgerec.devices.deploy import deploy

    with pytest.raises(BundleError, match="outside the bundle"):
        deploy(None, b)  # refused before any connection is used
    rc, err = _cli(["run", str(b), "--source", str(tmp_path), "--no-verify"], capsys)
    assert rc == 2 and "outside the bundle" in err


def test_case01_link_out_of_the_bundle_is_refused(tmp_path):
    b = _bundle(tmp_path / "b")
    (tmp_path / "outside.tflite").write_bytes(b"model-bytes" * 10)  # same bytes: only the link is wrong
    (b / "model_int8.tflite").unlink()
    (b / "model_int8.tflite").symlink_to(tmp_path / "outside.tflite")
    with pytest.raises(BundleError, match="resolves outside the bundle"):
        verify_bundle(b)


def test_case01_check_image_changed_is_caught(tmp_path):
    b = _bundle(tmp_path / "b")
    (b / "check" / "0.png").write_bytes(b"other")
    with pytest.raises(BundleError, match="check image: sha256 mismatch for 'check/0.png'"):
        verify_bundle(b)


def test_case01_old_bundle_without_contract_loads_with_a_note(tmp_path, caplog, capsys):
    b = _bundle(tmp_path / "b")

    def make_old(d):
        d["schema_version"] = "1.0"
        for k in ("contract_sha256", "contract_sections", "check_images_sha256"):
            d.pop(k)
        d["artifacts"][0]["verification"]["accuracy"] = 90.0

    _edit(b, make_old)
    with caplog.at_level(logging.WARNING, logger="edgerec.bundle"):
        m = verify_bundle(b)
    assert m.schema_version == "1.0" and m.contract_sha256 is None
    assert "no contract_sha256" in caplog.text and "check image(s) have no sha256" in caplog.text
    rc, err = _cli(["bundle", "verify", str(b)], capsys)
    assert rc == 0 and "note:" in err and "re-export" in err


def test_case01_board_activation_refuses_a_changed_bundle(tmp_path):
    from _fixtures.ssh import fake_board

    from edgerec.devices import board

    root = fake_board(tmp_path / "board")
    b = _bundle(root / "models" / "digits" / "1")
    board.switch(root, "digits", "1")
    _edit(b, lambda d: d.update(labels=list("abcdefghij")))
    health = board.activate(root, "digits", "1", None, 2.0)
    assert health["healthy"] is False and health["service_kind"] == "not started"
    assert "does not check out" in health["reason"] and "labels" in health["reason"]
    assert not (root / "models" / "digits" / "current").exists()  # nothing to fall back to: nothing is current
    assert json.loads((root / "deploys.jsonl").read_text().splitlines()[-1])["health"]["healthy"] is False


# -------------------------------------------------------------------- cases 8 and 9: numbers and shapes


@pytest.mark.parametrize("change,message", [
    (lambda d: d["input"].update(std=[float("nan"), 0.2, 0.2]), r"input/std/0 is nan"),  # case 8: NaN std
    (lambda d: d["input"].update(mean=[float("nan"), 0.4, 0.4]), r"input/mean/0 is nan"),  # case 9: NaN mean
    (lambda d: d["input"].update(pixel_scale=float("inf")), r"input/pixel_scale is inf"),  # case 9: inf scale
    (lambda d: d["artifacts"][0]["output_quant"].update(scale=0.0), r"output_quant/scale"),  # case 8: flat scores
    (lambda d: d["artifacts"][0]["output_quant"].update(zero_point=10**9), r"zero_point"),  # case 8: huge zero-point
    (lambda d: d["artifacts"][0]["output_quant"].update(zero_point=200, scale=0.1) or
     d["artifacts"][0].update(output_dtype="int8"), r"zero_point 200 does not fit int8"),
    (lambda d: d["input"].update(height=100_000, width=100_000), r"input/height"),  # case 9: impossible size
    (lambda d: d["artifacts"][0]["input_quant"].update(extra=1), r"input_quant"),  # case 9: extra quant key
    (lambda d: d["artifacts"][0]["verification"].pop("n_images"), r"verification"),
])
def test_case08_09_bad_numbers_and_shapes_are_bundle_errors(tmp_path, change, message, capsys):
    b = _bundle(tmp_path / "b")
    _edit(b, change, rehash=False)
    with pytest.raises(BundleError, match=message):
        load_manifest(b)
    rc, err = _cli(["bundle", "info", str(b)], capsys)
    assert rc == 2 and err.startswith("BundleError:")


def test_case08_nan_and_infinity_in_the_file_text_are_refused(tmp_path):
    b = _bundle(tmp_path / "b")
    text = (b / "edgerec.json").read_text()
    for bad in ('"pixel_scale": NaN', '"pixel_scale": Infinity', '"pixel_scale": -Infinity', '"pixel_scale": 1e999'):
        (b / "edgerec.json").write_text(text.replace('"pixel_scale": 255.0', bad))
        with pytest.raises(BundleError, match=r"input/pixel_scale is (nan|inf|-inf); numbers must be finite"):
            load_manifest(b)


def test_case09_deeply_nested_and_oversized_manifests_are_bundle_errors(tmp_path, capsys, monkeypatch):
    b = _bundle(tmp_path / "b")
    data = json.loads((b / "edgerec.json").read_text())
    for depth in (40, 100_000):
        data["provenance"]["x"] = "PLACEHOLDER"
        (b / "edgerec.json").write_text(json.dumps(data).replace('"PLACEHOLDER"', "[" * depth + "]" * depth))
        with pytest.raises(BundleError, match="nested"):
            load_manifest(b)
        rc, err = _cli(["bundle", "verify", str(b)], capsys)
        assert rc == 2
    monkeypatch.setattr(limits, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(BundleError, match="a manifest is at most"):
        load_manifest(b)


def test_schema_input_side_matches_the_named_limit():
    inp = schema()["$defs"]["input"]["properties"]
    assert inp["height"]["maximum"] == inp["width"]["maximum"] == limits.MAX_INPUT_SIDE


# ----------------------------------------------------------------------------------------------- fuzz


def _paths(obj, prefix=()):
    """(container, key) for every value below ``obj``."""
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        out.append((obj, k))
        out += _paths(v, prefix + (k,))
    return out


_SWAPS = ["", "x", 0, -1, 1.5, True, None, [], {}, [1, "a"], {"k": "v"}, "a" * 5000]
_NUMBERS = [float("nan"), float("inf"), float("-inf"), 1e308, -1e308, 10**30, -(10**30), 2**63, 0, -0.0, 1e-320]


def _mutate(data, rng):
    for _ in range(rng.randint(1, 3)):
        spots = _paths(data)
        obj, key = rng.choice(spots)
        kind = rng.choice(("delete", "swap", "number", "nest", "duplicate"))
        if kind == "delete":
            if isinstance(obj, dict):
                del obj[key]
            else:
                obj.pop(key)
        elif kind == "swap":
            obj[key] = copy.deepcopy(rng.choice(_SWAPS))
        elif kind == "number":
            obj[key] = rng.choice(_NUMBERS)
        elif kind == "nest":
            v = obj[key]
            for _ in range(rng.choice((2, 20, 60))):
                v = [v]
            obj[key] = v
        elif isinstance(obj, list):
            obj.append(copy.deepcopy(obj[key]))
        else:
            obj[f"{key}_copy"] = copy.deepcopy(obj[key])
    return data


def test_fuzz_manifest_schema_every_outcome_is_a_load_or_a_bundle_error(tmp_path):
    """Seeded random deletions, type swaps, NaN/Inf, huge numbers, nesting and extra keys, through the file
    reader, the schema and the dataclasses: a clean Manifest or a clean BundleError, nothing else."""
    b = _bundle(tmp_path / "b")
    good = json.loads((b / "edgerec.json").read_text())
    rng = random.Random(20260112)
    n, outcomes, t0 = 600, {"loaded": 0, "refused": 0}, time.perf_counter()
    for case in range(n):
        data = _mutate(copy.deepcopy(good), rng)
        if case % 4 == 1 and isinstance(data, dict):  # some with a matching contract hash: the checks behind it run too
            try:
                data["contract_sha256"], data["contract_sections"] = contract_digest(data)
            except (ValueError, TypeError):  # NaN cannot be hashed canonically; verify refuses it anyway
                pass
        (b / "edgerec.json").write_text(json.dumps(data, allow_nan=True))
        try:
            m = verify_bundle(b) if case % 2 else load_manifest(b)
        except BundleError as exc:
            assert exc.message and "\n" not in exc.message and len(exc.message) < 2000, (case, exc.message)
            outcomes["refused"] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test: anything else is a bug
            pytest.fail(f"case {case}: {type(exc).__name__}: {exc}\n{json.dumps(data, allow_nan=True)[:2000]}")
        # what loads is usable: finite numbers, a contract that can be hashed again
        assert all(math.isfinite(x) for x in (*m.input.mean, *m.input.std, m.input.pixel_scale))
        assert np.all(np.asarray(m.input.std) > 0) and 1 <= m.input.height <= limits.MAX_INPUT_SIDE
        contract_digest(m.to_dict())
        outcomes["loaded"] += 1
    seconds = time.perf_counter() - t0
    print(f"fuzz: {n} cases in {seconds:.2f} s: {outcomes}")
    assert outcomes["loaded"] > 10 and outcomes["refused"] > 100
    assert seconds < 30
