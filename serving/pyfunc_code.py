"""The MLflow "models from code" definition of a raysemble bundle model: MLflow copies this file into
the logged model and runs it at load time, so loading a registered ensemble or student unpickles
nothing (the bundle itself is read with torch's weights-only loader and skops' trusted types)."""
import mlflow

from serving.mlflow_model import BundleModel

mlflow.models.set_model(BundleModel())
