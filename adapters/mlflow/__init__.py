"""MLflow adapter: the ``mlflow`` tracker backend (an optional extra of robust-compress)."""
