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


def test_gwas_does_not_import_torch(tmp_path) -> None:
    """`biolatent gwas` never trains: neither its scan nor its provenance (device field) loads torch, which
    took about 2 s of the command's wall time before."""
    import numpy as np
    import pandas as pd

    from biolatent.io.genotype_matrix import Genotypes
    from biolatent.io.genotypes import write_plink

    rng = np.random.default_rng(0)
    n, m = 60, 40
    ids = [f"s{i}" for i in range(n)]
    variants = pd.DataFrame({"chrom": "1", "pos": np.arange(1, m + 1) * 100, "id": [f"v{j}" for j in range(m)],
                             "ref": "A", "alt": "G"})
    write_plink(Genotypes(rng.binomial(2, 0.3, (n, m)).astype(np.float32), ids, variants), tmp_path / "g")
    pd.DataFrame({"id": ids, "y": rng.normal(size=n)}).to_csv(tmp_path / "y.tsv", sep="\t", index=False)
    argv = ["gwas", "--genotypes", str(tmp_path / "g"), "--phenotypes", str(tmp_path / "y.tsv"), "--out",
            str(tmp_path / "out"), "--no-plots"]
    script = (
        "import sys\n"
        f"sys.argv = ['biolatent', *{argv!r}]\n"
        "import biolatent.cli\n"
        "try:\n    biolatent.cli.app()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "False"
    assert (tmp_path / "out" / "gwas.tsv").is_file()
