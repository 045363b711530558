"""Scripts shipped to AWS Glue. They run standalone on Glue (PySpark + the standard library, no project imports):
``b3_dagster.storage.glue_job`` uploads them and builds their arguments."""
