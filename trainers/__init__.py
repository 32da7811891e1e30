"""Everything that learns: data, models, losses, the train loop, k-fold, search, ensembles."""
