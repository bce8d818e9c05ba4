"""Estimators in event time: covariance, EWMA moments, correlation, vol-of-vol."""
