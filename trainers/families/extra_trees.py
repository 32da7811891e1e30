"""extra_trees: scikit-learn's ExtraTreesClassifier, or Regressor for a number (randomised split
thresholds, no bootstrap)."""
from trainers.families._forest import ForestFamily


class ExtraTreesFamily(ForestFamily):
    name = "extra_trees"
    estimator_class = "ExtraTreesClassifier"
    regressor_class = "ExtraTreesRegressor"
