"""mixsize-ray: MixSize training (mixed image sizes) on Ray Train, Tune + Optuna search, MLflow tracking."""

__version__ = "0.1.0"
