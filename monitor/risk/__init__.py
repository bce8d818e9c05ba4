"""Risk figures from the estimates: tails, snapshots, stress, options, margin, accounts."""
