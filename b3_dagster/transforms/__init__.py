"""Pure transformations: DataFrame in, DataFrame out. No I/O, no dagster."""
