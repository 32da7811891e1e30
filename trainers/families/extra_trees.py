"""extra_trees: scikit-learn's ExtraTreesClassifier (randomised split thresholds, no bootstrap)."""
from sklearn.ensemble import ExtraTreesClassifier

from trainers.families._forest import ForestFamily


class ExtraTreesFamily(ForestFamily):
    name = "extra_trees"
    estimator_class = ExtraTreesClassifier
