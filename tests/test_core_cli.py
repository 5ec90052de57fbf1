"""The verb table: help, unknown verbs, error formatting, lazy imports."""

import subprocess
import sys

from edgerec import cli
from edgerec.errors import ConfigError, MissingDependencyError, require


def test_help_lists_every_verb(capsys):
    assert cli.main([]) == 0
    out = capsys.readouterr().out
    for verb in cli.VERBS:
        assert verb in out


def test_unknown_verb_suggests(capsys):
    assert cli.main(["trian"]) == 2
    assert "did you mean 'train'" in capsys.readouterr().err


def test_every_verb_target_is_importable_or_pending():
    # Each entry names "module:function"; the function must exist where the module exists.
    import importlib

    for verb, (target, _) in cli.VERBS.items():
        module, func = target.split(":")
        mod = importlib.import_module(module)
        assert callable(getattr(mod, func)), verb


def test_edgerec_error_is_printed_with_its_fix(monkeypatch, capsys):
    def boom(argv):
        raise ConfigError("unknown model 'x'", hint="pick another")

    monkeypatch.setitem(cli.VERBS, "boom", ("tests.test_core_cli:_never", ""))
    monkeypatch.setattr("importlib.import_module", lambda name: type("M", (), {"_never": staticmethod(boom)}))
    assert cli.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert "ConfigError: unknown model 'x'" in err and "fix: pick another" in err


def test_missing_dependency_names_the_extra():
    try:
        require("definitely_not_a_module_xyz", "onnx")
    except MissingDependencyError as exc:
        assert "pip install 'edgerec[onnx]'" in str(exc)
    else:
        raise AssertionError("expected MissingDependencyError")


def test_import_edgerec_pulls_in_nothing_heavy():
    code = "import sys, edgerec, edgerec.cli, edgerec.bundle; print(sorted(m for m in ('torch','numpy','cv2','tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_python_dash_m_edgerec_is_the_cli():
    # torchrun launches `-m edgerec train ...`; that needs edgerec/__main__.py
    out = subprocess.run([sys.executable, "-m", "edgerec", "--version"], capture_output=True, text=True, check=True)
    from edgerec import __version__

    assert out.stdout.strip() == __version__
