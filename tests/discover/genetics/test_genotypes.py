"""read_genotypes / write_plink: PLINK files decoded byte by byte, VCF hard calls, DS dosages, errors."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from biolatent.errors import DataError
from biolatent.io.genotype_matrix import BedDosages, Genotypes
from biolatent.io.genotypes import read_genotypes, write_plink


def _random_genotypes(n: int = 11, m: int = 7, seed: int = 0) -> Genotypes:
    rng = np.random.default_rng(seed)
    dosages = rng.integers(0, 3, (n, m)).astype(np.float32)
    dosages[rng.random((n, m)) < 0.15] = np.nan
    variants = pd.DataFrame({"chrom": ["1"] * 4 + ["2"] * (m - 4), "pos": np.arange(1, m + 1) * 100,
                             "id": [f"rs{j}" for j in range(m)], "ref": list("ACGTACG"[:m]),
                             "alt": list("GTACGTA"[:m])})
    return Genotypes(dosages, [f"ind{i}" for i in range(n)], variants)


def _decode_bed(path, n: int, m: int) -> np.ndarray:
    """PLINK 1 .bed by the spec: 2 bits per sample, low bits first; 00 = A1/A1, 01 missing, 10 het, 11 A2/A2."""
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    assert raw[:3].tolist() == [0x6C, 0x1B, 0x01]
    per = (n + 3) // 4
    out = np.empty((n, m))
    code_to_a1 = {0: 2.0, 1: np.nan, 2: 1.0, 3: 0.0}
    for j in range(m):
        block = raw[3 + j * per: 3 + (j + 1) * per]
        for i in range(n):
            out[i, j] = code_to_a1[(int(block[i // 4]) >> (2 * (i % 4))) & 3]
    return out


def test_write_then_read_plink_counts_alt_as_a1(tmp_path):
    geno = _random_genotypes()
    write_plink(geno, tmp_path / "toy")
    bim = pd.read_csv(tmp_path / "toy.bim", sep=r"\s+", header=None, dtype=str)
    fam = pd.read_csv(tmp_path / "toy.fam", sep=r"\s+", header=None, dtype=str)
    assert bim[4].tolist() == geno.variants.alt.tolist() and bim[5].tolist() == geno.variants.ref.tolist()
    assert fam[1].tolist() == geno.samples
    np.testing.assert_array_equal(_decode_bed(tmp_path / "toy.bed", geno.n_samples, geno.n_variants), geno.dosages)
    for path in (tmp_path / "toy", tmp_path / "toy.bed", str(tmp_path / "toy.bim")):
        back = read_genotypes(path)
        np.testing.assert_array_equal(back.dosages, geno.dosages)
        assert back.samples == geno.samples
        pd.testing.assert_frame_equal(back.variants, geno.variants, check_dtype=False)


def test_write_plink_rounds_dosages_and_refuses_out_of_range(tmp_path):
    geno = _random_genotypes()
    soft = Genotypes(np.clip(geno.dosages + 0.3, 0, 2), geno.samples, geno.variants)
    write_plink(soft, tmp_path / "soft")
    np.testing.assert_array_equal(read_genotypes(tmp_path / "soft").dosages, np.rint(soft.dosages))
    bad = Genotypes(geno.dosages + 3, geno.samples, geno.variants)
    with pytest.raises(DataError, match=r"outside 0\.\.2"):
        write_plink(bad, tmp_path / "bad")


def test_plink_errors(tmp_path):
    write_plink(_random_genotypes(), tmp_path / "toy")
    with (tmp_path / "toy.fam").open("a") as handle:
        handle.write("x1 x1 0 0 0 0\nx2 x2 0 0 0 0\n")  # 13 samples need 4 bytes per variant, not 3
    with pytest.raises(DataError, match=r"^bed/bim/fam mismatch: "):
        read_genotypes(tmp_path / "toy")
    write_plink(_random_genotypes(), tmp_path / "toy")
    with (tmp_path / "toy.bim").open("a") as handle:
        handle.write("2 rs99 0 900 A G\n")
    with pytest.raises(DataError, match=r"^bed/bim/fam mismatch: .* 8 variants"):
        read_genotypes(tmp_path / "toy")
    (tmp_path / "toy.bim").unlink()
    with pytest.raises(DataError, match="missing PLINK file"):
        read_genotypes(tmp_path / "toy")
    with pytest.raises(DataError, match="no genotypes at"):
        read_genotypes(tmp_path / "nothing")
    (tmp_path / "junk.bed").write_bytes(b"hello")
    (tmp_path / "junk.bim").write_text("1 a 0 1 A G\n")
    (tmp_path / "junk.fam").write_text("a a 0 0 0 0\n")
    with pytest.raises(DataError, match="bad magic bytes"):
        read_genotypes(tmp_path / "junk")


VCF = """##fileformat=VCFv4.2
##contig=<ID=1>
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DS,Number=A,Type=Float,Description="ALT dosage">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\ts2\ts3\ts4
1\t100\trs1\tA\tG\t.\tPASS\t.\tGT:DS\t0|0:0.1\t0|1:0.9\t1|1:1.8\t.|.:.
1\t200\trs2\tC\tT,G\t.\tPASS\t.\tGT:DS\t0|1:1\t0|2:1\t1|1:2\t0|0:0
1\t300\t.\tG\tC\t.\tPASS\t.\tGT:DS\t1|0:1.2\t0/0:0.0\t./1:1.0\t1/1:2.0
1\t400\trs4\tT\tA\t.\tPASS\t.\tGT:DS\t1:1.0\t0:0.0\t.:.\t0/1:1.0
"""


@pytest.mark.parametrize("compress", [False, True])
def test_vcf_hard_calls_skip_multiallelic(tmp_path, compress):
    path = tmp_path / ("toy.vcf.gz" if compress else "toy.vcf")
    path.write_bytes(gzip.compress(VCF.encode()) if compress else VCF.encode())
    geno = read_genotypes(path)
    assert geno.samples == ["s1", "s2", "s3", "s4"]
    # s3's half call ./1 is missing; haploid calls (rs4) are on the 0/2 scale as in plink
    expected = np.array([[0, 1, 2], [1, 0, 0], [2, np.nan, np.nan], [np.nan, 2, 1]], dtype=np.float32)
    np.testing.assert_array_equal(geno.dosages, expected)
    assert geno.variants.id.tolist() == ["rs1", "1:300:G:C", "rs4"]
    assert geno.variants.alt.tolist() == ["G", "C", "A"] and geno.variants.pos.tolist() == [100, 300, 400]
    assert geno.variants.attrs["n_skipped_multiallelic"] == 1


def test_vcf_dosage_from_ds_or_gt(tmp_path):
    path = tmp_path / "toy.vcf"
    path.write_text(VCF)
    np.testing.assert_allclose(read_genotypes(path, dosage=True).dosages,
                               np.array([[0.1, 1.2, 1], [0.9, 0, 0], [1.8, 1, np.nan], [np.nan, 2, 1]]), rtol=1e-6)
    lines = [line for line in VCF.splitlines() if "ID=DS" not in line]
    gt_only = [line if line.startswith("#") else "\t".join(
        [*line.split("\t")[:8], "GT", *(f.split(":")[0] for f in line.split("\t")[9:])]) for line in lines]
    path.write_text("\n".join(gt_only) + "\n")
    np.testing.assert_array_equal(read_genotypes(path, dosage=True).dosages, read_genotypes(path).dosages)


def test_vcf_errors(tmp_path):
    with pytest.raises(DataError, match="VCF file not found"):
        read_genotypes(tmp_path / "missing.vcf.gz")
    (tmp_path / "bad.vcf").write_text("this is not a vcf\n")
    with pytest.raises(DataError, match="cannot read VCF"):
        read_genotypes(tmp_path / "bad.vcf")
    (tmp_path / "nosamples.vcf").write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
    (tmp_path / "broken.vcf").write_text(VCF.replace("0|0:0.1\t0|1:0.9", "0|0:0.1:7:8\t0|1:0.9"))
    with pytest.raises(DataError, match="cannot read VCF"):
        read_genotypes(tmp_path / "broken.vcf")
    with pytest.raises(DataError, match="no samples"):
        read_genotypes(tmp_path / "nosamples.vcf")


def test_on_disk_genotypes_match_the_spec_block_by_block(tmp_path):
    """read_genotypes(in_memory=False) decodes only the indexed variants; every way of indexing (blocks,
    scattered columns, one column, composed subsets) equals the spec decoding of the whole file."""
    geno = _random_genotypes(n=13, m=7)
    write_plink(geno, tmp_path / "toy")
    full = _decode_bed(tmp_path / "toy.bed", 13, 7)
    lazy = read_genotypes(tmp_path / "toy", in_memory=False)
    assert isinstance(lazy.dosages, BedDosages) and lazy.dosages.shape == (13, 7)
    np.testing.assert_array_equal(lazy.dosages[:, 2:5], full[:, 2:5])
    np.testing.assert_array_equal(lazy.dosages[:, np.array([6, 0, 3])], full[:, [6, 0, 3]])
    np.testing.assert_array_equal(lazy.dosages[:, 4], full[:, 4])
    np.testing.assert_array_equal(np.asarray(lazy.dosages), full)
    part = lazy.subset(np.array([12, 0, 5, 7]), np.array([6, 1, 2])).subset(np.array([2, 0]), np.array([2, 0]))
    assert isinstance(part.dosages, BedDosages)
    np.testing.assert_array_equal(np.asarray(part.dosages), full[np.ix_([5, 12], [2, 6])])
    assert part.samples == [geno.samples[5], geno.samples[12]]
    assert part.variants.id.tolist() == [geno.variants.id[2], geno.variants.id[6]]
