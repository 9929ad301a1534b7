"""Run inside the Hail environment (imports hail and the standard library only): PLINK + tables -> GWAS TSV.

    python linear_regression.py --bfile PREFIX --pheno PHENO.tsv [--covar COVAR.tsv] --out GWAS.tsv

Each trait is its own regression group, so a sample missing one trait is dropped for that trait only.
"""

import argparse
import csv
import math


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bfile", required=True)
    parser.add_argument("--pheno", required=True)
    parser.add_argument("--covar")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import hail as hl

    hl.init(master="local[2]", quiet=True, log="/dev/null", idempotent=True)
    mt = hl.import_plink(bed=args.bfile + ".bed", bim=args.bfile + ".bim", fam=args.bfile + ".fam",
                         reference_genome=None, quant_pheno=True, missing="NA")
    with open(args.pheno) as handle:
        traits = next(csv.reader(handle, delimiter="\t"))[1:]
    pheno = hl.import_table(args.pheno, key="id", missing="NA", types={t: hl.tfloat64 for t in traits})
    mt = mt.annotate_cols(pheno=pheno[mt.s])
    covariates = [hl.float64(1.0)]
    if args.covar:
        with open(args.covar) as handle:
            names = next(csv.reader(handle, delimiter="\t"))[1:]
        covar = hl.import_table(args.covar, key="id", missing="NA", types={c: hl.tfloat64 for c in names})
        mt = mt.annotate_cols(covar=covar[mt.s])
        covariates += [mt.covar[c] for c in names]
    result = hl.linear_regression_rows(
        y=[[mt.pheno[t]] for t in traits], x=mt.GT.n_alt_alleles(), covariates=covariates,
        pass_through=[mt.rsid],
    )
    rows = result.select(
        "rsid", "n", "beta", "standard_error", "t_stat", "p_value"
    ).collect()
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["#CHROM", "POS", "ID", "REF", "ALT", "A1", "TRAIT", "OBS_CT", "BETA", "SE", "T_STAT", "P"])
        for row in rows:
            ref, alt = row.alleles[0], row.alleles[1]
            for i, trait in enumerate(traits):
                values = [row.beta[i][0], row.standard_error[i][0], row.t_stat[i][0], row.p_value[i][0]]
                values = ["NaN" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(v) for v in values]
                writer.writerow([row.locus.contig, row.locus.position, row.rsid, ref, alt, alt, trait, row.n[i],
                                 *values])


if __name__ == "__main__":
    main()
