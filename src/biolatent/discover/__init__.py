"""Discovery from embeddings: latent phenotypes, clusters, GWAS and heritability (reads arrays, never a model)."""
