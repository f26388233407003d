"""Genetics: genotype readers, QC, the gene panel and SNP text serialization."""
