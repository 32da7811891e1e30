"""random_forest: scikit-learn's RandomForestClassifier, or Regressor for a number (bagged trees on
bootstrap samples)."""
from trainers.families._forest import ForestFamily


class RandomForestFamily(ForestFamily):
    name = "random_forest"
    estimator_class = "RandomForestClassifier"
    regressor_class = "RandomForestRegressor"
