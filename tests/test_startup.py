"""Commands that do not train start quickly (issue 11, item 8): listing datasets or asking for help loads
neither torch nor anndata (PEP 562 lazy readers in ``biolatent.io``, converters import their readers)."""

import subprocess
import sys

import pytest

HEAVY = ("torch", "anndata", "sklearn", "lightning", "scanpy")


@pytest.mark.parametrize("argv", [["--help"], ["data", "list"], ["report", "--help"], ["anomaly", "--help"]])
def test_light_commands_do_not_import_heavy_libraries(argv: list[str]) -> None:
    script = (
        "import sys\n"
        f"sys.argv = ['biolatent', *{argv!r}]\n"
        "import biolatent.cli\n"
        "try:\n    biolatent.cli.app()\nexcept SystemExit:\n    pass\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "", result.stdout.splitlines()[-1]


def test_lazy_io_still_exposes_every_reader() -> None:
    import biolatent.io as io

    for name in io.__all__:
        assert callable(getattr(io, name))
    with pytest.raises(AttributeError, match="no attribute 'read_nothing'"):
        io.read_nothing  # noqa: B018
