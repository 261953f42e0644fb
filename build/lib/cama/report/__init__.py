"""report: plots and tables that `snakemake --report` gathers."""
