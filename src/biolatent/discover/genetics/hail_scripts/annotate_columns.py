"""Run inside the Hail environment (hail and the standard library): latent phenotypes -> MatrixTable column fields.

    python annotate_columns.py --pheno PHENO.tsv (--bfile PREFIX | --mt IN.mt) --out OUT.mt
        [--field biolatent] [--source TEXT] [--report R.json] [--master URL]

``PHENO.tsv``: ``id`` + one column per trait (``NA`` = missing). The MatrixTable's columns (the PLINK samples, or
the columns of ``IN.mt``, keyed by one string field) get one struct field ``FIELD`` holding every trait as a
float64; a column without a phenotype row gets a missing struct. Globals get ``FIELD_export``: the source, the
traits and the id-matching counts. No column matched -> the script stops (exit 1, one ``DataError`` line)
before anything is written; the report lists the counts and examples of the ids on one side only.
"""

import argparse
import csv
import json
import sys

from spark_session import executor_count, init_hail


def _read_pheno(hl, path):
    with hl.hadoop_open(path) as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    return rows[0][1:], [row[0] for row in rows[1:]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pheno", required=True)
    parser.add_argument("--bfile")
    parser.add_argument("--mt")
    parser.add_argument("--out", required=True)
    parser.add_argument("--field", default="biolatent")
    parser.add_argument("--source", default="")
    parser.add_argument("--report")
    parser.add_argument("--master")
    args = parser.parse_args()
    if (args.bfile is None) == (args.mt is None):
        sys.exit("DataError: give one of --bfile or --mt")

    import hail as hl

    report = {"spark": init_hail(hl, args.master)}
    if args.bfile:
        mt = hl.import_plink(bed=args.bfile + ".bed", bim=args.bfile + ".bim", fam=args.bfile + ".fam",
                             reference_genome=None, quant_pheno=True, missing="NA")
    else:
        mt = hl.read_matrix_table(args.mt)
    key = list(mt.col_key)
    if len(key) != 1 or mt.col_key[key[0]].dtype != hl.tstr:
        sys.exit(f"DataError: the MatrixTable's columns must be keyed by one string field (sample id), "
                 f"got {mt.col_key.dtype}")
    if args.field in mt.col or f"{args.field}_export" in mt.globals:
        sys.exit(f"DataError: the MatrixTable already has a column field or global named {args.field!r}: "
                 f"choose another --field")
    traits, pheno_ids = _read_pheno(hl, args.pheno)
    column_ids = mt.col_key[key[0]].collect()
    in_mt, in_pheno = set(column_ids), set(pheno_ids)
    matched = [s for s in column_ids if s in in_pheno]
    only_mt = [s for s in column_ids if s not in in_pheno]
    only_pheno = [s for s in pheno_ids if s not in in_mt]
    report["matching"] = {"n_columns": len(column_ids), "n_phenotyped": len(pheno_ids), "n_matched": len(matched),
                          "n_only_matrix_table": len(only_mt), "n_only_phenotypes": len(only_pheno),
                          "examples": {"only_matrix_table": only_mt[:5], "only_phenotypes": only_pheno[:5]}}
    if not matched:
        sys.exit(f"DataError: no MatrixTable column id matches a phenotype id (columns e.g. {column_ids[:3]}, "
                 f"phenotypes e.g. {pheno_ids[:3]})")
    table = hl.import_table(args.pheno, key="id", missing="NA", types={t: hl.tfloat64 for t in traits})
    mt = mt.annotate_cols(**{args.field: table[mt.col_key[key[0]]]})
    counts = {k: v for k, v in report["matching"].items() if k != "examples"}
    mt = mt.annotate_globals(**{f"{args.field}_export": hl.struct(
        source=args.source, traits=hl.literal(traits), **counts)})
    mt.write(args.out)
    report["spark"]["executors"] = executor_count(hl)
    if args.report:
        with hl.hadoop_open(args.report, "w") as handle:
            json.dump(report, handle)


if __name__ == "__main__":
    main()
