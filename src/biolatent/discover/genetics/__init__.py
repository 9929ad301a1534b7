"""Genotypes, quality control, GWAS and heritability."""
