"""random_forest: scikit-learn's RandomForestClassifier (bagged trees on bootstrap samples)."""
from sklearn.ensemble import RandomForestClassifier

from trainers.families._forest import ForestFamily


class RandomForestFamily(ForestFamily):
    name = "random_forest"
    estimator_class = RandomForestClassifier
