"""Run inside the Hail environment (imports hail and the standard library only): PLINK + tables -> GWAS TSV.

    python linear_regression.py --bfile PREFIX --pheno PHENO.tsv [--covar COVAR.tsv]
        [--qc MAX_VARIANT_MISSING,MIN_SAMPLE_CALL_RATE,MIN_MAF,MIN_HWE_P] [--pcs K] --out GWAS.tsv [--report R.json]
        [--master URL]

QC runs in the order of biolatent's numpy engine (``discover.genetics.qc``): variant missingness, sample call
rate over the remaining variants, then minor allele frequency and Hardy-Weinberg exact p on the remaining
samples. ``--pcs K``: ``hl.hwe_normalized_pca`` scores (the EIGENSTRAT standardisation of
``discover.genetics.pcs``) are added as covariates. Each trait is its own regression group, so a sample missing
one trait is dropped for that trait only. The report lists the QC counts, the samples used and the PC scores.
Spark: ``--master`` (else ``$BIOLATENT_HAIL_MASTER``; else the master of ``spark-submit`` / ``hailctl dataproc
submit`` when the script runs under one, else ``local[2]``) and driver memory ``$BIOLATENT_HAIL_MEMORY`` (``8g``).
Paths may be any URI Hail reads (``gs://``, ``hdfs://``, ``s3a://``): on a cluster of several machines every
input, ``$BIOLATENT_HAIL_TMP_DIR`` (Hail's ``tmp_dir``) and the output must be on storage that every node reads.
"""

import argparse
import csv
import json

from spark_session import executor_count, init_hail


def _header(hl, path):
    with hl.hadoop_open(path) as handle:
        return next(csv.reader(handle, delimiter="\t"))[1:]


def _qc(hl, mt, thresholds, report):
    """The QC by Hail aggregators (``variant_qc`` / ``sample_qc`` need a reference genome; PLINK input has none)."""
    max_missing, min_call_rate, min_maf, min_hwe_p = thresholds
    n0, m0 = mt.count_cols(), mt.count_rows()
    mt = mt.annotate_rows(variant_call_rate=hl.agg.fraction(hl.is_defined(mt.GT)))
    mt = mt.filter_rows((mt.variant_call_rate > 0) & (1.0 - mt.variant_call_rate <= max_missing))
    m1 = mt.count_rows()
    mt = mt.annotate_cols(sample_call_rate=hl.agg.fraction(hl.is_defined(mt.GT)))
    mt = mt.filter_cols(mt.sample_call_rate >= min_call_rate)
    mt = mt.annotate_rows(af=hl.agg.call_stats(mt.GT, 2).AF[1], hwe=hl.agg.hardy_weinberg_test(mt.GT))
    mt = mt.filter_rows(hl.min(mt.af, 1.0 - mt.af) >= min_maf)
    m2 = mt.count_rows()
    mt = mt.filter_rows(mt.hwe.p_value >= min_hwe_p)
    mt = mt.checkpoint(hl.utils.new_temp_file("qc", "mt"))
    m3, n3 = mt.count()
    report["qc"] = {"n_samples_before": n0, "n_samples_after": n3, "n_variants_before": m0, "n_variants_after": m3,
                    "variants_removed": {"missingness": m0 - m1, "maf": m1 - m2, "hwe": m2 - m3},
                    "samples_removed": {"call_rate": n0 - n3}}
    return mt


def _text(hl, value):
    """Full precision (export writes float64 with 5 significant digits); missing stays missing (NA)."""
    return hl.format("%.17g", value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bfile", required=True)
    parser.add_argument("--pheno", required=True)
    parser.add_argument("--covar")
    parser.add_argument("--qc")
    parser.add_argument("--pcs", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--report")
    parser.add_argument("--master")
    args = parser.parse_args()

    import hail as hl

    report = {"spark": init_hail(hl, args.master)}
    mt = hl.import_plink(bed=args.bfile + ".bed", bim=args.bfile + ".bim", fam=args.bfile + ".fam",
                         reference_genome=None, quant_pheno=True, missing="NA")
    if args.qc:
        mt = _qc(hl, mt, [float(v) for v in args.qc.split(",")], report)
    traits = _header(hl, args.pheno)
    pheno = hl.import_table(args.pheno, key="id", missing="NA", types={t: hl.tfloat64 for t in traits})
    mt = mt.annotate_cols(pheno=pheno[mt.s])
    names = []
    if args.covar:
        names = _header(hl, args.covar)
        covar = hl.import_table(args.covar, key="id", missing="NA", types={c: hl.tfloat64 for c in names})
        mt = mt.annotate_cols(covar=covar[mt.s])
        mt = mt.filter_cols(hl.all([hl.is_defined(mt.covar[c]) for c in names]))
    mt = mt.filter_cols(hl.any([hl.is_defined(mt.pheno[t]) for t in traits]))
    if args.pcs:
        eigenvalues, scores, _ = hl.hwe_normalized_pca(mt.GT, k=args.pcs)
        mt = mt.annotate_cols(pc_scores=scores[mt.s].scores)
        report["pcs"] = {row.s: list(row.scores) for row in scores.collect()}
        report["eigenvalues"] = list(eigenvalues)
    covariates = [hl.float64(1.0)] + [mt.covar[c] for c in names]
    covariates += [mt.pc_scores[i] for i in range(args.pcs)]
    report["samples"] = mt.s.collect()
    result = hl.linear_regression_rows(
        y=[[mt.pheno[t]] for t in traits], x=mt.GT.n_alt_alleles(), covariates=covariates,
        pass_through=[mt.rsid],
    )
    result = result.annotate(trait_index=hl.range(len(traits))).explode("trait_index").key_by()
    i = result.trait_index
    result = result.select(**{
        "#CHROM": result.locus.contig, "POS": result.locus.position, "ID": result.rsid, "REF": result.alleles[0],
        "ALT": result.alleles[1], "A1": result.alleles[1], "TRAIT": hl.literal(traits)[i], "OBS_CT": result.n[i],
        "BETA": _text(hl, result.beta[i][0]), "SE": _text(hl, result.standard_error[i][0]),
        "T_STAT": _text(hl, result.t_stat[i][0]), "P": _text(hl, result.p_value[i][0]),
    })
    result.export(args.out, header=True, delimiter="\t")
    report["spark"]["executors"] = executor_count(hl)
    if args.report:
        with hl.hadoop_open(args.report, "w") as handle:
            json.dump(report, handle)


if __name__ == "__main__":
    main()
