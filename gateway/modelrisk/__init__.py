"""Model risk management: the model inventory and its lifecycle, what a decision may do with a
model version, and how each model version's use is monitored."""
