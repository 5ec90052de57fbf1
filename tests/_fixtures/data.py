"""Dataset fixtures every area may use: small, real, written once per test session."""

import pytest

__all__ = ["digits_dir", "synth_dir"]


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory):
    """scikit-learn's handwritten digits as a 32 px RGB ImageFolder, 30 images per class (300 in all)."""
    from edgerec.data import write_digits

    return write_digits(tmp_path_factory.mktemp("data") / "digits", size=32, per_class=30, seed=0)


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    """Generated shapes: 4 classes x 20 images of 32 px."""
    from edgerec.data import write_synth

    return write_synth(tmp_path_factory.mktemp("data") / "synth", classes=4, per_class=20, size=32, seed=0)
