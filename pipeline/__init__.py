"""ssm-etl: AWS Systems Manager Run Command history as a Parquet lake.

The library: everything here imports without Prefect and without the CLI.
"""

__version__ = "0.1.0"
