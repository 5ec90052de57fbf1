"""The format table (``edgerec.formats``): one record per format, and every other table derived from it."""

import importlib.util

import pytest

from edgerec.errors import ConfigError
from edgerec.formats import FORMATS, format_info


def test_every_record_names_real_backends_and_an_exporter_module():
    from edgerec.runtime.backends import BACKENDS, FORMAT_BACKENDS

    for name, rec in FORMATS.items():
        assert rec.name == name and rec.suffix.startswith(".")
        assert rec.backends and all(b in BACKENDS for b in rec.backends), rec
        module, func = rec.exporter.split(":")
        assert importlib.util.find_spec(module) is not None and func.startswith("export_")
        assert FORMAT_BACKENDS[name] == rec.backends
    # every backend runs at least one format
    assert {b for rec in FORMATS.values() for b in rec.backends} == set(BACKENDS)


def test_export_and_runtime_read_the_same_table():
    pytest.importorskip("torch")
    from edgerec.export.formats import BACKEND_FOR
    from edgerec.export.formats import FORMATS as EXPORTERS

    assert EXPORTERS == {n: r.exporter for n, r in FORMATS.items()}
    assert BACKEND_FOR == {n: r.backends[0] for n, r in FORMATS.items()}


def test_unknown_format_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'onnx'"):
        format_info("onxx")
    assert format_info("openvino").embedded_preprocess
