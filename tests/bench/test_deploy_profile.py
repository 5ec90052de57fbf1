import pytest

from edgerec.bench.deploy_profile import (
    DEPLOY_PROFILE_NAME,
    deploy_profile_from_record,
    load_deploy_profile,
    write_deploy_profile,
)
from edgerec.errors import ConfigError


@pytest.mark.parametrize("name", [None, "custom.yaml", "custom.json"])
def test_round_trip(tmp_path, fake_record, name):
    rec = fake_record("tflite-int8", "litert", 2, p50=7.5, accuracy=0.93)
    prof = deploy_profile_from_record(rec, "lowest p50")
    where = tmp_path if name is None else tmp_path / name
    path = write_deploy_profile(prof, where)
    assert path.name == (name or DEPLOY_PROFILE_NAME)
    back = load_deploy_profile(where)
    assert back == prof
    assert (back.artifact, back.artifact_format, back.precision, back.backend, back.threads) == ("tflite-int8", "tflite", "int8", "litert", 2)
    assert back.measured["accuracy"] == 0.93 and back.device["profile"] == "rpi5"


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="edgerec bench BUNDLE --recommend"):
        load_deploy_profile(tmp_path)
    (tmp_path / "p.yaml").write_text("format: something/2\nartifact: x\n")
    with pytest.raises(ConfigError, match="is not edgerec-deploy-profile/1"):
        load_deploy_profile(tmp_path / "p.yaml")
    (tmp_path / "q.yaml").write_text("format: edgerec-deploy-profile/1\nartifact: a\nartifact_format: tflite\n"
                                     "precision: int8\nbackend: litert\nthreads: 1\nthread: 2\n")
    with pytest.raises(ConfigError, match="did you mean 'threads'"):
        load_deploy_profile(tmp_path / "q.yaml")
