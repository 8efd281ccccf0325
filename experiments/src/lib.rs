//! Shared command-line handling and output (table, JSON rows, CSV, SVG) for the experiments.
